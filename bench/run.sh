#!/usr/bin/env bash
# bench/run.sh: moonpost beside Mosquitto on loopback, every workload of docs/benchmarks.md,
# each RUNS times; prints one table of medians with the ratio moonpost/Mosquitto.
#
# It starts its own redis-server, moonpost and mosquitto, each with a config written into a
# temp dir and on free ports, and stops them all on exit. Nothing leaves 127.0.0.1.
#
# Environment:
#   MOONPOST_BUILD  build dir with broker/moonpost and clients/c/bench/moonpost-bench
#                   (default build-bench, then build)
#   RUNS            runs per case (default 3; medians are quoted)
#   DURATION        measured seconds per run (default 10)
#   CASES           space-separated subset of: private private20k broadcast idle resume login
#   PIN             1: broker on cpu 0, load generator and redis on cpu 1 (default 0: the
#                   scheduler shares both cores among all)
#   QUIET_MAX       seconds to wait for other processes to leave the CPUs before a run
#                   (default 120; the JSON of each run records what else was busy)
#   KEEP            1: keep the temp dir (configs, logs, JSON) and print its path
#   PERF            1: record a perf profile of the broker during the private and broadcast
#                   runs (perf.data files in the temp dir; implies KEEP=1)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z "${MOONPOST_BUILD:-}" ]]; then
    MOONPOST_BUILD=$ROOT/build-bench
    [[ -x $MOONPOST_BUILD/broker/moonpost ]] || MOONPOST_BUILD=$ROOT/build
fi
BROKER=$MOONPOST_BUILD/broker/moonpost
BENCH=$MOONPOST_BUILD/clients/c/bench/moonpost-bench
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
CASES=${CASES:-private private20k broadcast idle resume login}
PIN=${PIN:-0}
QUIET_MAX=${QUIET_MAX:-120}
PERF=${PERF:-0}
KEEP=${KEEP:-$PERF}

for bin in "$BROKER" "$BENCH"; do
    [[ -x $bin ]] || { echo "run.sh: $bin is missing; build it first (see docs/benchmarks.md)" >&2; exit 2; }
done
for tool in redis-server mosquitto python3; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is not installed" >&2; exit 2; }
done

