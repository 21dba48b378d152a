#!/usr/bin/env bash
# Issue 12's figures on PostgreSQL: the cost of a mapped schema against the default one, in
# the same run, on the same server.
#   - the pending page (doctor's timed page of 1000 exchanges, median of ROUNDS alternating
#     runs) on test schema (a) (schema-qualified table, bigint identity keys, other column
#     names, roles student/tutor, soft-delete filter, no updated_at) vs the default schema;
#   - a full local-hash run of each (rows/s), then `run --rehash` (every input re-read and
#     hashed, nothing sent: the peer is the full run that embedded the same rows).
# Both databases hold MESSAGES messages (default 10^6), half of them user messages, each
# answered by the next; (a) marks 10 % deleted. Each schema is in a database of its own
# (lens-embed's output tables take the source key's type).
# usage: bench/mapping/run.sh [BUILD_DIR]   (default build-bench, built in Release if missing)
#   MESSAGES=1000000 ROUNDS=11
set -euo pipefail
messages=${MESSAGES:-1000000}
rounds=${ROUNDS:-11}
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/../lib.sh"
bench_setup mapping "${1:-}"
bench_postgres
psql -qX -v ON_ERROR_STOP=1 "$url" -c "CREATE DATABASE lens_default" -c "CREATE DATABASE lens_a"
db_default="$base/lens_default"
db_a="$base/lens_a"
exchanges=$((messages / 2))
conversations=$((exchanges / 2))  # two exchanges per conversation

# Texts of a few hundred characters that differ by row (the hash and the tokenizer see them all).
text_expr="'Question ' || g || ': how does ' || md5(g::text) || ' relate to the lecture on ' || (g % 97) || '? ' || repeat('I tried it twice and got a different answer each time. ', 3)"
reply_expr="'Answer ' || g || ': start from ' || md5((g + 1)::text) || ', then ' || repeat('work through the steps one at a time and check each result. ', 3)"

psql -qX -v ON_ERROR_STOP=1 "$db_default" <<SQL
\i $root/tests/support/schemas/default.postgres.sql
INSERT INTO conversations (id, user_id, created_at)
  SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(c), 12, '0'))::uuid, gen_random_uuid(), '2024-01-01'
  FROM generate_series(1, $conversations) c;
INSERT INTO messages (id, conversation_id, role, content, created_at)
  SELECT ('00000000-0000-4000-9000-' || lpad(to_hex(g), 12, '0'))::uuid,
         ('00000000-0000-4000-8000-' || lpad(to_hex((g - 1) / 4 + 1), 12, '0'))::uuid,
         CASE WHEN g % 2 = 1 THEN 'user' ELSE 'assistant' END,
         CASE WHEN g % 2 = 1 THEN $text_expr ELSE $reply_expr END,
         '2024-01-01'::timestamptz + g * interval '1 second'
  FROM generate_series(1, $messages) g;
VACUUM ANALYZE;
SQL

psql -qX -v ON_ERROR_STOP=1 "$db_a" <<SQL
$(sed 's/\${source_schema}/lens_a/g' "$root/tests/support/schemas/a_qualified_bigint.postgres.sql")
INSERT INTO lens_a.chat_messages (thread_no, author_role, body, posted_at, is_deleted)
  SELECT 700000 + (g - 1) / 4,
         CASE WHEN g % 2 = 1 THEN 'student' ELSE 'tutor' END,
         CASE WHEN g % 2 = 1 THEN $text_expr ELSE $reply_expr END,
         '2024-01-01'::timestamptz + g * interval '1 second',
         g % 10 = 0
  FROM generate_series(1, $messages) g ORDER BY g;
VACUUM ANALYZE;
SQL
cp "$root/bench/mapping/schema_a.toml" "$work/a.toml"
: >"$work/default.toml"

cd "$work"
for s in default a; do
  db_var=db_$s
  "$bin" init --db "${!db_var}" --config "$work/$s.toml" --source-indexes >/dev/null
done

page_ms() {  # doctor's timed pending page, in ms
  local db=$1 config=$2
  { "$bin" doctor --db "$db" --config "$config" 2>/dev/null || true; } |
    sed -n 's/.*one pending page.* read in \([0-9.]*\) ms.*/\1/p'
}
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
for ((i = 0; i < rounds; ++i)); do
  page_ms "$db_default" "$work/default.toml" >>"$work/pages_default"
  page_ms "$db_a" "$work/a.toml" >>"$work/pages_a"
done
p_default=$(median <"$work/pages_default")
p_a=$(median <"$work/pages_a")
[ -n "$p_default" ] && [ -n "$p_a" ] || { echo "doctor printed no pending page time" >&2; exit 1; }
printf "%d messages; pending page of 1000 (doctor, median of %d alternating): default %.1f ms, schema (a) %.1f ms: (a)/default %.3f (goal <= 1.10)\n" \
  "$messages" "$rounds" "$p_default" "$p_a" "$(echo "$p_a / $p_default" | bc -l)"

for s in default a; do
  db_var=db_$s
  read -r full_s full_cpu full_rss < <(bench_timed "$bin" run --db "${!db_var}" --config "$work/$s.toml" --quiet)
  rows=$(psql -qAtX "${!db_var}" -c "SELECT count(*) FROM message_embeddings")
  read -r re_s re_cpu re_rss < <(bench_timed "$bin" run --db "${!db_var}" --config "$work/$s.toml" --rehash --quiet --json)
  reembedded=$(sed -n 's/.*"embedded":\([0-9]*\).*/\1/p' "$work/out.txt")
  printf "%-7s full run: %d rows in %.1f s (%.0f rows/s, %.1f CPU-s, peak RSS %d KiB); run --rehash: %.1f s (%.1f s per 10^6 messages, %.1f CPU-s, peak RSS %d KiB), re-embedded %s\n" \
    "$s" "$rows" "$full_s" "$(echo "$rows / $full_s" | bc -l)" "$full_cpu" "$full_rss" \
    "$re_s" "$(echo "$re_s * 1000000 / $messages" | bc -l)" "$re_cpu" "$re_rss" "$reembedded"
done
