#!/usr/bin/env bash
# bench/tls.sh: TLS against plain TCP on one broker (docs/benchmarks.md, "TLS"). One broker
# listens on both (listen and tls_listen, a throwaway EC P-256 certificate); each case runs
# over plain TCP then over TLS, back to back: broker RSS per idle session, private chat
# msgs/s, and the resume storm (connect, handshake, resume, close: handshakes per second).
#
# Environment: MOONPOST_BUILD (default build), CASES (a subset of: idle private resume),
# DURATION (seconds per private run, default 5), RUNS (private runs per mode, interleaved,
# default 2), IDLE (idle sessions, default 10000), CLIENTS (private chat clients, default 200).
# About 2 minutes with the defaults. The machine's other load shows in the "cpu" lines.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/broker_conf.sh
source "$ROOT/bench/broker_conf.sh"
# shellcheck source=bench/ports.sh
source "$ROOT/bench/ports.sh"
MOONPOST_BUILD=${MOONPOST_BUILD:-$ROOT/build}
BROKER=$MOONPOST_BUILD/broker/moonpost
BENCH=$MOONPOST_BUILD/bench/moonpost-bench
DURATION=${DURATION:-5}
IDLE=${IDLE:-10000}
CLIENTS=${CLIENTS:-200}
RUNS=${RUNS:-2}
CASES=${CASES:-idle private resume}
has() { [[ " $CASES " == *" $1 "* ]]; }

TMP=$(mktemp -d /tmp/moonpost-tls-bench.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TMP/key.pem" \
    -out "$TMP/cert.pem" -days 1 -subj /CN=localhost 2>/dev/null

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize no --loglevel warning >/dev/null &
PIDS+=($!)
wait_port "$REDIS_PORT" "${PIDS[-1]}"

# start_broker: a fresh broker on PORT (plain) and TLS_PORT, its pid in BROKER_PID
start_broker() {
    [[ -n ${BROKER_PID:-} ]] && { kill "$BROKER_PID"; wait "$BROKER_PID" || true; }
    PORT=$(free_port)
    TLS_PORT=$(free_port)
    {
        echo "listen 127.0.0.1:$PORT"
        echo "tls_listen 127.0.0.1:$TLS_PORT"
        echo "tls_cert $TMP/cert.pem"
        echo "tls_key $TMP/key.pem"
        echo "redis 127.0.0.1:$REDIS_PORT"
        echo "log_level warn"
        broker_conf "$ROOT/scripts" lua ""
    } >"$TMP/broker.conf"
    "$BROKER" -c "$TMP/broker.conf" 2>>"$TMP/broker.log" &
    BROKER_PID=$!
    PIDS+=("$BROKER_PID")
    wait_port "$TLS_PORT" "$BROKER_PID"
}

# run LABEL ARGS...: one moonpost-bench run, its summary lines
run() {
    local label=$1
    shift
    echo "== $label"
    "$BENCH" --broker-pid "$BROKER_PID" --no-progress "$@" | grep -vE "^\s*$" || true
}

# idle: a fresh broker per mode, so that each starts from the same RSS
if has idle; then
    for mode in plain tls; do
        start_broker
        port=$PORT flag=()
        [[ $mode == tls ]] && port=$TLS_PORT flag=(--tls)
        run "idle $IDLE ($mode)" -p "$port" "${flag[@]}" idle -c "$IDLE" -d 3 \
            --user-prefix "idle$mode"
    done
fi
start_broker
if has private; then
    for i in $(seq 1 "$RUNS"); do
        for mode in plain tls; do
            port=$PORT flag=()
            [[ $mode == tls ]] && port=$TLS_PORT flag=(--tls)
            run "private $CLIENTS clients ($mode, run $i)" -p "$port" "${flag[@]}" private \
                -c "$CLIENTS" -d "$DURATION" --user-prefix "priv$mode"
        done
    done
fi
if has resume; then
    for mode in plain tls; do
        port=$PORT flag=()
        [[ $mode == tls ]] && port=$TLS_PORT flag=(--tls)
        run "resume storm ($mode)" -p "$port" "${flag[@]}" resume -c 1000 -d 20 \
            --user-prefix "res$mode"
    done
fi
