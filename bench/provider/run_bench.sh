#!/usr/bin/env bash
# Provider benchmark: lens-embed vs the official `openai` npm client vs LangChain.js
# OpenAIEmbeddings, in one run, against the stand-in with OpenAI-like limits.
#   bench/provider/run_bench.sh [BUILD_DIR]      (env: N=50000 exchanges, SCENARIOS="base faults tier5",
#                                                 also "base-lens": lens-embed alone;
#                                                 TEXTS=chat: ~260-token exchanges instead of ~25,
#                                                 TEXTS=long: ~350; BATCH=256 sets --batch-size;
#                                                 "chat-minute": 1M TPM with a server that, like
#                                                 OpenAI's, holds a whole minute of tokens;
#                                                 "chat-minute-wide": its headers-only run with 16 in flight;
#                                                 "tier5-lens": the tier-5 run of lens-embed alone;
#                                                 DB=postgres: lens-embed writes to a throwaway
#                                                 PostgreSQL 15 (scripts/pg-test-server.sh)
#                                                 holding the same exchanges instead of SQLite)
# Needs: the lens-embed, lens_stand_in_provider and lens_bench_provider_gen targets built;
# `npm ci` in bench/provider/node. Prints one JSON line per client and scenario.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=$(cd "${1:-$ROOT/build-prov}" && pwd)
N=${N:-50000}
SCENARIOS=${SCENARIOS:-"base faults tier5"}
WORK=${WORK:-$(mktemp -d /tmp/lens-bench-provider.XXXXXX)}
STAND_IN=$BUILD/tests/stand_in/lens_stand_in_provider
LENS=${LENS_BIN:-$BUILD/apps/lens-embed/lens-embed}  # LENS_BIN: another lens-embed, for A/B runs
GEN=$BUILD/bench/provider/lens_bench_provider_gen
export SUPERMIND_API_KEY=sk-bench-$(date +%s)-not-a-real-key
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
export LENS_DATA_DIR=$ROOT/data
MODEL=text-embedding-3-small
LARGE=text-embedding-3-large
SERVER_PID=

DB=${DB:-sqlite}
PG_STATE=

