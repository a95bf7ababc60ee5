#!/usr/bin/env bash
# bench/cluster_sessions.sh: SESSIONS logged-in sessions (default 100,000) on a cluster on one
# box. A process may open 20,000 descriptors here, so the sessions are spread over BROKERS
# brokers (default 6) on one redis-server and held by GENERATORS load generators (default 7),
# each with source addresses of its own (127.20+k.0.1). It measures, in order:
#   1. login storm: the users are registered (not timed), then all log in at once;
#   2. resume storm: all log in (not timed), disconnect, then all resume their token at once;
#   3. idle memory: fresh brokers, all log in, SETTLE s later the brokers' RSS per session
#      (sum of the RSS deltas / sessions) and Redis used_memory per user (the delta from the
#      empty Redis / users);
#   4. a private chat among those sessions: RATE msgs/s in total (default 5,000) for DURATION
#      s, each load generator's clients writing to one another (RECIPIENTS: any, or local to
#      keep every message on its broker, the only kind that arrives while the brokers are not
#      a cluster).
# The brokers run with login_timeout 300: a storm of 100,000 takes longer than the default 10 s
# here, and a client whose login is still queued must not be dropped (a real one would connect
# again; the load generator does not). Then prints one summary. Every process it starts is
# stopped on exit; every run is bounded (each load generator has a hard stop).
#
#   bench/cluster_sessions.sh                       # build-bench/ or build/ (docs/benchmarks.md)
#   SESSIONS=20000 BROKERS=2 GENERATORS=2 bench/cluster_sessions.sh
#
# Environment: MOONPOST_BUILD, SESSIONS, BROKERS, GENERATORS, RATE, DURATION (default 5),
# SETTLE (default 3), RECIPIENTS (default any), VARIANT lua|plugin, KEEP=1 (keep the JSON and
# logs).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/cluster_lib.sh
source "$ROOT/bench/cluster_lib.sh"

SESSIONS=${SESSIONS:-100000}
BROKERS=${BROKERS:-6}
GENERATORS=${GENERATORS:-7}
RATE=${RATE:-5000}
DURATION=${DURATION:-5}
SETTLE=${SETTLE:-3}
RECIPIENTS=${RECIPIENTS:-any}
FD_MAX=$(ulimit -Hn)
PER_BROKER=$(((SESSIONS + BROKERS - 1) / BROKERS + GENERATORS + 64))
PER_GENERATOR=$(((SESSIONS + GENERATORS - 1) / GENERATORS))

cl_check_build
if [[ $FD_MAX != unlimited ]] && ((PER_BROKER + 100 > FD_MAX || PER_GENERATOR + 64 > FD_MAX)); then
    cl_log "$SESSIONS sessions need more brokers or load generators: $PER_BROKER per broker," \
        "$PER_GENERATOR per load generator, $FD_MAX descriptors per process"
    exit 2
fi
STORM=(-d 180 --settle 2 --setup-concurrency 256 --setup-timeout 300 --timeout 900)

declare -A R # what the summary prints

now_ms() { date +%s%3N; }

cl_start_redis
MEM_EMPTY=$(cl_redis_used_memory)
cl_start_brokers "$BROKERS" --set "max_connections=$PER_BROKER" --set login_timeout=300
cl_log "$SESSIONS sessions, $BROKERS brokers ($CONNECT), $GENERATORS load generators"

# 1. login storm (the users are registered first, in the same processes)
T0=$(now_ms)
mark_ready() {
    R[register_s]=$(awk -v t="$(now_ms)" -v t0="$T0" 'BEGIN { printf "%.1f", (t - t0) / 1000 }')
}
FLEET_AT_BARRIER=mark_ready cl_fleet login "$GENERATORS" "$SESSIONS" login "${STORM[@]}"
R[login]=$(cl_summary login)
MEM_USERS=$(cl_redis_used_memory)

# 2. resume storm
FLEET_AT_BARRIER="" cl_fleet resume "$GENERATORS" "$SESSIONS" resume --no-register "${STORM[@]}"
R[resume]=$(cl_summary resume)

