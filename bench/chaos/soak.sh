#!/usr/bin/env bash
# The long soak (issue 16): lens_chaos at 10^6 exchanges on PostgreSQL with three workers,
# the faulty stand-in, SIGKILLs and PostgreSQL crash-restarts spread over the run, and
# pauses (a worker SIGSTOPped past its 6 s lease, then resumed: what a partition does to
# it), then a rerun until nothing is left and lens_verify over every row. Appends one
# JSON line to bench/chaos/soak.jsonl and prints the row for bench/RESULTS.md.
# usage: bench/chaos/soak.sh [EXCHANGES] [KILLS] [PG_RESTARTS] [PAUSES]
# Kills and restarts land at random points of progress (lens_chaos), not on a clock: choose
# them for the expected length (about one kill a minute and a restart every five).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
exchanges=${1:-1000000}
kills=${2:-30}
restarts=${3:-6}
pauses=${4:-2}
build=${LENS_BUILD_DIR:-$root/build-chaos}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLENS_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target lens_chaos lens-embed >/dev/null
out="$root/bench/chaos/soak.jsonl"
status=0
NO_PROXY=127.0.0.1,localhost "$build/tests/chaos/lens_chaos" --db postgres --workers 3 \
  --exchanges "$exchanges" --kills "$kills" --pg-restarts "$restarts" --pauses "$pauses" \
  --pause-seconds 20 --max-seconds 7200 --summary "$out" >/dev/null || status=1
python3 - "$out" <<'PY'
import json, sys
print("| exchanges | workers | min | requests | faults injected | 429 answered | SIGKILLs (mid-run) | PG restarts | pauses | late writes fenced | final runs | rows ok | failures (reason) | verified |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for line in open(sys.argv[1]):
    r = json.loads(line); f = r["faults"]; v = r["verification"]
    injected = sum(n for k, n in f.items() if k.startswith("fault_"))
    reasons = ", ".join(f"{n} {k}" for k, n in v["failures_by_reason"].items())
    print(f'| {r["exchanges"]} | {r["workers"]} | {r["seconds_total"]/60:.1f} | {r["requests"]} | {injected} | '
          f'{f.get("status_429_rate_limit",0)} | {r["sigkills"]} ({r["sigkills_mid_run"]}) | {r["pg_restarts"]} | '
          f'{r["pauses"]} × {r["pause_seconds"]:.0f} s | {r["fenced_reported"]} | {r["final_runs"]} | '
          f'{v["rows_ok"]}/{v["rows"]} | {v["failures"]} ({reasons}) | {"yes" if r["ok"] else "NO"} |')
PY
exit $status
