#!/usr/bin/env bash
# bench/run.sh: moonpost beside Mosquitto on loopback, every workload of docs/benchmarks.md,
# each RUNS times; prints one table of medians with the ratio moonpost/Mosquitto.
#
# It starts its own redis-server, moonpost (scripts/send.lua, and the C send plugin when it is
# built), mosquitto (Nagle on, its default, and off) and moonpost-forwarder (bench/forwarder.c,
# a minimal one-loop forwarder: the ceiling), each with a config written into a temp dir and on
# free ports, and stops them all on exit. Nothing leaves 127.0.0.1. The brokers run
# side by side and the runs are interleaved (run 1 of every broker, then run 2, ...) so that a
# disturbance of the machine does not fall on one broker only.
#
# Environment:
#   MOONPOST_BUILD  build dir with broker/moonpost and bench/moonpost-bench
#                   (default build-bench, then build)
#   RUNS            runs per case and broker (default 3; medians are quoted)
#   DURATION        measured seconds per run (default 10)
#   CASES           a subset of: private private20k private-read private20k-read broadcast idle
#                   resume login (-read: receivers ack after every read that brought messages,
#                   --ack-every read, instead of every 32 messages or 50 ms)
#   PIN             1: brokers on cpu 0, load generator and redis on cpu 1 (default 0: the
#                   scheduler shares both cores among all)
#   QUIET_MAX       seconds to wait before a run for the machine to be quiet (default 60)
#   NOISE_MAX       a run during which other processes used more than this % of one core is
#                   repeated, up to RETRIES times (default 20, RETRIES 3)
#   KEEP            1: keep the temp dir (configs, logs, JSON) and print its path
#   PERF            1: record a perf profile of the broker during one extra, uncounted private
#                   and broadcast run per broker (perf.*.data in the temp dir; implies KEEP=1)
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
# shellcheck source=bench/mosquitto.sh
source "$ROOT/bench/mosquitto.sh"
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
CASES=${CASES:-private private20k private-read private20k-read broadcast idle resume login}
PIN=${PIN:-0}
PERF=${PERF:-0}
KEEP=${KEEP:-$PERF}

bench_require_build
for tool in redis-server mosquitto python3; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is not installed" >&2; exit 2; }
done

# The one-loop forwarder (bench/forwarder.c), the ceiling, when it is built.
FORWARDER=$MOONPOST_BUILD/bench/moonpost-forwarder

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

has_case() { [[ " $CASES " == *" $1 "* ]]; }
log() { echo "run.sh: $*" >&2; }

pin() { # pin CPU COMMAND...: runs COMMAND on that cpu when PIN=1
    local cpu=$1; shift
    if [[ $PIN == 1 ]]; then taskset -c "$cpu" "$@"; else "$@"; fi
}

# spawn CPU LOG COMMAND... &: a server whose pid $! is its own (exec), not a subshell's.
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

# ---- the servers: NAME -> port and pid ----

declare -A PORT PID

start_redis() {
    PORT[redis]=$(free_port)
    spawn 1 "$TMP/redis.log" redis-server --port "${PORT[redis]}" --bind 127.0.0.1 \
        --dir "$TMP" --save "" --appendonly no --daemonize no --loglevel warning &
    PID[redis]=$!
    PIDS+=("${PID[redis]}")
    wait_port "${PORT[redis]}" "${PID[redis]}"
}

# start_moonpost NAME lua|plugin: scripts/send.lua, or the C send plugin in its place.
start_moonpost() {
    local name=$1 variant=$2 conf=$TMP/$1.conf port
    port=$(free_port)
    {
        echo "listen 127.0.0.1:$port"
        echo "redis 127.0.0.1:${PORT[redis]}"
        echo "log_level warn"
        echo "log_file $TMP/$name.log"
        echo "http_listen \"\""
        broker_conf "$ROOT/scripts" "$variant" "$SEND_PLUGIN"
    } >"$conf"
    spawn 0 "$TMP/$name.out" "$BROKER" -c "$conf" &
    PID[$name]=$!
    PORT[$name]=$port
    PIDS+=("$!")
    wait_port "$port" "$!"
}

# start_forwarder: bench/forwarder.c, the one-loop ceiling for private chat and broadcast.
start_forwarder() {
    local port
    port=$(free_port)
    spawn 0 "$TMP/forwarder.log" "$FORWARDER" -p "$port" &
    PID[forwarder]=$!
    PORT[forwarder]=$port
    PIDS+=("$!")
    wait_port "$port" "$!"
}

# start_mosquitto NAME true|false: TCP_NODELAY on its client sockets or not (its default).
start_mosquitto() {
    local name=$1 nodelay=$2 conf=$TMP/$1.conf port
    port=$(free_port)
    mosquitto_conf "$port" "$nodelay" >"$conf"
    spawn 0 "$TMP/$name.log" mosquitto -c "$conf" &
    PID[$name]=$!
    PORT[$name]=$port
    PIDS+=("$!")
    wait_port "$port" "$!"
}

proto_of() { [[ $1 == mosquitto* ]] && echo mqtt || echo moonpost; }

# ---- measuring ----

# measure OUT SERVER ARGS...: one run against SERVER, repeated while others disturbed it.
measure() {
    local out=$1 server=$2 try pids
    shift 2
    pids=(--broker-pid "${PID[$server]}")
    [[ $server == moonpost* ]] && pids+=(--redis-pid "${PID[redis]}")
    for try in $(seq 1 "$RETRIES"); do
        wait_quiet
        pin 1 "$BENCH" "$@" --proto "$(proto_of "$server")" --port "${PORT[$server]}" \
            "${pids[@]}" --json --no-progress >"$out" || log "$out: moonpost-bench failed"
        local others
        others=$(others_pct "$out")
        ((others <= NOISE_MAX)) && return 0
        log "$(basename "$out"): other processes used ${others}% of a core; run again ($try/$RETRIES)"
    done
}

