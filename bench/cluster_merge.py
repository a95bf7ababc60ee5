#!/usr/bin/env python3
"""cluster_merge: the JSON results of several moonpost-bench processes that ran one workload
together (bench/cluster_lib.sh, cl_fleet) as one JSON line.

Counts and rates are summed. A storm lasts from the earliest start to the last client back in
any process (the times are CLOCK_MONOTONIC, one clock for the whole machine). Latency
percentiles cannot be summed: p50 is the median of the processes' p50s, p99 and p99.9 the worst
process's. CPU: the load generators' summed; brokers, Redis and the machine as the first process
saw them over its measured window (they all measured the same processes over about the same
window); "others" there less the other load generators of the fleet, which it counted.

usage: cluster_merge.py RESULT.json..."""
import json
import statistics
import sys


def merge(results):
    first = results[0]
    out = {"workload": first["workload"], "processes": len(results),
           "brokers": first.get("brokers", 1), "recipients": first.get("recipients", "any")}
    for key in ("clients", "ready", "failed", "sent", "delivered", "sent_all", "delivered_all",
                "stale", "from_mailbox", "errors_total", "sent_per_s", "delivered_per_s",
                "storm_back"):
        out[key] = sum(r.get(key) or 0 for r in results)
    errors = {}
    for r in results:
        for code, n in r["errors"].items():
            errors[code] = errors.get(code, 0) + n
    out["errors"] = errors
    out["hard_stop"] = any(r["hard_stop"] for r in results)
    if "t_storm_start_ms" in first:
        starts = [r["t_storm_start_ms"] for r in results]
        out["start_spread_ms"] = max(starts) - min(starts)
        done = all(r["all_back_ms"] is not None for r in results)
        out["all_back_ms"] = (max(r["t_last_back_ms"] for r in results) - min(starts)
                              if done else None)
    else:
        starts = [r["t_measure_start_ms"] for r in results]
        out["start_spread_ms"] = max(starts) - min(starts)
    lat = [r["latency"] for r in results if r["latency"]["count"]]
    if lat:
        out["latency"] = {"count": sum(h["count"] for h in lat),
                          "p50_us": statistics.median(h["p50_us"] for h in lat),
                          "p99_us": max(h["p99_us"] for h in lat),
                          "p999_us": max(h["p999_us"] for h in lat),
                          "max_us": max(h["max_us"] for h in lat)}
    out["setup_p50_us"] = statistics.median(r["setup"]["p50_us"] for r in results)
    out["cpu_bench_pct"] = sum(r["cpu_bench_pct"] or 0 for r in results)
    for key in ("cpu_broker_pct", "cpu_brokers_pct", "cpu_redis_pct", "cpu_machine_pct",
                "cores"):
        out[key] = first.get(key)
    if first.get("cpu_others_pct") is not None:
        siblings = sum(r["cpu_bench_pct"] or 0 for r in results[1:])
        out["cpu_others_pct"] = max(0.0, first["cpu_others_pct"] - siblings)
    return out


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__.split("\n\n")[-1])
    results = []
    for path in sys.argv[1:]:
        try:
            with open(path) as f:
                results.append(json.load(f))
        except (OSError, ValueError) as e:
            print("cluster_merge: %s: %s" % (path, e), file=sys.stderr)
    if not results:
        sys.exit("cluster_merge: no result")
    out = merge(results)
    out["missing"] = len(sys.argv) - 1 - len(results)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
