#!/usr/bin/env bash
# bench/instructions.sh ROOT...: the broker's instructions per delivered private message, counted
# by callgrind, for the build-bench/ of each checkout ROOT. On a shared or virtual machine CPU
# time per message moves by 10-30% from run to run; an instruction count moves by about 1%, so
# an A/B of a change that saves a few percent is read here (docs/benchmarks.md).
#
#   bench/instructions.sh ../moonpost-old .    # each: its redis-server, its broker under callgrind
#
# The broker runs under valgrind, 50 times slower: a small, slow workload (100 clients sending
# 500 msgs/s in all), counted for 4 s once the sends are steady. User-space instructions only
# (the broker's code, Lua, libc, libevent, hiredis): syscalls count as one instruction each.
# Environment: ACK_EVERY (moonpost-bench --ack-every: a count, default 32, or read); RUNS per
# checkout (default 1); VARIANT lua (scripts/send.lua, default) or plugin (the C send plugin);
# KEEP a directory to keep each run's callgrind output in (for callgrind_annotate).
# Everything listens on 127.0.0.1 and stops on exit.
set -euo pipefail
ROOT_SELF=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/broker_conf.sh
source "$ROOT_SELF/bench/broker_conf.sh"
# shellcheck source=bench/ports.sh
source "$ROOT_SELF/bench/ports.sh"
[[ $# -ge 1 ]] || { sed -n 2,14p "$0" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "instructions.sh: valgrind is needed (apt-get install valgrind)" >&2; exit 2; }
BENCH=$ROOT_SELF/build-bench/bench/moonpost-bench
TMP=$(mktemp -d /tmp/moonpost-instr.XXXXXX)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT

# deliveries HTTP_PORT: the broker's moonpost_deliveries_total.
deliveries() {
    python3 - "$1" <<'PY'
import sys, urllib.request
for line in urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=30):
    if line.startswith(b"moonpost_deliveries_total "):
        print(int(float(line.split()[1])))
PY
}

# measure ROOT N: one run; prints instructions per delivery.
measure() {
    local root=$1 dir=$TMP/$2 redis_port port http_port redis_pid broker_pid bench_pid d0 d1
    mkdir -p "$dir"
    redis_port=$(free_port)
    redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no \
        --loglevel warning >"$dir/redis.log" 2>&1 &
    redis_pid=$!
    PIDS+=("$redis_pid")
    wait_port "$redis_port" "$redis_pid"
    port=$(free_port)
    http_port=$(free_port)
    {
        echo "listen 127.0.0.1:$port"
        echo "redis 127.0.0.1:$redis_port"
        echo "http_listen 127.0.0.1:$http_port"
        echo "log_level warn"
        echo "redis_timeout 30" # valgrind's pace
        broker_conf "$root/scripts" "${VARIANT:-lua}" "$root/build-bench/plugins/moonpost_send.so"
    } >"$dir/broker.conf"
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$dir/callgrind.out" \
        "$root/build-bench/broker/moonpost" -c "$dir/broker.conf" >"$dir/broker.log" 2>&1 &
    broker_pid=$!
    PIDS+=("$broker_pid")
    for _ in $(seq 1 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$http_port") 2>/dev/null && break
        sleep 0.2
    done
    "$BENCH" private -p "$port" -c 100 --rate 500 -d 20 --warmup 2 --setup-timeout 300 \
        --ack-every "${ACK_EVERY:-32}" --no-progress >"$dir/bench.txt" 2>&1 &
    bench_pid=$!
    sleep 20 # setup (registrations and logins, slowed down) and warm-up are over
    d0=$(deliveries "$http_port")
    callgrind_control -i on "$broker_pid" >/dev/null 2>&1
    sleep 4
    callgrind_control -i off "$broker_pid" >/dev/null 2>&1
    d1=$(deliveries "$http_port")
    callgrind_control -d "$broker_pid" >/dev/null 2>&1
    wait "$bench_pid" || { echo "instructions.sh: the load generator failed:" >&2; cat "$dir/bench.txt" >&2; exit 1; }
    kill "$broker_pid" "$redis_pid"
    wait "$broker_pid" "$redis_pid" 2>/dev/null || true
    python3 - "$d0" "$d1" "$dir"/callgrind.out* <<'PY'
import sys
d0, d1 = int(sys.argv[1]), int(sys.argv[2])
ir = 0
for path in sys.argv[3:]:
    for line in open(path, errors="replace"):
        if line.startswith("totals:"):
            ir += int(line.split()[1])
if d1 <= d0 or ir == 0:
    sys.exit("instructions.sh: nothing counted (%d deliveries, %d instructions)" % (d1 - d0, ir))
print("%d instructions per delivery (%d deliveries counted)" % (ir / (d1 - d0), d1 - d0))
PY
    if [[ -n ${KEEP:-} ]]; then
        mkdir -p "$KEEP/$n"
        cp "$dir"/callgrind.out* "$KEEP/$n/"
    fi
}

n=0
for run in $(seq 1 "${RUNS:-1}"); do
    for root in "$@"; do
        n=$((n + 1))
        root=$(cd "$root" && pwd)
        printf '%s run %d: %s\n' "$root" "$run" "$(measure "$root" "$n")"
    done
done
