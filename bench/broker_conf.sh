# bench/broker_conf.sh (sourced by run.sh and ab_private.sh): the settings every benchmark runs
# the broker with, after its listen, redis and log lines.
#
# broker_conf SCRIPTS_DIR lua|plugin SEND_PLUGIN: prints them; lua serves send with
# scripts/send.lua, plugin with the C send plugin SEND_PLUGIN in its place.
broker_conf() {
    local scripts=$1 variant=$2 send_plugin=$3 s
    echo "max_connections 16000"
    # the broadcast publishers send far above one connection's default request_rate
    echo "request_rate 0"
    # argon2id at its minimum cost: only register and login get cheaper (docs/benchmarks.md)
    echo "pwhash_memory 8"
    echo "pwhash_ops 1"
    echo "login_max_failures 1000000"
    # the load generator is one address: no per-address limits (the bench does not retry)
    echo "login_addr_max_failures 1000000"
    echo "register_max_per_addr 0"
    echo "pwhash_queue_max 1000000"
    echo "pwhash_queue_per_addr 1000000"
    for s in ping register login users send broadcast mailbox presence; do
        [[ $variant == plugin && $s == send ]] && continue
        echo "script $scripts/$s.lua"
    done
    if [[ $variant == plugin ]]; then echo "plugin $send_plugin"; fi
}
