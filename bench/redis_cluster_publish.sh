#!/usr/bin/env bash
# bench/redis_cluster_publish.sh: what a cross-node message costs each process of a Redis Cluster
# of 3 masters with a replica each (append-only, as bench/redis_cluster.sh runs it): N calls of
# FCALL moonpost_where (broker/cluster_functions.lua) on the registry's master, then N SPUBLISH
# of a 200-byte message on a node channel (one SSUBSCRIBEr, as a node) and, to compare, N
# classic PUBLISH of the same message on it (one SUBSCRIBEr: a broadcast or a room message
# goes that way). For each phase: every node's CPU (/proc/PID/stat) per call, and the messages
# it sent or received over the cluster bus meanwhile (CLUSTER INFO). redis-benchmark sends the calls
# (4 connections, 16 pipelined each).
#
#   bench/redis_cluster_publish.sh [ROOT]           # ROOT: the checkout whose functions run
#   N=100000 bench/redis_cluster_publish.sh
#
# Every process it starts is stopped on exit; nothing leaves 127.0.0.1.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=${1:-$HERE/..}
N=${N:-300000}
HZ=$(getconf CLK_TCK)
# shellcheck source=bench/ports.sh
source "$HERE/ports.sh"
for tool in redis-server redis-cli redis-benchmark; do
    command -v "$tool" >/dev/null ||
        { echo "redis_cluster_publish.sh: $tool is not installed" >&2; exit 2; }
done

TMP=$(mktemp -d /tmp/moonpost-publish.XXXXXX)
PORTS=()
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for i in 1 2 3 4 5 6; do
    port=$(free_port)
    mkdir -p "$TMP/$i"
    redis-server --port "$port" --bind 127.0.0.1 --dir "$TMP/$i" --save "" --appendonly yes \
        --cluster-enabled yes --cluster-config-file nodes.conf --cluster-port "$(free_port)" \
        --cluster-node-timeout 1000 --daemonize no --loglevel warning >>"$TMP/$i/redis.log" 2>&1 &
    PIDS+=("$!")
    PORTS+=("$port")
    wait_port "$port" "$!"
done
read -ra nodes <<<"$(printf '127.0.0.1:%s ' "${PORTS[@]}")"
redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes \
    >"$TMP/create.log" 2>&1 || { cat "$TMP/create.log" >&2; exit 1; }
for port in "${PORTS[@]}"; do
    until redis-cli -p "$port" CLUSTER INFO | grep -q '^cluster_state:ok'; do sleep 0.1; done
done

role() { redis-cli -p "$1" ROLE | head -1; }
# what PORT is to MASTER: "master (this)", "replica (of this)", "master" or "replica"
role_to() {
    local r
    r=$(redis-cli -p "$1" ROLE | head -3 | paste -sd' ')
    case $r in
        master*) [[ $1 == "$2" ]] && echo "master (this)" || echo master ;;
        *" $2") echo "replica (of this)" ;;
        *) echo replica ;;
    esac
}
# bus PORT: its pub/sub messages over the cluster bus so far, "NAME COUNT" a line
bus() {
    redis-cli -p "$1" CLUSTER INFO | tr -d '\r' |
        awk -F: '/messages_publish(shard)?_(sent|received)/ {
            sub("cluster_stats_messages_", "", $1); print $1, $2 }'
}
# bus_delta BEFORE AFTER: the counts of AFTER (bus's lines) less those of BEFORE, on one line
bus_delta() {
    awk 'NR == FNR { seen[$1] = $2; next }
         NF == 2 && $2 - seen[$1] > 0 { printf "%s %d ", $1, $2 - seen[$1] }' \
        <(echo "$1") <(echo "$2")
}
ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
# owner KEY: the port of the master that serves KEY's slot
owner() {
    local slot port
    slot=$(redis-cli -p "${PORTS[0]}" CLUSTER KEYSLOT "$1")
    for port in "${PORTS[@]}"; do
        [[ $(role "$port") == master ]] || continue
        redis-cli -p "$port" CLUSTER COUNTKEYSINSLOT "$slot" >/dev/null
        [[ $(redis-cli -p "$port" GET "$1" 2>&1) == MOVED* ]] || { echo "$port"; return; }
    done
}
# settle: until the bus counters of every node stay the same for 0.2 s (5 s at most): the
# messages still crossing the bus when the last reply came are counted, and their CPU.
settle() {
    local now last="" i
    for i in $(seq 1 25); do
        now=$(for port in "${PORTS[@]}"; do bus "$port"; done)
        [[ $now == "$last" ]] && return 0
        last=$now
        sleep 0.2
    done
}

