# shellcheck shell=bash
# bench/ports.sh (sourced by run.sh and cluster_lib.sh): a free loopback port, and waiting for
# a started process to listen on one.

# free_port: a loopback port nothing listens on now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT PID: until PORT accepts (10 s at most) while PID lives; 1 (told on stderr) if not.
wait_port() {
    local port=$1 pid=$2 i
    for i in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || { echo "$(basename "$0"): process $pid exited while starting" >&2; return 1; }
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "$(basename "$0"): port $port did not open" >&2
    return 1
}
