#!/usr/bin/env bash
# Scaling of a full run on the embedded default (SQLite + local-hash): wall time, per-row
# time and peak RSS at ~100k and ~1M messages, and the ratios between the two sizes
# (goal: per-row time ratio <= 1.1, RSS flat). The peer is lens-embed's own no-op rerun
# over the same database (read path only) and sqlite3's own full scan of the messages.
# usage: bench/pipeline/run.sh [BUILD_DIR]   (default build-bench, built in Release)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build-bench}
"$root/scripts/build.sh" "$build" Release -DLENS_BUILD_TESTS=OFF >/dev/null
bin="$build/apps/lens-embed/lens-embed"
gen="$build/tools/sample-corpus/lens-sample-corpus"
work=$(mktemp -d /tmp/lens-bench-pipeline.XXXXXX)
trap 'rm -rf "$work"' EXIT

measure() {  # prints: seconds peak_rss_kib
  /usr/bin/time -f "%e %M" -o "$work/time.txt" "$@" >/dev/null 2>"$work/err.txt" || { cat "$work/err.txt" >&2; exit 1; }
  cat "$work/time.txt"
}

declare -A secs rss rows rerun scan
for size in 20000 200000; do   # conversations: ~5 messages each -> ~100k and ~1M messages
  db="$work/lens-$size.db"
  "$gen" --sqlite "$db" --conversations "$size" 2>/dev/null
  msgs=$(sqlite3 "$db" "select count(*) from messages")
  (cd "$work" && "$bin" init --db "sqlite:$db" >/dev/null)
  read -r s m < <(cd "$work" && measure "$bin" run --db "sqlite:$db" --quiet)
  n=$(sqlite3 "$db" "select count(*) from message_embeddings")
  read -r rs _ < <(cd "$work" && measure "$bin" run --db "sqlite:$db" --quiet)
  read -r ss _ < <(measure sqlite3 "$db" "select sum(length(content)) from messages")
  secs[$size]=$s; rss[$size]=$m; rows[$size]=$n; rerun[$size]=$rs; scan[$size]=$ss
  printf "%8d messages: %7d rows embedded in %6.2f s (%5.1f us/row), peak RSS %6d KiB; no-op rerun %5.2f s; sqlite3 full scan %5.2f s\n" \
    "$msgs" "$n" "$s" "$(echo "$s * 1000000 / $n" | bc -l)" "$m" "$rs" "$ss"
done
small=20000; big=200000
per_small=$(echo "${secs[$small]} / ${rows[$small]}" | bc -l)
per_big=$(echo "${secs[$big]} / ${rows[$big]}" | bc -l)
printf "per-row time ratio (1M / 100k): %.3f   (goal <= 1.1)\n" "$(echo "$per_big / $per_small" | bc -l)"
printf "peak RSS ratio     (1M / 100k): %.3f   (flat = ~1)\n" "$(echo "${rss[$big]} / ${rss[$small]}" | bc -l)"
printf "no-op rerun vs sqlite3 full scan of messages at 1M: %.2fx the scan's time\n" \
  "$(echo "${rerun[$big]} / ${scan[$big]}" | bc -l)"
