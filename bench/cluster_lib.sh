# shellcheck shell=bash
# bench/cluster_lib.sh (sourced by cluster.sh and cluster_sessions.sh): a cluster on one box.
# One redis-server and N brokers on loopback, each a node (node_id bench-G-1..N, G counting the
# starts: a node stopped a moment ago may still count as live under its id; its own port),
# all configured by broker_conf.sh; and fleets of moonpost-bench processes, each holding a slice
# of the clients, that start their timed phase together (--barrier).
#
# The caller sets ROOT (the checkout), and MOONPOST_BUILD if not build-bench/ (else build/).
# Every process started here is stopped by its pid on exit (cl_cleanup), and the temp dir is
# removed (KEEP=1 keeps it). Only 127.0.0.0/8 is used.

# shellcheck source=bench/build_dir.sh
source "$ROOT/bench/build_dir.sh"
trap cl_cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=bench/broker_conf.sh
source "$ROOT/bench/broker_conf.sh"
# shellcheck source=bench/quiet.sh
source "$ROOT/bench/quiet.sh"
# shellcheck source=bench/ports.sh
source "$ROOT/bench/ports.sh"

CL_TMP=$(mktemp -d /tmp/moonpost-cluster.XXXXXX)
CL_PIDS=()     # every process started, for cl_cleanup
BROKER_PIDS=() # the brokers running now
BROKER_PORTS=()
CONNECT=""     # their addresses for --connect
CL_STARTS=0    # cl_start_brokers calls so far
REDIS_PORT=""
REDIS_PID=""
# variant of the send path: lua (scripts/send.lua) or plugin (the C send plugin)
CL_VARIANT=${VARIANT:-lua}
CL_SEND_PLUGIN=$MOONPOST_BUILD/plugins/moonpost_send.so

cl_log() { echo "$(basename "$0"): $*" >&2; }

cl_check_build() {
    bench_require_build
    command -v redis-server >/dev/null || { cl_log "redis-server is not installed"; exit 2; }
}

cl_cleanup() {
    local pid
    for pid in "${CL_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${CL_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ ${KEEP:-0} == 1 ]]; then cl_log "configs, logs and JSON kept in $CL_TMP"
    else rm -rf "$CL_TMP"; fi
}

cl_start_redis() {
    REDIS_PORT=$(free_port)
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$CL_TMP" --save "" \
        --appendonly no --daemonize no --loglevel warning >>"$CL_TMP/redis.log" 2>&1 &
    REDIS_PID=$!
    CL_PIDS+=("$REDIS_PID")
    wait_port "$REDIS_PORT" "$REDIS_PID"
}

cl_redis() { redis-cli -p "$REDIS_PORT" "$@"; }

# INFO memory used_memory of the shared Redis, in bytes.
cl_redis_used_memory() {
    cl_redis INFO memory | tr -d '\r' | awk -F: '$1 == "used_memory" { print $2 }'
}

# cl_start_brokers N [--set KEY=VALUE]...: N brokers, bench-G-1..N, on fresh ports.
cl_start_brokers() {
    local n=$1 i port conf=$CL_TMP/broker.conf
    shift
    CL_STARTS=$((CL_STARTS + 1))
    {
        echo "redis 127.0.0.1:$REDIS_PORT"
        echo "log_level warn"
        echo "http_listen \"\""
        broker_conf "$ROOT/scripts" "$CL_VARIANT" "$CL_SEND_PLUGIN"
    } >"$conf"
    BROKER_PIDS=()
    BROKER_PORTS=()
    for i in $(seq 1 "$n"); do
        port=$(free_port)
        "$BROKER" -c "$conf" --set "listen=127.0.0.1:$port" --set "node_id=bench-$CL_STARTS-$i" \
            --set "log_file=$CL_TMP/broker-$CL_STARTS-$i.log" "$@" \
            >>"$CL_TMP/broker-$CL_STARTS-$i.out" 2>&1 &
        BROKER_PIDS+=("$!")
        BROKER_PORTS+=("$port")
        CL_PIDS+=("$!")
    done
    for i in $(seq 0 $((n - 1))); do
        wait_port "${BROKER_PORTS[$i]}" "${BROKER_PIDS[$i]}" || return 1
    done
    CONNECT=$(printf '127.0.0.1:%s,' "${BROKER_PORTS[@]}")
    CONNECT=${CONNECT%,}
}

cl_stop_brokers() {
    local pid
    for pid in "${BROKER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${BROKER_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    BROKER_PIDS=()
    BROKER_PORTS=()
}

cl_broker_pids() { local IFS=,; echo "${BROKER_PIDS[*]}"; }

# The brokers' VmRSS, each in KiB, space-separated.
cl_brokers_rss_kib() {
    local pid
    for pid in "${BROKER_PIDS[@]}"; do
        awk '/^VmRSS:/ { printf "%s ", $2 }' "/proc/$pid/status"
    done
    echo
}

# cl_fleet NAME K CLIENTS ARG...: K moonpost-bench processes against every broker (--connect),
# process k holding CLIENTS/K of the clients as users PREFIXk_0, PREFIXk_1, ... (PREFIX:
# $FLEET_USERS, default u) from its own source addresses 127.(20+k).0.1...; they start their
# timed phase together once all are ready (--barrier), after the command in $FLEET_AT_BARRIER
# if any (a hook that samples memory, say). Each one's JSON goes to $CL_TMP/NAME.k.json.
cl_fleet() {
    local name=$1 k=$2 clients=$3 i n pids=() dir=$CL_TMP/barrier.$1 waited=0 redis=()
    shift 3
    [[ -z $REDIS_PID ]] || redis=(--redis-pid "$REDIS_PID")  # none behind an MQTT broker
    rm -rf "$dir"
    mkdir -p "$dir"
    for i in $(seq 0 $((k - 1))); do
        n=$((clients / k + (i < clients % k ? 1 : 0)))
        "$BENCH" "$@" --clients "$n" --connect "$CONNECT" --user-prefix "${FLEET_USERS:-u}${i}_" \
            --src-base "127.$((20 + i)).0.1" --barrier "$dir" --broker-pid "$(cl_broker_pids)" \
            "${redis[@]}" --label "$name/$i" --json --no-progress \
            >"$CL_TMP/$name.$i.json" 2>"$CL_TMP/$name.$i.err" &
        pids+=("$!")
        CL_PIDS+=("$!")
    done
    # the go: when every process is ready, or one has died (the others must not wait for it)
    while (($(find "$dir" -name 'ready.*' | wc -l) < k)); do
        for i in "${pids[@]}"; do
            kill -0 "$i" 2>/dev/null || { cl_log "$name: a load generator exited early"; break 2; }
        done
        sleep 0.1
        waited=$((waited + 1))
    done
    cl_log "$name: all $k load generators ready after $((waited / 10)) s"
    if [[ -n ${FLEET_AT_BARRIER:-} ]]; then $FLEET_AT_BARRIER; fi
    touch "$dir/go"
    for i in "${pids[@]}"; do wait "$i" || cl_log "$name: a load generator exited with $?"; done
}

# cl_summary NAME: the fleet's results put together (bench/cluster_merge.py), one JSON line.
cl_summary() {
    python3 "$ROOT/bench/cluster_merge.py" "$CL_TMP/$1".*.json
}
