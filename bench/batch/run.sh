#!/usr/bin/env bash
# Issue 13's measure: a backfill of EXCHANGES (default ~100k) exchanges by batch against the
# stand-in (text-embedding-3-large, 3072-d vectors, base64), beside the synchronous path on
# a copy of the same database in the same run:
#   - peak RSS of each lens-embed process (/usr/bin/time -v), the batch runs including the
#     download and writing of output files of up to 50,000 requests;
#   - client CPU (user + sys) per row of each path;
#   - tokens and cost of each (the batch price is half the synchronous one).
# usage: bench/batch/run.sh [BUILD_DIR]   (default build; its build type is in the note)
#   CONVERSATIONS=40650 (about 2.46 user messages each) BATCH=512
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(realpath -m "${1:-$root/build}")
conversations=${CONVERSATIONS:-40650}
batch=${BATCH:-512}
bin="$build/apps/lens-embed/lens-embed"
stand_in="$build/tests/stand_in/lens_stand_in_provider"
corpus="$build/tools/sample-corpus/lens-sample-corpus"
work=$(mktemp -d /tmp/lens-bench-batch.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT

"$stand_in" --port-file "$work/port" --dimensions 3072 --api-key sk-bench-key-000 \
  --batch files_dir="$work/files" >"$work/stand-in.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")
export SUPERMIND_API_KEY=sk-bench-key-000 TMPDIR="$work"
"$corpus" --sqlite "$work/batch.db" --conversations "$conversations" >/dev/null
cp "$work/batch.db" "$work/sync.db"
exchanges=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"select count(*) from messages where role='user' and trim(coalesce(content,''),' '||char(9,10,11,12,13))<>''\").fetchone()[0])" "$work/batch.db")
common=(--provider supermind --base-url "http://127.0.0.1:$port/v1" --model text-embedding-3-large
        --batch-size "$batch")

# measure NAME ARGS...: runs lens-embed under /usr/bin/time -v; appends "rss_kb cpu_s exit" to $work/NAME.
measure() {
  local name=$1; shift
  set +e
  /usr/bin/time -v "$bin" "$@" >"$work/$name.out" 2>"$work/$name.err"
  local code=$?
  set -e
  local rss cpu
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/$name.err")
  cpu=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {printf "%.2f", u + s}' "$work/$name.err")
  echo "$rss $cpu $code" >>"$work/$name.runs"
  tail -n 3 "$work/$name.out" | sed "s/^/  [$name] /"
  return 0
}

# The batch path: reruns until every exchange is embedded (the stand-in completes at once).
start=$(date +%s.%N)
for i in $(seq 20); do
  measure batch run --db "sqlite:$work/batch.db" "${common[@]}" --batch-api --batch-queue-tokens 1000000000
  [ "$(tail -n 1 "$work/batch.runs" | cut -d' ' -f3)" = 0 ] && break
done
batch_s=$(echo "$(date +%s.%N) - $start" | bc)
start=$(date +%s.%N)
measure sync run --db "sqlite:$work/sync.db" "${common[@]}" --concurrency 4
sync_s=$(echo "$(date +%s.%N) - $start" | bc)

rows() { python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from message_embeddings').fetchone()[0])" "$1"; }
tokens() { python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select coalesce(sum(token_count),0) from message_embeddings').fetchone()[0])" "$1"; }
batch_rows=$(rows "$work/batch.db"); sync_rows=$(rows "$work/sync.db")
batch_tokens=$(tokens "$work/batch.db"); sync_tokens=$(tokens "$work/sync.db")
read -r batch_rss batch_cpu batch_runs < <(awk '{if ($1 > r) r = $1; c += $2; n++} END {printf "%d %.2f %d\n", r, c, n}' "$work/batch.runs")
read -r sync_rss sync_cpu < <(awk '{print $1, $2}' "$work/sync.runs")
largest_output=$(ls -S "$work/files" 2>/dev/null | head -n 1)
echo "exchanges=$exchanges batch_size=$batch dims=3072 model=text-embedding-3-large"
echo "batch: rows=$batch_rows runs=$batch_runs wall_s=$batch_s peak_rss_mb=$((batch_rss / 1024)) cpu_s=$batch_cpu" \
     "cpu_us_per_row=$(echo "$batch_cpu * 1000000 / $batch_rows" | bc) tokens=$batch_tokens usd=$(echo "scale=4; $batch_tokens * 0.065 / 1000000" | bc)"
echo "sync:  rows=$sync_rows wall_s=$sync_s peak_rss_mb=$((sync_rss / 1024)) cpu_s=$sync_cpu" \
     "cpu_us_per_row=$(echo "$sync_cpu * 1000000 / $sync_rows" | bc) tokens=$sync_tokens usd=$(echo "scale=4; $sync_tokens * 0.13 / 1000000" | bc)"
echo "batch/sync cpu per row: $(echo "scale=6; r = ($batch_cpu / $batch_rows) / ($sync_cpu / $sync_rows); scale=2; r / 1" | bc)"
echo "stand-in files kept: $(du -sh "$work/files" | cut -f1) (largest upload: $largest_output)"
