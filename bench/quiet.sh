# shellcheck shell=bash
# bench/quiet.sh (sourced by run.sh and cluster_lib.sh): living with the other work of a shared
# machine. A run starts once the machine is quiet, and a run that other processes disturbed
# (their CPU, from its JSON) is repeated.
#
# Environment: QUIET_MAX (the longest wait, s; default 60), NOISE_MAX (% of one core others may
# use during a run; default 20), RETRIES (runs at most; default 3).
QUIET_MAX=${QUIET_MAX:-60}
NOISE_MAX=${NOISE_MAX:-20}
RETRIES=${RETRIES:-3}

# Waits until other processes leave the CPUs (< 15% of one core busy) or QUIET_MAX passed.
wait_quiet() {
    local waited=0 a b busy
    while ((waited < QUIET_MAX)); do
        a=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
        sleep 1
        b=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
        busy=$(awk -v a="$a" -v b="$b" -v n="$(nproc)" 'BEGIN { split(a, x, " "); split(b, y, " ");
            t = (y[1] - x[1]) + (y[2] - x[2]); print (t > 0 ? int(100 * n * (y[1] - x[1]) / t) : 0) }')
        ((busy < 15)) && return 0
        waited=$((waited + 1))
        ((waited % 10 == 0)) &&
            echo "$(basename "$0"): waiting for a quiet machine (busy: ${busy}% of one core)" >&2
    done
    echo "$(basename "$0"): machine still busy after ${QUIET_MAX}s; measuring anyway" >&2
}

others_pct() { # the CPU other processes used during a run, from its JSON
    python3 -c 'import json, sys; v = json.load(open(sys.argv[1])).get("cpu_others_pct"); print(int(v or 0))' "$1" 2>/dev/null || echo 0
}