# phase NAME MASTER COMMAND...: N of COMMAND on MASTER; each node's CPU per call and the pub/sub
# messages it sent or received over the cluster bus meanwhile.
phase() {
    local name=$1 master=$2 i before=() buses=() t
    shift 2
    for i in "${!PORTS[@]}"; do
        before+=("$(ticks "${PIDS[$i]}")")
        buses+=("$(bus "${PORTS[$i]}")")
    done
    redis-benchmark -p "$master" -c 4 -P 16 -n "$N" -q "$@" | tr '\r' '\n' | tail -1 |
        sed "s/^.*: \([0-9.]*\) requests per second.*/$name: \1 calls\/s/"
    settle
    for i in "${!PORTS[@]}"; do
        t=$(($(ticks "${PIDS[$i]}") - before[i]))
        printf '  %-18s %6.2f us of CPU per call; bus: %s\n' \
            "$(role_to "${PORTS[$i]}" "$master")" \
            "$(awk -v t="$t" -v n="$N" -v hz="$HZ" 'BEGIN { print t / hz / n * 1e6 }')" \
            "$(bus_delta "${buses[$i]}" "$(bus "${PORTS[$i]}")")"
    done
}

library=$(cat "$ROOT/broker/cluster_functions.lua")
for port in "${PORTS[@]}"; do
    [[ $(role "$port") == master ]] &&
        redis-cli -p "$port" FUNCTION LOAD REPLACE "$library" >/dev/null
done
key='mp:{registry}:nodes'
registry=$(owner "$key")
redis-cli -p "$registry" FCALL moonpost_node_beat 1 "$key" mp: bench-1 i1 600000 0 \
    "$(date +%s%3N)" bench 1 >/dev/null
redis-cli -p "$registry" FCALL moonpost_presence_claim 1 "$key" mp: u1 bench-1 >/dev/null
[[ $(redis-cli -p "$registry" FCALL moonpost_where 1 "$key" mp: u1) == bench-1 ]] ||
    { echo "redis_cluster_publish.sh: moonpost_where did not find u1" >&2; exit 1; }
echo "$N calls of each, 6 nodes; (this): the master the calls went to"
phase "FCALL moonpost_where (the registry's master)" "$registry" \
    FCALL moonpost_where 1 "$key" mp: u1

channel=mp:node:bench-1
master=$(owner "$channel")
message=D$(head -c 199 /dev/zero | tr '\0' x)
redis-cli -p "$master" SSUBSCRIBE "$channel" >/dev/null &
PIDS+=("$!")
redis-cli -p "$master" SUBSCRIBE "$channel" >/dev/null &
PIDS+=("$!")
until [[ $(redis-cli -p "$master" PUBSUB SHARDNUMSUB "$channel" | tail -1) == 1 &&
         $(redis-cli -p "$master" PUBSUB NUMSUB "$channel" | tail -1) == 1 ]]; do sleep 0.05; done
phase "SPUBLISH of 200 bytes (a node channel, sharded)" "$master" SPUBLISH "$channel" "$message"
phase "PUBLISH of 200 bytes (classic, as a broadcast or a room message)" "$master" \
    PUBLISH "$channel" "$message"
