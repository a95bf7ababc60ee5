#!/usr/bin/env bash
# bench/redis_cluster.sh: durable private chat (every message in an append-only Redis before its
# 200: appendonly yes, fsync every second) on 2 brokers over a Redis Cluster of 3 masters with a
# replica each, against 2 brokers over one redis-server, and beside one Mosquitto (QoS 0, no
# persistence, set_tcp_nodelay true: its best private-chat setup in bench/run.sh) under the same
# private-chat workload over MQTT. Prints msgs/s delivered, each moonpost setup's ratio to
# Mosquitto's msgs/s, and the CPU each message cost the brokers (Mosquitto: its one process)
# and the Redis processes (all six of the cluster, replicas included), from /proc/PID/stat over
# the timed phase (warm-up, measure, drain) divided by the messages delivered in it; "others
# %": the CPU other processes of the machine used meanwhile, in % of one core (a shared machine
# makes the numbers noisy).
#
#   bench/redis_cluster.sh                      # build-bench/ or build/ (docs/benchmarks.md)
#   RUNS=1 DURATION=5 CLIENTS=200 bench/redis_cluster.sh
#
# The setups take turns (run 1 of each, then run 2, ...), each on fresh brokers and a fresh
# Redis. Every process it starts is stopped on exit; nothing leaves 127.0.0.1.
#
# Environment: MOONPOST_BUILD, RUNS (default 1), DURATION (measured s, default 10), CLIENTS
# (default 500), RATE (msgs/s in total, default 0: as fast as the window allows), WAIT_REPLICAS
# (redis_wait_replicas of the brokers on the cluster, default 0), SETUPS (default
# "single cluster mosquitto"), KEEP=1, QUIET_MAX.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/cluster_lib.sh
source "$ROOT/bench/cluster_lib.sh"
# shellcheck source=bench/mosquitto.sh
source "$ROOT/bench/mosquitto.sh"

RUNS=${RUNS:-1}
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-500}
RATE=${RATE:-0}
WAIT_REPLICAS=${WAIT_REPLICAS:-0}
SETUPS=${SETUPS:-single cluster mosquitto}
RESULTS=$CL_TMP/results
mkdir -p "$RESULTS"
PRIVATE=(private --size 64 --window 8 --duration "$DURATION" --warmup 2 --rate "$RATE")
REDIS_PIDS=()  # every redis-server of the setup running now
REDIS_PORTS=()

# cpu_ticks PID...: their user + system CPU, summed, in clock ticks.
cpu_ticks() {
    local pid total=0 t
    for pid in "$@"; do
        # fields after "pid (comm) ": utime and stime are the 12th and 13th
        t=$(sed 's/^.*) //' "/proc/$pid/stat" | awk '{ print $12 + $13 }')
        total=$((total + t))
    done
    echo "$total"
}

# redis_node PORT DIR [ARG...]: a durable redis-server; its pid joins REDIS_PIDS.
redis_node() {
    local port=$1 dir=$2
    shift 2
    mkdir -p "$dir"
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly yes \
        --daemonize no --loglevel warning "$@" >>"$dir/redis.log" 2>&1 &
    REDIS_PIDS+=("$!")
    REDIS_PORTS+=("$port")
    CL_PIDS+=("$!")
    wait_port "$port" "$!"
}

stop_redis() {
    local pid
    for pid in "${REDIS_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${REDIS_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    REDIS_PIDS=()
    REDIS_PORTS=()
}

start_single() {
    redis_node "$(free_port)" "$CL_TMP/single.$1"
    REDIS_PORT=${REDIS_PORTS[0]}
    REDIS_PID=${REDIS_PIDS[0]}
}

# start_cluster RUN: six nodes, redis-cli --cluster create, until every node says
# cluster_state:ok (60 s at most).
start_cluster() {
    local i waited=0 port nodes
    for i in 1 2 3 4 5 6; do
        redis_node "$(free_port)" "$CL_TMP/cluster.$1.$i" --cluster-enabled yes \
            --cluster-config-file nodes.conf --cluster-port "$(free_port)" \
            --cluster-node-timeout 1000
    done
    read -ra nodes <<<"$(printf '127.0.0.1:%s ' "${REDIS_PORTS[@]}")"
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes \
        >"$CL_TMP/create.$1.log" 2>&1 ||
        { cl_log "redis-cli --cluster create failed:"; cat "$CL_TMP/create.$1.log" >&2; exit 1; }
    for port in "${REDIS_PORTS[@]}"; do
        until redis-cli -p "$port" CLUSTER INFO | grep -q '^cluster_state:ok'; do
            ((waited++ < 600)) || { cl_log "the cluster is not ok after 60 s"; exit 1; }
            sleep 0.1
        done
    done
    REDIS_PORT=${REDIS_PORTS[0]}
    REDIS_PID=${REDIS_PIDS[0]}  # (moonpost-bench's own Redis CPU: this node's only)
}

# start_mosquitto RUN: one Mosquitto in the brokers' place (BROKER_PIDS, CONNECT), no Redis.
start_mosquitto() {
    local port conf=$CL_TMP/mosquitto.$1.conf
    port=$(free_port)
    mosquitto_conf "$port" true >"$conf"
    mosquitto -c "$conf" >>"$CL_TMP/mosquitto.$1.log" 2>&1 &
    BROKER_PIDS=("$!")
    BROKER_PORTS=("$port")
    CL_PIDS+=("$!")
    wait_port "$port" "$!"
    CONNECT=127.0.0.1:$port
    REDIS_PID=""
}

