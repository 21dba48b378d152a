#!/usr/bin/env bash
# The chaos benchmark: lens_chaos at >= 100k exchanges (faulty stand-in, >= 5 SIGKILLs,
# a PostgreSQL crash-restart), on SQLite and PostgreSQL, 1 and 3 workers. Appends one JSON
# line per run to bench/chaos/results.jsonl and prints a table for bench/RESULTS.md.
# usage: bench/chaos/run.sh [EXCHANGES] [sqlite|postgres|all] [WORKERS...]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
exchanges=${1:-100000}
which=${2:-all}
shift $(( $# > 2 ? 2 : $# ))
workers=("$@")
[ ${#workers[@]} -gt 0 ] || workers=(1 3)
build=${LENS_BUILD_DIR:-$root/build-chaos}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLENS_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target lens_chaos lens-embed >/dev/null
out="$root/bench/chaos/results.jsonl"
dbs=(sqlite postgres)
[ "$which" = all ] || dbs=("$which")
status=0
for db in "${dbs[@]}"; do
  for w in "${workers[@]}"; do
    echo "== $db, $w worker(s), $exchanges exchanges" >&2
    NO_PROXY=127.0.0.1,localhost "$build/tests/chaos/lens_chaos" --db "$db" --workers "$w" \
      --exchanges "$exchanges" --kills 5 --max-seconds 3600 --summary "$out" >/dev/null || status=1
  done
done
python3 - "$out" <<'PY'
import json, sys
print("| db | workers | exchanges | s | requests | 500 | 502 | reset | hang | garbage | short | NaN | 429 injected | 429 rate | SIGKILLs | PG restarts | final runs | rows ok | failures (reason) | verified |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for line in open(sys.argv[1]):
    r = json.loads(line); f = r["faults"]; v = r["verification"]
    reasons = ", ".join(f"{n} {k}" for k, n in v["failures_by_reason"].items())
    print(f'| {r["db"]} | {r["workers"]} | {r["exchanges"]} | {r["seconds_total"]:.0f} | {r["requests"]} | '
          f'{f.get("fault_status_500",0)} | {f.get("fault_status_502",0)} | {f.get("fault_reset",0)} | {f.get("fault_hang",0)} | '
          f'{f.get("fault_malformed",0)} | {f.get("fault_short",0)} | {f.get("fault_nan",0)} | {f.get("fault_injected_429",0)} | '
          f'{f.get("status_429_rate_limit",0)} | {r["sigkills"]} | {r["pg_restarts"]} | {r["final_runs"]} | '
          f'{v["rows_ok"]}/{v["rows"]} | {v["failures"]} ({reasons}) | {"yes" if r["ok"] else "NO"} |')
PY
exit $status
