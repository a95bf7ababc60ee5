#!/usr/bin/env bash
# bench/ab_private.sh OLD NEW: a direct A/B of private chat between two checkouts, each with its
# own redis-server and broker (its own binary, scripts and plugins), both started before the
# first run and measured in turn (OLD, NEW, OLD, NEW, ...) with one load generator, so that the
# machine's drift falls on both alike. Prints delivered msgs/s per run and the medians.
#
#   bench/ab_private.sh ../moonpost-old .          # build-bench/ of each: docs/benchmarks.md
#
# Environment: VARIANT lua (scripts/send.lua, default) or plugin (the C send plugin); RUNS per
# side (default 3); ORDER "new old" to measure NEW first in each pair; CLIENTS (default 1000);
# DURATION seconds (default 8); ACK_EVERY (moonpost-bench --ack-every: a count, or read).
# Everything listens on 127.0.0.1 and stops on exit.
set -euo pipefail
# shellcheck source=bench/broker_conf.sh
source "$(dirname "$0")/broker_conf.sh"
[[ $# -eq 2 ]] || { sed -n 2,11p "$0" >&2; exit 2; }
declare -A ROOT=([old]=$(cd "$1" && pwd) [new]=$(cd "$2" && pwd))
VARIANT=${VARIANT:-lua}
RUNS=${RUNS:-3}
ORDER=${ORDER:-old new}
BENCH=${ROOT[new]}/build-bench/bench/moonpost-bench
TMP=$(mktemp -d /tmp/moonpost-ab.XXXXXX)
declare -A PORT PID
trap 'kill "${PID[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
    python3 - "$1" <<'PY'
import socket, sys, time
for _ in range(200):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit("port %s does not answer" % sys.argv[1])
PY
}

# start SIDE: its redis-server and its broker, configured like bench/run.sh's.
start() {
    local side=$1 root=${ROOT[$1]} redis_port port
    redis_port=$(free_port)
    redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$TMP" --dbfilename "$side.rdb" \
        --save "" --appendonly no --loglevel warning >"$TMP/redis-$side.log" 2>&1 &
    PID[redis-$side]=$!
    wait_port "$redis_port"
    port=$(free_port)
    {
        echo "listen 127.0.0.1:$port"
        echo "redis 127.0.0.1:$redis_port"
        echo "log_level warn"
        broker_conf "$root/scripts" "$VARIANT" "$root/build-bench/plugins/moonpost_send.so"
    } >"$TMP/$side.conf"
    "$root/build-bench/broker/moonpost" -c "$TMP/$side.conf" >"$TMP/$side.log" 2>&1 &
    PID[$side]=$!
    PORT[$side]=$port
    wait_port "$port"
}

# us_per_msg PCT MSGS: microseconds of CPU per message, from % of a core and msgs/s.
us_per_msg() { python3 -c 'import sys; print("%.1f" % (float(sys.argv[1]) * 1e4 / max(1, int(sys.argv[2]))))' "$1" "$2"; }

start old
start new
declare -A RESULTS=([old]="" [new]="")
for run in $(seq 1 "$RUNS"); do
    for side in $ORDER; do
        rate=$("$BENCH" private -c "${CLIENTS:-1000}" -d "${DURATION:-8}" --port "${PORT[$side]}" \
                   --ack-every "${ACK_EVERY:-32}" \
                   --broker-pid "${PID[$side]}" --redis-pid "${PID[redis-$side]}" --json \
                   --no-progress |
               python3 -c 'import json, sys; d = json.load(sys.stdin)
print("%d %.0f %.0f %.0f %d" % (d["delivered_per_s"], d["cpu_broker_pct"], d["cpu_redis_pct"],
                                d["cpu_others_pct"], d["errors_total"]))')
        read -r msgs broker redis others errors <<<"$rate"
        printf '%s run %d %-3s: %6d msgs/s  broker %3d%% %5.1f us/msg  redis %3d%% %5.1f us/msg  others %3d%%  errors %d\n' \
            "$VARIANT" "$run" "$side" "$msgs" "$broker" "$(us_per_msg "$broker" "$msgs")" \
            "$redis" "$(us_per_msg "$redis" "$msgs")" "$others" "$errors"
        RESULTS[$side]+="$msgs "
    done
done
for side in old new; do
    python3 -c 'import statistics, sys; v = [int(x) for x in sys.argv[2:]]
print("%s median: %d msgs/s (%s)" % (sys.argv[1], statistics.median(v), ", ".join(map(str, v))))' \
        "$side" ${RESULTS[$side]}
done
