#!/usr/bin/env bash
# Scaling of a full run on the embedded default (SQLite + local-hash): wall time, per-row
# time and peak RSS at ~100k and ~1M messages, and the ratios between the two sizes
# (goal: per-row time ratio <= 1.1, RSS flat). The peer is lens-embed's own no-op rerun
# over the same database (read path only) and sqlite3's own full scan of the messages.
# Where the time goes: the writer's transactions (the sum of its "wrote ... in X ms" debug
# lines) and, when perf can count syscalls, the page reads, page writes and syncs per row.
# usage: bench/pipeline/run.sh [BUILD_DIR]   (default build-bench; an existing build is used
#   as it is, else one is made Release)
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/../lib.sh"
bench_setup pipeline "${1:-}"
events=syscalls:sys_enter_pread64,syscalls:sys_enter_pwrite64,syscalls:sys_enter_fdatasync
counting=0
perf stat -x, -e "$events" -o /dev/null true 2>/dev/null && counting=1

measure() {  # prints: seconds peak_rss_kib
  /usr/bin/time -f "%e %M" -o "$work/time.txt" "$@" >/dev/null 2>"$work/err.txt" || { cat "$work/err.txt" >&2; exit 1; }
  cat "$work/time.txt"
}

full_run() {  # DB -> seconds peak_rss_kib cpu_seconds (debug log in $work/log.txt, counts in $work/stat.txt)
  : >"$work/stat.txt"
  if [ "$counting" = 1 ]; then
    perf stat -x, -e "$events" -o "$work/stat.txt" /usr/bin/time -f "%e %M %U %S" -o "$work/time.txt" \
      "$bin" run --db "sqlite:$1" --quiet --verbose >/dev/null 2>"$work/log.txt" || { cat "$work/log.txt" >&2; exit 1; }
  else
    /usr/bin/time -f "%e %M %U %S" -o "$work/time.txt" \
      "$bin" run --db "sqlite:$1" --quiet --verbose >/dev/null 2>"$work/log.txt" || { cat "$work/log.txt" >&2; exit 1; }
  fi
  awk '{printf "%s %s %.2f\n", $1, $2, $3 + $4}' "$work/time.txt"
}

count() { awk -F, -v e="$1" -v n="$2" '$3 ~ e {printf "%.2f", $1 / n; f = 1} END {if (!f) printf "-"}' "$work/stat.txt"; }

declare -A secs rss rows rerun scan cpu
for size in 20000 200000; do   # conversations: ~5 messages each -> ~100k and ~1M messages
  db="$work/lens-$size.db"
  "$gen" --sqlite "$db" --conversations "$size" 2>/dev/null
  msgs=$(sqlite3 "$db" "select count(*) from messages")
  (cd "$work" && "$bin" init --db "sqlite:$db" >/dev/null)
  read -r s m c < <(cd "$work" && full_run "$db")
  n=$(sqlite3 "$db" "select count(*) from message_embeddings")
  tx_ms=$(grep -o 'wrote [0-9]* rows.* in [0-9.]* ms' "$work/log.txt" | awk '{t += $(NF-1)} END {print t + 0}')
  read -r rs _ < <(cd "$work" && measure "$bin" run --db "sqlite:$db" --quiet)
  read -r ss _ < <(measure sqlite3 "$db" "select sum(length(content)) from messages")
  secs[$size]=$s; rss[$size]=$m; cpu[$size]=$c; rows[$size]=$n; rerun[$size]=$rs; scan[$size]=$ss
  printf "%8d messages: %7d rows embedded in %6.2f s (%5.1f us/row), peak RSS %6d KiB; no-op rerun %5.2f s; sqlite3 full scan %5.2f s\n" \
    "$msgs" "$n" "$s" "$(echo "$s * 1000000 / $n" | bc -l)" "$m" "$rs" "$ss"
  printf "          CPU %6.2f s (%5.1f us/row); write transactions %6.2f s (%5.1f us/row); per row: %s preads, %s pwrites, %s fdatasyncs per 1000 rows\n" \
    "$c" "$(echo "$c * 1000000 / $n" | bc -l)" "$(echo "$tx_ms / 1000" | bc -l)" "$(echo "$tx_ms * 1000 / $n" | bc -l)" \
    "$(count pread "$n")" "$(count pwrite "$n")" "$(count fdatasync "$((n / 1000))")"
done
small=20000; big=200000
per_small=$(echo "${secs[$small]} / ${rows[$small]}" | bc -l)
per_big=$(echo "${secs[$big]} / ${rows[$big]}" | bc -l)
printf "per-row time ratio (1M / 100k): %.3f   (goal <= 1.1)\n" "$(echo "$per_big / $per_small" | bc -l)"
printf "CPU per row ratio  (1M / 100k): %.3f\n" \
  "$(echo "(${cpu[$big]} / ${rows[$big]}) / (${cpu[$small]} / ${rows[$small]})" | bc -l)"
printf "peak RSS ratio     (1M / 100k): %.3f   (flat = ~1)\n" "$(echo "${rss[$big]} / ${rss[$small]}" | bc -l)"
printf "no-op rerun vs sqlite3 full scan of messages at 1M: %.2fx the scan's time\n" \
  "$(echo "${rerun[$big]} / ${scan[$big]}" | bc -l)"