# The cluster's nodes as the broker's redis line takes them (comma-separated).
seeds() { printf '127.0.0.1:%s,' "${REDIS_PORTS[@]}" | sed 's/,$//'; }

# At the barrier: the CPU so far of the brokers, of every Redis and of the Redis processes
# moonpost-bench does not know of (it counts them as other processes), and the time.
cpu_before() {
    TICKS_BROKERS=$(cpu_ticks "${BROKER_PIDS[@]}")
    TICKS_REDIS=$(cpu_ticks "${REDIS_PIDS[@]}")
    TICKS_UNSEEN=$(cpu_ticks "${REDIS_PIDS[@]:1}")
    T_BEFORE=$EPOCHREALTIME
}

# run_setup NAME RUN: 2 brokers on the Redis started for NAME (or Mosquitto), the private chat,
# one result line (JSON) in $RESULTS/NAME.RUN.json.
run_setup() {
    local name=$1 run=$2 hz brokers redis unseen seconds proto=()
    if [[ $name == mosquitto ]]; then
        start_mosquitto "$run"
        proto=(--proto mqtt)
    elif [[ $name == cluster ]]; then
        start_cluster "$run"
        cl_start_brokers 2 --set "redis=$(seeds)" --set redis_cluster=on \
            --set "redis_wait_replicas=$WAIT_REPLICAS"
    else
        start_single "$run"
        cl_start_brokers 2
    fi
    wait_quiet
    FLEET_USERS="r${run}${name:0:1}" FLEET_AT_BARRIER=cpu_before \
        cl_fleet "$name.$run" 1 "$CLIENTS" "${PRIVATE[@]}" "${proto[@]}"
    brokers=$(( $(cpu_ticks "${BROKER_PIDS[@]}") - TICKS_BROKERS ))
    redis=$(( $(cpu_ticks "${REDIS_PIDS[@]}") - TICKS_REDIS ))
    unseen=$(( $(cpu_ticks "${REDIS_PIDS[@]:1}") - TICKS_UNSEEN ))
    seconds=$(awk -v a="$T_BEFORE" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')
    hz=$(getconf CLK_TCK)
    cl_summary "$name.$run" | python3 -c '
import json, sys
r = json.load(sys.stdin)
hz, brokers, redis, unseen = (int(v) for v in sys.argv[1:5])
seconds = float(sys.argv[5])
n = r.get("delivered_all") or r["delivered"]
others = max(0.0, (r.get("cpu_others_pct") or 0) - 100 * unseen / hz / seconds)
r.update(cpu_s_brokers=brokers / hz, cpu_s_redis=redis / hz, messages=n, others_pct=others)
print(json.dumps(r))' "$hz" "$brokers" "$redis" "$unseen" "$seconds" >"$RESULTS/$name.$run.json"
    cl_stop_brokers
    stop_redis
}

cl_check_build
command -v redis-cli >/dev/null || { cl_log "redis-cli is not installed"; exit 2; }
if [[ " $SETUPS " == *" mosquitto "* ]]; then
    command -v mosquitto >/dev/null || { cl_log "mosquitto is not installed"; exit 2; }
fi
cl_log "$RUNS run(s) of ${DURATION}s, $CLIENTS clients, rate $RATE (0: unbounded)"
for run in $(seq 1 "$RUNS"); do
    for name in $SETUPS; do
        cl_log "$name, run $run/$RUNS"
        run_setup "$name" "$run"
    done
done

python3 - "$RESULTS" <<'EOF'
import glob, json, os, statistics, sys
rows = {}
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    name = os.path.basename(path).split(".")[0]
    rows.setdefault(name, []).append(json.load(open(path)))
med = lambda rs, f: statistics.median(f(r) for r in rs)
rate = lambda rs: med(rs, lambda r: r["delivered_per_s"])
mosquitto = rate(rows["mosquitto"]) if rows.get("mosquitto") else None
print("%-40s %9s %11s %7s %15s %13s %9s %5s" % ("private chat on", "msgs/s",
      "/Mosquitto", "errors", "brokers us/msg", "redis us/msg", "others %", "runs"))
labels = {"single": "2 moonpost, durable, one redis-server",
          "cluster": "2 moonpost, durable, Redis Cluster 3+3",
          "mosquitto": "Mosquitto, QoS 0, in memory"}
for name in ("single", "cluster", "mosquitto"):
    rs = rows.get(name, [])
    if not rs:
        continue
    ratio = "%.2f" % (rate(rs) / mosquitto) if mosquitto and name != "mosquitto" else "-"
    redis = ("%.1f" % med(rs, lambda r: r["cpu_s_redis"] / max(1, r["messages"]) * 1e6)
             if name != "mosquitto" else "-")
    print("%-40s %9.0f %11s %7d %15.1f %13s %9.0f %5d" % (
        labels[name], rate(rs), ratio, sum(r["errors_total"] for r in rs),
        med(rs, lambda r: r["cpu_s_brokers"] / max(1, r["messages"]) * 1e6), redis,
        med(rs, lambda r: r["others_pct"]), len(rs)))
EOF
