#!/usr/bin/env bash
# `lens-embed doctor` on the three test schemas of tests/support/schemas, each with two or
# three rows and the mapping of tests/support/source_schemas.cpp: before `init`, then after
# it. What issue 12's note shows. Not a timing: doctor's page time on 3 rows says nothing.
# usage: bench/mapping/doctor_samples.sh BUILD_DIR [sqlite|postgres]   (default sqlite)
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$(realpath -m "${1:?usage: doctor_samples.sh BUILD_DIR [sqlite|postgres]}")/apps/lens-embed/lens-embed"
shift
scratch=$(mktemp -d /tmp/lens-doctor-samples.XXXXXX)
cd "$scratch"
cat > a.toml <<'T'
[source]
messages = "main.chat_messages"
id = "message_no"
conversation_id = "thread_no"
role = "author_role"
content = "body"
created_at = "posted_at"
updated_at = ""
user_roles = ["student"]
assistant_roles = ["tutor"]
filter = "NOT is_deleted"
template = "Student: {user}\n\nTutor: {assistant}"
template_no_reply = "Student: {user}"
T
cat > b.toml <<'T'
[source]
messages = "posts"
reply = "column:reply_to"
T
cat > c.toml <<'T'
[source]
messages = "thread_messages"
id = "message_key"
conversation_id = "thread_key"
role = "kind"
content = "Body"
created_at = "sent_at"
updated_at = "edited_at"
user_roles = ["question"]
assistant_roles = ["answer"]
template = "[{user.topic}] {user}\n\n{assistant.answered_by}: {assistant}"
template_no_reply = "[{user.topic}] {user}"
T
s=$root/tests/support/schemas
sed 's/\${source_schema}/main/' $s/a_qualified_bigint.sqlite.sql | sqlite3 a.db
sqlite3 a.db "INSERT INTO chat_messages VALUES (3000000001,7,'student','What is a derivative?','2024-01-01T10:00:00Z',0),(3000000002,7,'tutor','The rate of change of a function.','2024-01-01T10:00:05Z',0),(3000000003,7,'student','and an integral?','2024-01-01T10:01:00Z',1);"
sqlite3 b.db < $s/b_reply_column.sqlite.sql
sqlite3 b.db "INSERT INTO posts VALUES ('u1','c1','user','Why is the sky blue?','2024-01-01T10:00:00Z',NULL,NULL),('r1','c1','assistant','Rayleigh scattering.','2024-01-01T10:00:05Z',NULL,'u1'),('r2','c1','assistant','Shorter wavelengths scatter more.','2024-01-01T10:00:09Z',NULL,'u1');"
sqlite3 c.db < $s/c_view_text_keys.sqlite.sql
sqlite3 c.db "INSERT INTO questions VALUES ('q1','t1','2024-01-01T10:00:00Z',NULL,'What is 7 x 8?','arithmetic'); INSERT INTO answers VALUES ('a1','t1','2024-01-01T10:00:04Z',NULL,'56','Ada');"
show() {  # label url toml
  echo "===== $1: lens-embed doctor (before init)"
  $bin doctor --db "$2" --config "$3" 2>&1 | sed -n '/^source:/,$p'; echo "[exit ${PIPESTATUS[0]}]"
  $bin init --db "$2" --config "$3" >/dev/null 2>&1 || echo "init failed"
  echo "===== $1: lens-embed init; lens-embed doctor --db ... --config $3"
  $bin doctor --db "$2" --config "$3" 2>&1; echo "[exit $?]"
}
if [ "${1:-sqlite}" = sqlite ]; then
  for x in a b c; do show "schema ($x), SQLite" sqlite:$x.db $x.toml; done
  rm -rf "$scratch"
  exit 0
fi
url=$($root/scripts/pg-test-server.sh start $scratch/pg.env)
trap "$root/scripts/pg-test-server.sh stop $scratch/pg.env >/dev/null 2>&1; rm -rf $scratch" EXIT
base=${url%/*}
for x in a b c; do psql -qX "$url" -c "CREATE DATABASE doc_$x"; done
sed 's/\${source_schema}/lens_a/g' $s/a_qualified_bigint.postgres.sql | psql -qX -v ON_ERROR_STOP=1 $base/doc_a
psql -qX $base/doc_a -c "INSERT INTO lens_a.chat_messages (thread_no, author_role, body, posted_at, is_deleted) VALUES (7,'student','What is a derivative?','2024-01-01 10:00Z',false),(7,'tutor','The rate of change of a function.','2024-01-01 10:00:05Z',false),(7,'student','and an integral?','2024-01-01 10:01Z',true)"
psql -qX -v ON_ERROR_STOP=1 $base/doc_b < $s/b_reply_column.postgres.sql
psql -qX $base/doc_b -c "INSERT INTO posts (id, conversation_id, role, content, created_at, reply_to) VALUES ('00000000-0000-4000-8000-000000000001','00000000-0000-4000-8000-0000000000c1','user','Why is the sky blue?','2024-01-01 10:00Z',NULL),('00000000-0000-4000-8000-000000000002','00000000-0000-4000-8000-0000000000c1','assistant','Rayleigh scattering.','2024-01-01 10:00:05Z','00000000-0000-4000-8000-000000000001'),('00000000-0000-4000-8000-000000000003','00000000-0000-4000-8000-0000000000c1','assistant','Shorter wavelengths scatter more.','2024-01-01 10:00:09Z','00000000-0000-4000-8000-000000000001')"
psql -qX -v ON_ERROR_STOP=1 $base/doc_c < $s/c_view_text_keys.postgres.sql
psql -qX $base/doc_c -c "INSERT INTO questions VALUES ('q1','t1','2024-01-01 10:00Z',NULL,'What is 7 x 8?','arithmetic'); INSERT INTO answers VALUES ('a1','t1','2024-01-01 10:00:04Z',NULL,'56','Ada')"
sed 's/main.chat_messages/lens_a.chat_messages/' a.toml > a_pg.toml
show "schema (a), PostgreSQL" $base/doc_a a_pg.toml
show "schema (b), PostgreSQL" $base/doc_b b.toml
show "schema (c), PostgreSQL" $base/doc_c c.toml