# 3. and 4. idle memory on fresh brokers, then private chat among the same sessions
cl_stop_brokers
cl_start_brokers "$BROKERS" --set "max_connections=$PER_BROKER" --set login_timeout=300
sleep 1
RSS_FRESH=$(cl_brokers_rss_kib)
sample_idle() {
    sleep "$SETTLE"
    RSS_IDLE=$(cl_brokers_rss_kib)
    MEM_IDLE=$(cl_redis_used_memory)
}
FLEET_AT_BARRIER=sample_idle cl_fleet private "$GENERATORS" "$SESSIONS" private --no-register \
    --rate "$((RATE / GENERATORS))" -d "$DURATION" --warmup 1 --recipients "$RECIPIENTS" \
    --setup-concurrency 256 --setup-timeout 300 --timeout 600
R[private]=$(cl_summary private)

python3 - "$SESSIONS" "$BROKERS" "$GENERATORS" "$RECIPIENTS" "${R[register_s]:-}" \
    "$MEM_EMPTY" "$MEM_USERS" "$MEM_IDLE" "$RSS_FRESH" "$RSS_IDLE" \
    "${R[login]}" "${R[resume]}" "${R[private]}" <<'PY'
import json, sys
(n, brokers, gens, recipients, register_s, mem0, mem_users, mem_idle, rss0, rss1) = sys.argv[1:11]
login, resume, private = (json.loads(a) for a in sys.argv[11:14])
n = int(n)
rss0 = [int(x) for x in rss0.split()]
rss1 = [int(x) for x in rss1.split()]
def errors(r):
    return "none" if not r["errors_total"] else json.dumps(r["errors"])
def storm(name, r):
    t = r.get("all_back_ms")
    print("%-9s %d of %d back%s (starts %.0f ms apart), errors %s" % (
        name, r["storm_back"], n, ", all within %.1f s" % (t / 1e3) if t is not None else
        " (NOT all)", r["start_spread_ms"], errors(r)))
    print("          cpu: brokers %s%%, redis %s%%, load generators %.0f%%, others %.0f%%, "
          "machine %s%% of %d00%%" % (r["cpu_broker_pct"], r["cpu_redis_pct"], r["cpu_bench_pct"],
                                      r.get("cpu_others_pct") or 0, r["cpu_machine_pct"],
                                      r["cores"]))
print("cluster on one box: %d sessions, %s brokers, %s load generators" % (n, brokers, gens))
if register_s:
    print("register  %d users in about %s s (not timed precisely: includes the 2 s settle)" % (
        n, register_s))
storm("login", login)
storm("resume", resume)
delta = [b - a for a, b in zip(rss0, rss1)]
print("idle      broker RSS %d KiB -> %d KiB: %.0f bytes per session (per broker: %s KiB)" % (
    sum(rss0), sum(rss1), sum(delta) * 1024 / n, " ".join(map(str, delta))))
print("redis     used_memory %.1f MiB -> %.1f MiB with the users registered (%.0f bytes/user), "
      "%.1f MiB with all logged in (%.0f bytes/user)" % (
          int(mem0) / 2**20, int(mem_users) / 2**20, (int(mem_users) - int(mem0)) / n,
          int(mem_idle) / 2**20, (int(mem_idle) - int(mem0)) / n))
p = private
lat = p.get("latency", {})
print("private   %s recipients, sent %.0f/s, delivered %.0f/s (%d from the mailbox), latency "
      "p50 %.3f ms p99 %.3f ms (worst generator), errors %s" % (
          recipients, p["sent_per_s"], p["delivered_per_s"], p.get("from_mailbox", 0),
          lat.get("p50_us", 0) / 1e3, lat.get("p99_us", 0) / 1e3, errors(p)))
print("          cpu: load generators %.0f%%, brokers %s%% %s, redis %s%%, machine %s%% of %d00%%,"
      " others %.0f%%" % (p["cpu_bench_pct"], p["cpu_broker_pct"], p["cpu_brokers_pct"],
                          p["cpu_redis_pct"], p["cpu_machine_pct"], p["cores"],
                          p.get("cpu_others_pct") or 0))
PY
