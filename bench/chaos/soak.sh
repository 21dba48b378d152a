#!/usr/bin/env bash
# The long soak (issue 16): lens_chaos at 10^6 exchanges on PostgreSQL with three workers,
# the faulty stand-in, a SIGKILL of a random worker every KILL_EVERY seconds and a
# PostgreSQL crash-restart every RESTART_EVERY seconds (on a clock, for as long as the run
# lasts), one network partition (worker 0 runs in a network namespace; its veth link is cut
# for PARTITION_SECONDS, past its 6 s lease, while messages it holds are edited), and
# PAUSES pauses (a worker SIGSTOPped for 20 s, then resumed); then a rerun until nothing
# is left and lens_verify over every row. Needs root (ip netns). Appends one JSON line to
# bench/chaos/soak.jsonl and prints the table for bench/RESULTS.md.
# usage: bench/chaos/soak.sh [EXCHANGES] [KILL_EVERY] [RESTART_EVERY] [PARTITION_SECONDS] [PAUSES]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
exchanges=${1:-1000000}
kill_every=${2:-60}
restart_every=${3:-300}
partition_seconds=${4:-30}
pauses=${5:-2}
build=${LENS_BUILD_DIR:-$root/build-chaos}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLENS_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target lens_chaos lens-embed >/dev/null
out="$root/bench/chaos/soak.jsonl"
status=0
NO_PROXY=127.0.0.1,localhost "$build/tests/chaos/lens_chaos" --db postgres --workers 3 \
  --exchanges "$exchanges" --kill-every "$kill_every" --restart-every "$restart_every" \
  --partition-seconds "$partition_seconds" --pauses "$pauses" \
  --pause-seconds 20 --max-seconds 7200 --summary "$out" >/dev/null || status=1
python3 - "$out" <<'PY'
import json, sys
kinds = ["fault_status_500", "fault_status_502", "fault_reset", "fault_hang", "fault_malformed", "fault_short", "fault_nan", "fault_injected_429"]
print("| exchanges | workers | min | requests | faults injected (500/502/reset/hang/garbage/short/NaN/429) | 429 answered | SIGKILLs (mid-run) | PG restarts | partition (edited) | pauses | late writes fenced | older overwrites | final runs | rows ok | failures (reason) | verified |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for line in open(sys.argv[1]):
    r = json.loads(line); f = r["faults"]; v = r["verification"]
    injected = sum(n for k, n in f.items() if k.startswith("fault_"))
    by_kind = "/".join(str(f.get(k, 0)) for k in kinds)
    part = f'{r.get("partitions", 0)} × {r.get("partition_seconds", 0):.0f} s ({r.get("edited_during_partition", 0)})' if "partitions" in r else "none"
    reasons = ", ".join(f"{n} {k}" for k, n in v["failures_by_reason"].items())
    print(f'| {r["exchanges"]} | {r["workers"]} | {r["seconds_total"]/60:.1f} | {r["requests"]} | {injected} ({by_kind}) | '
          f'{f.get("status_429_rate_limit",0)} | {r["sigkills"]} ({r["sigkills_mid_run"]}) | {r["pg_restarts"]} | {part} | '
          f'{r["pauses"]} × {r["pause_seconds"]:.0f} s | {r["fenced_reported"]} | {r.get("older_overwrites", "n/a")} | {r["final_runs"]} | '
          f'{v["rows_ok"]}/{v["rows"]} | {v["failures"]} ({reasons}) | {"yes" if r["ok"] else "NO"} |')
PY
exit $status
