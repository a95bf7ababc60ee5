#!/usr/bin/env bash
# bench/rooms.sh: the rooms of docs/benchmarks.md ("Rooms"), short and bounded. On one broker
# (scripts with rooms.lua) and its own redis-server, runs interleaved RUNS times:
#   broadcast  1 publisher -> 1,000 receivers (the reference)
#   fanout     1 publisher -> one room of 1,000 online members (room.send)
#   rooms      100 rooms of 10 members, every member sending to its room
# and prints the medians: deliveries/s of the two fan-outs side by side, room.send stored/s.
#
# Environment: MOONPOST_BUILD (default build-bench, then build), RUNS (default 3), DURATION
# (measured seconds per run, default 5), KEEP=1 keeps the temp dir (configs, logs, JSON).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/broker_conf.sh
source "$ROOT/bench/broker_conf.sh"
# shellcheck source=bench/quiet.sh
source "$ROOT/bench/quiet.sh"
# shellcheck source=bench/ports.sh
source "$ROOT/bench/ports.sh"
# shellcheck source=bench/build_dir.sh
source "$ROOT/bench/build_dir.sh"
RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
KEEP=${KEEP:-0}
bench_require_build

TMP=$(mktemp -d /tmp/moonpost-rooms.XXXXXX)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ $KEEP == 1 ]]; then echo "rooms.sh: kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$TMP" --save "" --appendonly no \
    --daemonize no --loglevel warning >"$TMP/redis.log" 2>&1 &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
wait_port "$REDIS_PORT" "$REDIS_PID"

PORT=$(free_port)
{
    echo "listen 127.0.0.1:$PORT"
    echo "redis 127.0.0.1:$REDIS_PORT"
    echo "log_level warn"
    echo "log_file $TMP/moonpost.log"
    echo "http_listen \"\""
    broker_conf "$ROOT/scripts" lua ""
    echo "script $ROOT/scripts/rooms.lua"
    echo "room_history_max 10000"
    echo "room_members_max 10000"
} >"$TMP/moonpost.conf"
"$BROKER" -c "$TMP/moonpost.conf" >"$TMP/moonpost.out" 2>&1 &
BROKER_PID=$!
PIDS+=("$BROKER_PID")
wait_port "$PORT" "$BROKER_PID"

COMMON=(--size 64 --window 8 --duration "$DURATION" --warmup 1 --port "$PORT"
        --broker-pid "$BROKER_PID" --redis-pid "$REDIS_PID" --json --no-progress)
declare -A ARGS=(
    [broadcast]="broadcast --clients 1000 --publishers 1 --user-prefix rb"
    [fanout]="room --clients 1000 --publishers 1 --user-prefix rf"
    [rooms]="room --clients 1000 --room-size 10 --user-prefix rr"
)
CASES=(broadcast fanout rooms)

echo "rooms.sh: $RUNS run(s) of ${DURATION}s per case, interleaved; broker $BROKER" >&2
for run in $(seq 1 "$RUNS"); do
    for c in "${CASES[@]}"; do
        wait_quiet
        # shellcheck disable=SC2086
        "$BENCH" ${ARGS[$c]} "${COMMON[@]}" >"$TMP/$c.$run.json" ||
            echo "rooms.sh: $c run $run failed" >&2
        echo "rooms.sh: $c run $run done" >&2
    done
done

python3 - "$TMP" "$RUNS" <<'EOF'
import json, statistics, sys
tmp, runs = sys.argv[1], int(sys.argv[2])

def runs_of(case):
    out = []
    for i in range(1, runs + 1):
        try:
            out.append(json.load(open("%s/%s.%d.json" % (tmp, case, i))))
        except (OSError, ValueError):
            pass
    return out

def median(case, key):
    values = [r.get(key) for r in runs_of(case) if r.get(key) is not None]
    return statistics.median(values) if values else float("nan")

def errors(case):
    return sum(r.get("errors_total", 0) for r in runs_of(case))

def latency(case, q):
    values = [r["latency"][q] / 1000 for r in runs_of(case) if r.get("latency", {}).get("count")]
    return statistics.median(values) if values else float("nan")

rows = [("broadcast 1 -> 1,000", "broadcast", "delivered_per_s"),
        ("room fan-out 1 -> 1,000 members", "fanout", "delivered_per_s"),
        ("room.send, 100 rooms of 10: stored", "rooms", "sent_per_s"),
        ("room.send, 100 rooms of 10: delivered", "rooms", "delivered_per_s")]
print("| case | median/s | latency p50 ms | p99 ms | broker CPU % | redis CPU % | errors |")
print("|---|---|---|---|---|---|---|")
for label, case, key in rows:
    print("| %s | %.0f | %.2f | %.2f | %.0f | %.0f | %d |" % (
        label, median(case, key), latency(case, "p50_us"), latency(case, "p99_us"),
        median(case, "cpu_broker_pct"), median(case, "cpu_redis_pct"), errors(case)))
b, f = median("broadcast", "delivered_per_s"), median("fanout", "delivered_per_s")
print("\nroom fan-out / broadcast: %.2f" % (f / b if b else float("nan")))
EOF