# The C send plugin (plugins/send) when it is built.
SEND_PLUGIN=""
for so in "$MOONPOST_BUILD"/plugins/moonpost_send.so "$MOONPOST_BUILD"/plugins/send/*.so; do
    [[ -f $so ]] && { SEND_PLUGIN=$so; break; }
done

TMP=$(mktemp -d /tmp/moonpost-bench.XXXXXX)
RESULTS=$TMP/results
mkdir -p "$RESULTS"
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ $KEEP == 1 ]]; then echo "run.sh: results, configs and logs kept in $TMP" >&2
    else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {
    local port=$1 pid=$2 i
    for i in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || { echo "run.sh: process $pid exited while starting" >&2; return 1; }
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "run.sh: port $port did not open" >&2
    return 1
}

pin() { # pin CPU COMMAND...: runs COMMAND on that cpu when PIN=1
    local cpu=$1; shift
    if [[ $PIN == 1 ]]; then taskset -c "$cpu" "$@"; else "$@"; fi
}

# spawn CPU LOG COMMAND...: starts a server in the background as the process $! (exec, so that
# the pid given to the load generator is the server's own, not a subshell's).
spawn() {
    local cpu=$1 log=$2; shift 2
    if [[ $PIN == 1 ]]; then exec taskset -c "$cpu" "$@" >>"$log" 2>&1
    else exec "$@" >>"$log" 2>&1; fi
}

stop_pid() {
    local pid=$1 keep=() p
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# ---- the servers ----

REDIS_PORT=$(free_port)
spawn 1 "$TMP/redis.log" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$TMP" \
    --save "" --appendonly no --daemonize no --loglevel warning &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
wait_port "$REDIS_PORT" "$REDIS_PID"

MP_PID=""
MP_PORT=""
# start_moonpost VARIANT: VARIANT lua (scripts/send.lua) or plugin (the C send plugin).
start_moonpost() {
    local variant=$1 conf=$TMP/moonpost-$1.conf s
    MP_PORT=$(free_port)
    {
        echo "listen 127.0.0.1:$MP_PORT"
        echo "redis 127.0.0.1:$REDIS_PORT"
        echo "log_level warn"
        echo "log_file $TMP/moonpost-$variant.log"
        echo "http_listen \"\""
        echo "max_connections 20000"
        # argon2id at its minimum cost: only login and register get cheaper (see the docs)
        echo "pwhash_memory 8"
        echo "pwhash_ops 1"
        echo "login_max_failures 1000000"
        for s in ping register login users send broadcast mailbox presence; do
            [[ $variant == plugin && $s == send ]] && continue
            echo "script $ROOT/scripts/$s.lua"
        done
        [[ $variant == plugin ]] && echo "plugin $SEND_PLUGIN"
    } >"$conf"
    spawn 0 "$TMP/moonpost-$variant.out" "$BROKER" -c "$conf" &
    MP_PID=$!
    PIDS+=("$MP_PID")
    wait_port "$MP_PORT" "$MP_PID"
}

MQ_PID=""
MQ_PORT=""
# start_mosquitto NODELAY: NODELAY false (Mosquitto's default: Nagle on) or true.
start_mosquitto() {
    local nodelay=$1 conf=$TMP/mosquitto-$1.conf
    MQ_PORT=$(free_port)
    cat >"$conf" <<EOF
listener $MQ_PORT 127.0.0.1
allow_anonymous true
max_connections -1
persistence false
log_dest stderr
log_type error
log_type warning
set_tcp_nodelay $nodelay
EOF
    spawn 0 "$TMP/mosquitto-$nodelay.log" mosquitto -c "$conf" &
    MQ_PID=$!
    PIDS+=("$MQ_PID")
    wait_port "$MQ_PORT" "$MQ_PID"
}

# ---- measuring ----

# Waits until the machine is quiet (other processes use < 15% of a core) or QUIET_MAX passed.
wait_quiet() {
    local waited=0 a b busy
    while ((waited < QUIET_MAX)); do
        a=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
        sleep 1
        b=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
        busy=$(awk -v a="$a" -v b="$b" 'BEGIN{split(a,x," "); split(b,y," ");
            t=(y[1]-x[1])+(y[2]-x[2]); print t>0 ? int(100*(y[1]-x[1])/t*2) : 0}')
        ((busy < 15)) && return 0
        waited=$((waited + 1))
        ((waited % 10 == 0)) && echo "run.sh: waiting for a quiet machine (busy ${busy}% of a core)" >&2
    done
    echo "run.sh: machine still busy after ${QUIET_MAX}s; measuring anyway (recorded)" >&2
}

# bench CASE VARIANT BROKER_PID REDIS_PID ARGS...: RUNS runs, one JSON file each. With PERF=1,
# private and broadcast get one more run first, under perf record, that is not counted.
bench() {
    local case=$1 variant=$2 bpid=$3 rpid=$4 i out
    shift 4
    local pids=(--broker-pid "$bpid")
    [[ -n $rpid ]] && pids+=(--redis-pid "$rpid")
    if [[ $PERF == 1 && ($case == private || $case == broadcast) ]]; then
        wait_quiet
        echo "run.sh: $case $variant under perf (not counted)" >&2
        (sleep 5; exec perf record -F 999 -g -p "$bpid" -o "$TMP/perf.$case.$variant.data" \
            -- sleep 5) >"$TMP/perf.$case.$variant.log" 2>&1 &
        local perfpid=$!
        pin 1 "$BENCH" "$@" "${pids[@]}" --json --no-progress \
            --label "$case/$variant/perf" >"$TMP/perf.$case.$variant.json" || true
        wait "$perfpid" 2>/dev/null || true
    fi
    for i in $(seq 1 "$RUNS"); do
        wait_quiet
        out=$RESULTS/$case.$variant.$i.json
        echo "run.sh: $case $variant run $i/$RUNS" >&2
        pin 1 "$BENCH" "$@" "${pids[@]}" --json --no-progress \
            --label "$case/$variant/$i" >"$out" || echo "run.sh: $case $variant run $i failed" >&2
    done
}

has_case() { [[ " $CASES " == *" $1 "* ]]; }

PRIVATE=(private --clients 1000 --size 64 --duration "$DURATION" --warmup 2)
BROADCAST=(broadcast --clients 1000 --publishers 1 --size 64 --duration "$DURATION" --warmup 2)

run_chat_cases() { # run_chat_cases VARIANT PROTO PORT BROKER_PID REDIS_PID
    local variant=$1 proto=$2 port=$3 bpid=$4 rpid=$5
    local common=(--proto "$proto" --port "$port" --user-prefix "b")
    if has_case private; then
        bench private "$variant" "$bpid" "$rpid" "${PRIVATE[@]}" "${common[@]}" --window 8
    fi
    if has_case private20k; then
        bench private20k "$variant" "$bpid" "$rpid" "${PRIVATE[@]}" "${common[@]}" --rate 20000 \
            --window 8
    fi
    if has_case broadcast && [[ $variant != plugin ]]; then
        bench broadcast "$variant" "$bpid" "$rpid" "${BROADCAST[@]}" "${common[@]}" --window 8
    fi
}

echo "run.sh: moonpost $BROKER, load generator $BENCH, $RUNS run(s) of ${DURATION}s, PIN=$PIN" >&2
echo "run.sh: C send plugin: ${SEND_PLUGIN:-not built (its rows stay empty)}" >&2

# private chat and broadcast: moonpost with Lua send, with the C send plugin, Mosquitto both ways
start_moonpost lua
run_chat_cases lua moonpost "$MP_PORT" "$MP_PID" "$REDIS_PID"
stop_pid "$MP_PID"
if [[ -n $SEND_PLUGIN ]] && (has_case private || has_case private20k); then
    start_moonpost plugin
    run_chat_cases plugin moonpost "$MP_PORT" "$MP_PID" "$REDIS_PID"
    stop_pid "$MP_PID"
fi
for nodelay in false true; do
    start_mosquitto "$nodelay"
    run_chat_cases "mosquitto-nodelay-$nodelay" mqtt "$MQ_PORT" "$MQ_PID" ""
    stop_pid "$MQ_PID"
done

# idle sessions: a fresh broker per run, so that its RSS before the run is its start-up RSS
if has_case idle; then
    runs=$RUNS
    for i in $(seq 1 "$runs"); do
        RUNS=1
        start_moonpost lua
        bench idle lua "$MP_PID" "$REDIS_PID" idle --clients 15000 --duration 5 --settle 2 \
            --port "$MP_PORT" --setup-concurrency 512
        mv "$RESULTS/idle.lua.1.json" "$RESULTS/idle.lua.r$i.json"
        stop_pid "$MP_PID"
        start_mosquitto true
        bench idle mosquitto "$MQ_PID" "" idle --proto mqtt --clients 15000 --duration 5 \
            --settle 2 --port "$MQ_PORT" --setup-concurrency 512
        mv "$RESULTS/idle.mosquitto.1.json" "$RESULTS/idle.mosquitto.r$i.json"
        stop_pid "$MQ_PID"
    done
    RUNS=$runs
fi

# storms: moonpost only (MQTT has no resume token)
if has_case resume || has_case login; then
    start_moonpost lua
    has_case resume && bench resume lua "$MP_PID" "$REDIS_PID" resume --clients 10000 \
        --duration 30 --settle 2 --port "$MP_PORT" --setup-concurrency 512
    has_case login && bench login lua "$MP_PID" "$REDIS_PID" login --clients 10000 \
        --duration 30 --settle 2 --port "$MP_PORT" --setup-concurrency 512
    stop_pid "$MP_PID"
fi

python3 "$ROOT/bench/summarize.py" "$RESULTS"