cleanup() { [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null || true; }
trap 'cleanup; [[ -n $PG_STATE ]] && "$ROOT/scripts/pg-test-server.sh" stop "$PG_STATE"' EXIT

start_server() {  # args: stand-in flags
  cleanup
  "$STAND_IN" --api-key "$SUPERMIND_API_KEY" --port-file "$WORK/port" "$@" >"$WORK/stand_in.out" 2>"$WORK/stand_in.err" &
  SERVER_PID=$!
  for _ in $(seq 100); do [[ -s $WORK/port ]] && break; sleep 0.05; done
  PORT=$(cat "$WORK/port"); rm -f "$WORK/port"
  BASE=http://127.0.0.1:$PORT/v1
}
stats() { curl -s "http://127.0.0.1:$PORT/stats"; }
reset() { curl -s -d '' "http://127.0.0.1:$PORT/stats/reset" >/dev/null; sleep 1.1; }  # let the buckets refill

# DB=postgres: the generated exchanges copied into database `lens_template` (text keys, as
# the generator writes them); each lens-embed run gets a fresh copy of it, `lens_run`.
setup_postgres() {
  PG_STATE=$WORK/pg.state
  PG_TEST_SHARED_BUFFERS=${PG_TEST_SHARED_BUFFERS:-1GB} "$ROOT/scripts/pg-test-server.sh" start "$PG_STATE" >/dev/null
  PG_URL=$(. "$PG_STATE"; echo "$PGTEST_URL")
  PG_BASE=${PG_URL%/postgres}
  psql -qX "$PG_URL" -c 'CREATE DATABASE lens_template' >/dev/null
  psql -qX "$PG_BASE/lens_template" >/dev/null <<'SQL'
CREATE TABLE conversations (id text PRIMARY KEY, user_id text NOT NULL, title text, created_at timestamptz NOT NULL);
CREATE TABLE messages (id text PRIMARY KEY, conversation_id text NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
  role text NOT NULL, content text, created_at timestamptz NOT NULL, updated_at timestamptz);
SQL
  sqlite3 -csv "$WORK/template.db" 'SELECT * FROM conversations' |
    psql -qX "$PG_BASE/lens_template" -c '\copy conversations FROM STDIN WITH (FORMAT csv)'
  sqlite3 -csv "$WORK/template.db" 'SELECT * FROM messages' |
    psql -qX "$PG_BASE/lens_template" -c '\copy messages FROM STDIN WITH (FORMAT csv)'
  "$LENS" init --db "$PG_BASE/lens_template" --source-indexes >/dev/null
  psql -qX "$PG_BASE/lens_template" -c 'VACUUM ANALYZE' >/dev/null
}
fresh_db() {  # prints the --db of a fresh copy of the exchanges, none embedded
  if [[ $DB == postgres ]]; then
    psql -qX "$PG_URL" -c 'DROP DATABASE IF EXISTS lens_run' -c 'CREATE DATABASE lens_run TEMPLATE lens_template' >/dev/null
    echo "$PG_BASE/lens_run"
  else
    cp "$WORK/template.db" "$WORK/run.db"
    echo "sqlite:$WORK/run.db"
  fi
}

run_lens() {  # label, extra lens flags...
  local label=$1 db; shift
  db=$(fresh_db)
  reset
  /usr/bin/time -f '%e %U %S' -o "$WORK/time" "$LENS" run --db "$db" --provider supermind \
    --base-url "$BASE" --model "$MODEL" --json --quiet --log-file "$WORK/lens.log" ${BATCH:+--batch-size "$BATCH"} "$@" >"$WORK/lens.json" 2>"$WORK/lens.err" || true
  read -r wall user sys <"$WORK/time"
  local client
  client=$(node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const [wall, user, sys] = process.argv.slice(2).map(Number);
    console.log(JSON.stringify({rows: r.stats.embedded, failed: r.stats.failed, seconds: wall, cpu_s: user + sys}));
  ' "$WORK/lens.json" "$wall" "$user" "$sys")
  node "$HERE/summarize.mjs" "$label" "$client" "$(stats)"
}
run_peer() {  # label, which, extra peer flags...
  local label=$1 which=$2; shift 2
  reset
  local client
  client=$(node "$HERE/node/peers.mjs" "$which" "$BASE" "$WORK/texts.jsonl" "$@" 2>"$WORK/$which.err")
  node "$HERE/summarize.mjs" "$label" "$client" "$(stats)"
}

"$GEN" "$N" "$WORK/template.db" "$WORK/texts.jsonl" 7 "${TEXTS:-short}"
# The indexes the pending query needs (`run` no longer creates them; without them every
# page scans and sorts the table, and a run is quadratic in its size).
"$LENS" init --db "sqlite:$WORK/template.db" --source-indexes >/dev/null
[[ $DB == postgres ]] && setup_postgres
echo "# N=$N exchanges, work dir $WORK, $(nproc) cores, lens-embed on $DB" >&2

for scenario in $SCENARIOS; do
  case $scenario in
    base)
      start_server --latency-ms 150 --rpm 5000 --tpm 1000000
      run_lens "lens-embed" --rpm 5000 --tpm 1000000
      run_peer "openai-node" openai
      run_peer "langchain-js" langchain
      ;;
    base-lens)  # lens-embed alone, for A/B runs of rate-control changes
      start_server --latency-ms 150 --rpm 5000 --tpm 1000000
      run_lens "lens-embed" --rpm 5000 --tpm 1000000
      ;;
    chat-minute)  # large requests against a full minute's burst: the 429 trap of issue 14
      start_server --latency-ms 150 --latency-per-1k-tokens-ms 2 --rpm 5000 --tpm 1000000 --burst-seconds 60
      run_lens "lens-embed chat-minute" --rpm 5000 --tpm 1000000
      run_lens "lens-embed chat-minute, limits from headers" --tpm 0 --rpm 0
      run_peer "openai-node chat-minute" openai
      run_peer "langchain-js chat-minute" langchain
      ;;
    chat-minute-lens)  # the same, lens-embed alone (A/B runs of rate-control changes)
      start_server --latency-ms 150 --latency-per-1k-tokens-ms 2 --rpm 5000 --tpm 1000000 --burst-seconds 60
      run_lens "lens-embed chat-minute" --rpm 5000 --tpm 1000000
      run_lens "lens-embed chat-minute, limits from headers" --tpm 0 --rpm 0
      ;;
    chat-minute-wide)  # headers only, 16 in flight: a first wave of 16 x 88k tokens (TEXTS=long
                       # BATCH=256) is more than the server's whole minute
      start_server --latency-ms 150 --latency-per-1k-tokens-ms 2 --rpm 5000 --tpm 1000000 --burst-seconds 60
      run_lens "lens-embed chat-minute, 16 in flight, limits from headers" --tpm 0 --rpm 0 --concurrency 16
      ;;
    faults)
      F=(--p-429 0.02 --p-500 0.02 --p-502 0.01 --p-503 0.02 --p-reset 0.01 --p-hang 0.005 --hang-ms 5000
         --p-malformed 0.01 --p-truncated 0.01 --p-short 0.01 --p-nan 0.01 --shuffle)
      start_server --latency-ms 150 --rpm 5000 --tpm 1000000 "${F[@]}"
      run_lens "lens-embed+faults" --rpm 5000 --tpm 1000000 --timeout 3 --max-attempts 10
      run_peer "openai-node+faults" openai --retries 10
      run_peer "langchain-js+faults" langchain --retries 10
      ;;
    tier5-lens)  # lens-embed alone at tier 5 (CPU per row, issue 14 item 1)
      start_server --latency-ms 150 --rpm 10000 --tpm 10000000
      MODEL=$LARGE run_lens "lens-embed tier5 3072d" --rpm 10000 --tpm 10000000 --dimensions 3072
      ;;
    tier5)  # 3072 dimensions: text-embedding-3-large (lens-embed refuses 3072 for -small)
      start_server --latency-ms 150 --rpm 10000 --tpm 10000000
      MODEL=$LARGE run_lens "lens-embed tier5 3072d" --rpm 10000 --tpm 10000000 --dimensions 3072
      run_peer "openai-node tier5 3072d" openai --dimensions 3072 --model "$LARGE"
      run_peer "langchain-js tier5 3072d" langchain --dimensions 3072 --model "$LARGE"
      ;;
  esac
done
