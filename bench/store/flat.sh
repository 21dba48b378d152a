#!/usr/bin/env bash
# Issue 14's "flat to 10^7" on PostgreSQL: full local-hash runs (default dimension, 384) at
# ~10^5 and ~10^6 messages (and ~10^7 with FLAT_10M=1), each followed by a no-op rerun:
# wall time, per-row time and its ratio to the ~10^5 figure, CPU seconds and peak RSS
# (/usr/bin/time). The peer, in the same run on the same server: `psql \copy` of the same
# rows (the table lens-embed wrote, copied out) into a table with the same indexes.
# Corpora from lens-sample-corpus (~5 messages per conversation, random uuid keys), loaded
# with \copy; one database per size, dropped after it.
# usage: bench/store/flat.sh [BUILD_DIR]   (default build-bench; built Release if missing)
#   FLAT_SIZES="20000 200000" (conversations); FLAT_10M=1 adds ~10^7 messages (about 10 GB of disk and ~10x the 10^6 run's time)
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/../lib.sh"
bench_setup flat "${1:-}"
bench_postgres

sizes=${FLAT_SIZES:-20000 200000}  # conversations
[ "${FLAT_10M:-0}" = 1 ] && sizes="$sizes 2000000"
first_per_row=""
for size in $sizes; do
  db="$base/lens_flat_$size"
  psql -qX -v ON_ERROR_STOP=1 "$url" -c "CREATE DATABASE lens_flat_$size"
  mkdir -p "$work/csv"
  "$gen" --csv "$work/csv" --conversations "$size" 2>/dev/null
  psql -qX -v ON_ERROR_STOP=1 "$db" <<SQL
\i $root/tests/support/schemas/default.postgres.sql
\copy conversations (id, user_id, title, created_at) FROM '$work/csv/conversations.csv' (FORMAT csv)
\copy messages (id, conversation_id, role, content, created_at, updated_at) FROM '$work/csv/messages.csv' (FORMAT csv)
SQL
  rm -rf "$work/csv"
  (cd "$work" && "$bin" init --db "$db" --source-indexes >/dev/null)
  psql -qX -v ON_ERROR_STOP=1 "$db" -c "VACUUM ANALYZE"
  msgs=$(psql -qAtX "$db" -c "SELECT count(*) FROM messages")

  read -r s cpu rss < <(cd "$work" && bench_timed "$bin" run --db "$db" --quiet)
  rows=$(psql -qAtX "$db" -c "SELECT count(*) FROM message_embeddings")
  read -r re_s _ re_rss < <(cd "$work" && bench_timed "$bin" run --db "$db" --quiet)

  # Peer: the same rows through \copy into a table with the same indexes (no foreign key).
  psql -qX -v ON_ERROR_STOP=1 "$db" \
    -c "\\copy message_embeddings TO '$work/rows.copy' (FORMAT binary)" \
    -c "CREATE TABLE peer_rows (LIKE message_embeddings INCLUDING ALL)"
  read -r copy_s _ _ < <(bench_timed psql -qX -v ON_ERROR_STOP=1 "$db" -c "\\copy peer_rows FROM '$work/rows.copy' (FORMAT binary)")
  rm -f "$work/rows.copy"

  per_row=$(echo "$s * 1000000 / $rows" | bc -l)
  [ -z "$first_per_row" ] && first_per_row=$per_row
  printf "%9d messages: %8d rows in %7.2f s (%6.1f us/row, x%.3f of the first size; %.1f CPU-s), peak RSS %7d KiB; no-op rerun %6.2f s (%.1f us/row, peak RSS %d KiB); psql \\\\copy of the same rows %6.2f s (%.1f us/row)\n" \
    "$msgs" "$rows" "$s" "$per_row" "$(echo "$per_row / $first_per_row" | bc -l)" "$cpu" "$rss" \
    "$re_s" "$(echo "$re_s * 1000000 / $rows" | bc -l)" "$re_rss" "$copy_s" "$(echo "$copy_s * 1000000 / $rows" | bc -l)"
  psql -qX -v ON_ERROR_STOP=1 "$url" -c "DROP DATABASE lens_flat_$size"
done
