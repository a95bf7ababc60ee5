#!/usr/bin/env bash
# bench/cluster.sh: one node against two on this box, over one redis-server: private chat as
# fast as possible and at 20,000 msgs/s, broadcast 1 -> 1,000 (clients spread round robin over
# the nodes: with 2, half of the private messages and half of every broadcast's receivers are
# on the other node), and the cost a cross-node message adds: private chat at LATENCY_RATE
# msgs/s (default 20,000) on 2 nodes with every message kept on its node (--recipients local)
# and with every message crossing (--recipients cross), and on 1 node for reference. Prints one
# table of medians with the CPU of each process.
#
#   bench/cluster.sh                      # build-bench/ or build/ (docs/benchmarks.md)
#   RUNS=1 DURATION=5 CASES="latency" bench/cluster.sh
#
# The configurations take turns (run 1 of each, then run 2, ...), each on fresh brokers, so that
# a disturbance of the shared machine does not fall on one only; a run during which other
# processes used more than NOISE_MAX % of a core is repeated (bench/quiet.sh). Every process it
# starts is stopped on exit.
#
# Environment: MOONPOST_BUILD, RUNS (default 3), DURATION (measured s, default 10), CASES (of
# private private20k broadcast latency), NODES (default "1 2"), LATENCY_RATE, VARIANT
# lua|plugin, KEEP=1, QUIET_MAX, NOISE_MAX, RETRIES.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/cluster_lib.sh
source "$ROOT/bench/cluster_lib.sh"

RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
CASES=${CASES:-private private20k broadcast latency}
NODES=${NODES:-1 2}
LATENCY_RATE=${LATENCY_RATE:-20000}
RESULTS=$CL_TMP/results
mkdir -p "$RESULTS"

PRIVATE=(private --clients 1000 --size 64 --window 8 --duration "$DURATION" --warmup 2)
PRIVATE20K=("${PRIVATE[@]}" --rate 20000)
BROADCAST=(broadcast --clients 1000 --publishers 1 --size 64 --window 8 --duration "$DURATION"
           --warmup 2)

# measure OUT ARGS...: one run against the brokers up now, again while others disturbed it.
measure() {
    local out=$1 try others
    shift
    for try in $(seq 1 "$RETRIES"); do
        wait_quiet
        "$BENCH" "$@" --connect "$CONNECT" --broker-pid "$(cl_broker_pids)" \
            --redis-pid "$REDIS_PID" --json --no-progress >"$out" ||
            cl_log "$out: moonpost-bench failed"
        others=$(others_pct "$out")
        ((others <= NOISE_MAX)) && return 0
        cl_log "$(basename "$out"): other processes used ${others}% of a core;" \
            "run again ($try/$RETRIES)"
    done
}

has_case() { [[ " $CASES " == *" $1 "* ]]; }

cl_check_build
cl_start_redis
cl_log "$RUNS run(s) of ${DURATION}s of: $CASES; nodes: $NODES"
for i in $(seq 1 "$RUNS"); do
    for n in $NODES; do
        cl_start_brokers "$n"
        # the users exist from the first run on: this one registers them (409 afterwards)
        "$BENCH" private --clients 1000 --duration 1 --warmup 0 --connect "$CONNECT" --json \
            --no-progress >"$CL_TMP/warmup.json" || cl_log "the warm-up run failed"
        for c in private private20k broadcast; do
            has_case "$c" || continue
            cl_log "$c on $n node(s), run $i/$RUNS"
            case $c in
                private) args=("${PRIVATE[@]}") ;;
                private20k) args=("${PRIVATE20K[@]}") ;;
                broadcast) args=("${BROADCAST[@]}") ;;
            esac
            measure "$RESULTS/$c.$n.$i.json" "${args[@]}" --label "$c/$n/$i"
        done
        if has_case latency; then
            for r in local cross; do
                ((n >= 2)) || [[ $r == local ]] || continue
                cl_log "private at $LATENCY_RATE msgs/s, $r recipients, on $n node(s), run $i/$RUNS"
                measure "$RESULTS/latency-$r.$n.$i.json" "${PRIVATE[@]}" --rate "$LATENCY_RATE" \
                    --recipients "$r" --label "latency-$r/$n/$i"
            done
        fi
        cl_stop_brokers
    done
done
python3 "$ROOT/bench/cluster_table.py" "$RESULTS"
