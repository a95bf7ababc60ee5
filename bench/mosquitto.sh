# shellcheck shell=bash
# bench/mosquitto.sh (sourced by run.sh and redis_cluster.sh): Mosquitto as the benchmarks run
# it beside moonpost, on loopback, anonymous, no persistence, warnings and errors only.

# mosquitto_conf PORT true|false: its config on stdout; the second argument is
# set_tcp_nodelay (TCP_NODELAY on its client sockets, or Nagle on: its default).
mosquitto_conf() {
    cat <<CONF
listener $1 127.0.0.1
allow_anonymous true
max_connections -1
persistence false
log_dest stderr
log_type error
log_type warning
set_tcp_nodelay $2
CONF
}