# profile CASE SERVER ARGS...: one extra run with perf recording the broker for 5 s.
profile() {
    local case=$1 server=$2
    shift 2
    log "$case $server under perf (not counted)"
    (sleep 6; exec perf record -F 999 -g -p "${PID[$server]}" -o "$TMP/perf.$case.$server.data" \
        -- sleep 5) >"$TMP/perf.$case.$server.log" 2>&1 &
    local perfpid=$!
    measure "$TMP/perf.$case.$server.json" "$server" "$@"
    wait "$perfpid" 2>/dev/null || true
}

PRIVATE=(private --clients 1000 --size 64 --window 8 --duration "$DURATION" --warmup 2)
PRIVATE20K=("${PRIVATE[@]}" --rate 20000)
PRIVATE_READ=("${PRIVATE[@]}" --ack-every read)
PRIVATE20K_READ=("${PRIVATE20K[@]}" --ack-every read)
BROADCAST=(broadcast --clients 1000 --publishers 1 --size 64 --window 8 --duration "$DURATION"
           --warmup 2)

log "moonpost $BROKER, load generator $BENCH, $RUNS run(s) of ${DURATION}s, PIN=$PIN"
log "C send plugin: ${SEND_PLUGIN:-not built (its column stays empty)}"
[[ -x $FORWARDER ]] || log "$FORWARDER is not built: the forwarder column stays empty"
start_redis

# ---- private chat and broadcast: every broker up at once, runs interleaved ----

CHAT=()
for c in private private20k private-read private20k-read broadcast; do
    has_case "$c" && CHAT+=("$c")
done
if ((${#CHAT[@]})); then
    start_moonpost moonpost lua
    SERVERS=(moonpost)
    if [[ -n $SEND_PLUGIN ]]; then start_moonpost moonpost-c-send plugin; SERVERS+=(moonpost-c-send); fi
    start_mosquitto mosquitto-nagle false
    start_mosquitto mosquitto-nodelay true
    SERVERS+=(mosquitto-nagle mosquitto-nodelay)
    if [[ -x $FORWARDER ]]; then start_forwarder; SERVERS+=(forwarder); fi
    args_of() {
        case $1 in
            private) echo "${PRIVATE[@]}" ;;
            private20k) echo "${PRIVATE20K[@]}" ;;
            private-read) echo "${PRIVATE_READ[@]}" ;;
            private20k-read) echo "${PRIVATE20K_READ[@]}" ;;
            broadcast) echo "${BROADCAST[@]}" ;;
        esac
    }
    # the users exist from here on: a first short run registers them on every moonpost
    for s in "${SERVERS[@]}"; do
        [[ $s == moonpost* ]] || continue
        measure "$TMP/warmup.$s.json" "$s" private --clients 1000 --duration 1 --warmup 0
    done
    if [[ $PERF == 1 ]]; then
        for c in private broadcast; do
            has_case "$c" || continue
            for s in "${SERVERS[@]}"; do
                [[ $c == broadcast && $s == moonpost-c-send ]] && continue
                # shellcheck disable=SC2046
                profile "$c" "$s" $(args_of "$c")
            done
        done
    fi
    for i in $(seq 1 "$RUNS"); do
        for c in "${CHAT[@]}"; do
            for s in "${SERVERS[@]}"; do
                [[ $c == broadcast && $s == moonpost-c-send ]] && continue # no send in it
                log "$c $s run $i/$RUNS"
                # shellcheck disable=SC2046
                measure "$RESULTS/$c.$s.$i.json" "$s" $(args_of "$c") --label "$c/$s/$i"
            done
        done
    done
    for s in "${SERVERS[@]}"; do stop_pid "${PID[$s]}"; done
fi

# ---- idle sessions: a fresh broker per run, so its RSS before the run is its start-up RSS ----

if has_case idle; then
    for i in $(seq 1 "$RUNS"); do
        start_moonpost moonpost-idle lua
        log "idle moonpost run $i/$RUNS"
        measure "$RESULTS/idle.moonpost.$i.json" moonpost-idle idle --clients 15000 \
            --duration 5 --settle 2 --setup-concurrency 512 --label "idle/moonpost/$i"
        stop_pid "${PID[moonpost-idle]}"
        start_mosquitto mosquitto-idle false
        log "idle mosquitto run $i/$RUNS"
        measure "$RESULTS/idle.mosquitto-nagle.$i.json" mosquitto-idle idle --clients 15000 \
            --duration 5 --settle 2 --setup-concurrency 512 --label "idle/mosquitto/$i"
        stop_pid "${PID[mosquitto-idle]}"
    done
fi

# ---- storms: moonpost only (MQTT has no resume token) ----

if has_case resume || has_case login; then
    start_moonpost moonpost lua
    for i in $(seq 1 "$RUNS"); do
        for c in resume login; do
            has_case "$c" || continue
            log "$c storm run $i/$RUNS"
            measure "$RESULTS/$c.moonpost.$i.json" moonpost "$c" --clients 10000 --duration 30 \
                --settle 2 --setup-concurrency 512 --label "$c/moonpost/$i"
        done
    done
    stop_pid "${PID[moonpost]}"
fi

python3 "$ROOT/bench/summarize.py" "$RESULTS"
