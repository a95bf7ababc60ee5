#!/usr/bin/env python3
"""summarize: the JSON results of bench/run.sh (CASE.VARIANT.RUN.json) as one table of medians,
moonpost beside Mosquitto and the one-loop forwarder with their ratios, the targets of docs/benchmarks.md, and how the CPUs
were shared.

usage: summarize.py RESULTS_DIR [--markdown]"""
import glob
import json
import os
import statistics
import sys

MOONPOST = "moonpost"
PLUGIN = "moonpost-c-send"
MQ_NAGLE = "mosquitto-nagle"
MQ_NODELAY = "mosquitto-nodelay"
FORWARDER = "forwarder"

# (case, label, how to read a value from a result, unit, higher is better)
ROWS = [
    ("private", "private chat, as fast as possible: delivered msgs/s",
     lambda r: r["delivered_per_s"], "{:,.0f}", True),
    ("private", "  latency p50 (ms)", lambda r: r["latency"]["p50_us"] / 1e3, "{:.2f}", False),
    ("private", "  latency p99 (ms)", lambda r: r["latency"]["p99_us"] / 1e3, "{:.2f}", False),
    ("private20k", "private chat at 20,000 msgs/s: latency p50 (ms)",
     lambda r: r["latency"]["p50_us"] / 1e3, "{:.3f}", False),
    ("private20k", "  latency p99 (ms)", lambda r: r["latency"]["p99_us"] / 1e3, "{:.3f}", False),
    ("private20k", "  latency p99.9 (ms)", lambda r: r["latency"]["p999_us"] / 1e3, "{:.3f}",
     False),
    ("private20k", "  delivered msgs/s", lambda r: r["delivered_per_s"], "{:,.0f}", True),
    ("private-read", "private, acks after every read: delivered msgs/s",
     lambda r: r["delivered_per_s"], "{:,.0f}", True),
    ("private-read", "  latency p99 (ms)", lambda r: r["latency"]["p99_us"] / 1e3, "{:.2f}",
     False),
    ("private20k-read", "private at 20,000 msgs/s, acks after every read: p99 (ms)",
     lambda r: r["latency"]["p99_us"] / 1e3, "{:.3f}", False),
    ("private20k-read", "  delivered msgs/s", lambda r: r["delivered_per_s"], "{:,.0f}", True),
    ("broadcast", "broadcast 1 -> 1,000: deliveries/s", lambda r: r["delivered_per_s"],
     "{:,.0f}", True),
    ("broadcast", "  latency p99 (ms)", lambda r: r["latency"]["p99_us"] / 1e3, "{:.2f}", False),
    ("idle", "15,000 idle sessions: broker RSS bytes/session",
     lambda r: r.get("rss_per_session_bytes"), "{:,.0f}", False),
    ("resume", "resume storm, 10,000 sessions: all back (ms)", lambda r: r.get("all_back_ms"),
     "{:,.0f}", False),
    ("resume", "  one session, connect to back p99 (ms)",
     lambda r: r["latency"]["p99_us"] / 1e3, "{:,.0f}", False),
    ("login", "login storm, 10,000 sessions: all back (ms)", lambda r: r.get("all_back_ms"),
     "{:,.0f}", False),
]

def mosquitto_best(v, n):
    """The better of Mosquitto's two settings for row N of the case: the higher rate."""
    values = [x for x in (v(MQ_NAGLE, n), v(MQ_NODELAY, n)) if x is not None]
    return max(values) if values else None


def at_least_twice_mosquitto(v):
    best = mosquitto_best(v, 0)
    return v(MOONPOST, 0) is not None and best is not None and v(MOONPOST, 0) >= 2 * best


def keeps_up_within_twice_nodelay_p99(v, p99_row, rate_row):
    """At the fixed rate: delivers at least 95% of what Mosquitto delivers, with p99 within 2x
    of Mosquitto's with TCP_NODELAY."""
    mp_p99, mq_p99 = v(MOONPOST, p99_row), v(MQ_NODELAY, p99_row)
    mp_rate, mq_rate = v(MOONPOST, rate_row), mosquitto_best(v, rate_row)
    return (None not in (mp_p99, mq_p99, mp_rate, mq_rate) and mp_rate >= 0.95 * mq_rate
            and mp_p99 <= 2 * mq_p99)


def at_least_half_the_forwarder(v):
    return v(MOONPOST, 0) is not None and v(FORWARDER, 0) is not None and \
        v(MOONPOST, 0) >= 0.5 * v(FORWARDER, 0)


# The goals of docs/benchmarks.md, each a ratio within one run.
TARGETS = [
    ("private", "delivered msgs/s >= 2x Mosquitto QoS 0 (the better of its two settings)",
     at_least_twice_mosquitto),
    ("private-read", "acks after every read: delivered msgs/s >= 2x Mosquitto QoS 0",
     at_least_twice_mosquitto),
    ("private20k", "at 20,000 msgs/s: keeps up, p99 <= 2x Mosquitto nodelay's",
     lambda v: keeps_up_within_twice_nodelay_p99(v, 1, 3)),
    ("private20k-read", "the same with acks after every read",
     lambda v: keeps_up_within_twice_nodelay_p99(v, 0, 1)),
    ("broadcast", "deliveries/s >= 2x Mosquitto (the better of its two settings)",
     at_least_twice_mosquitto),
    ("broadcast", "deliveries/s >= 50% of the one-loop forwarder's", at_least_half_the_forwarder),
    ("idle", "RSS per session <= 1.5 KiB and <= Mosquitto's per connection",
     lambda v: v(MOONPOST, 0) is not None and v(MQ_NAGLE, 0) is not None
     and v(MOONPOST, 0) <= 1536 and v(MOONPOST, 0) <= v(MQ_NAGLE, 0)),
    ("resume", "10,000 sessions all back within 2 s",
     lambda v: v(MOONPOST, 0) is not None and v(MOONPOST, 0) <= 2000),
]


def load(directory):
    runs = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        case, variant = os.path.basename(path).split(".")[:2]
        try:
            with open(path) as f:
                runs.setdefault((case, variant), []).append(json.load(f))
        except (OSError, ValueError):
            print("summarize: %s is not a result, skipped" % path, file=sys.stderr)
    return runs


def median(runs, case, variant, get):
    values = []
    for r in runs.get((case, variant), []):
        try:
            v = get(r)
        except (KeyError, TypeError):
            v = None
        if v is not None:
            values.append(v)
    return statistics.median(values) if values else None


def fmt(value, pattern):
    return "-" if value is None else pattern.format(value)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return "%.2f" % (a / b)


def table(header, rows, markdown):
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(out)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda r: "  ".join(str(x).ljust(w) if i == 0 else str(x).rjust(w)
                               for i, (x, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def results_table(runs, markdown):
    header = ["workload (median of runs)", "moonpost", "moonpost C send", "Mosquitto (Nagle)",
              "Mosquitto nodelay", "forwarder", "moonpost/Mosquitto", "moonpost/Mosq. nodelay",
              "moonpost/forwarder"]
    rows = []
    for case, label, get, pattern, _ in ROWS:
        if not any(k[0] == case for k in runs):
            continue
        mp = median(runs, case, MOONPOST, get)
        plugin = median(runs, case, PLUGIN, get)
        nagle = median(runs, case, MQ_NAGLE, get)
        nodelay = median(runs, case, MQ_NODELAY, get)
        forwarder = median(runs, case, FORWARDER, get)
        rows.append([label, fmt(mp, pattern), fmt(plugin, pattern), fmt(nagle, pattern),
                     fmt(nodelay, pattern), fmt(forwarder, pattern), ratio(mp, nagle),
                     ratio(mp, nodelay), ratio(mp, forwarder)])
    return table(header, rows, markdown)


def targets_table(runs, markdown):
    rows = []
    for case, text, check in TARGETS:
        if not any(k[0] == case for k in runs):
            continue
        row_index = [i for i, r in enumerate(ROWS) if r[0] == case]

        def v(variant, n, case=case, row_index=row_index):
            get = ROWS[row_index[n]][2]
            return median(runs, case, variant, get)
        try:
            met = "met" if check(v) else "NOT met"
        except TypeError:
            met = "no data"
        rows.append([case, text, met])
    return table(["case", "target", "result"], rows, markdown)


def cpu_table(runs, markdown):
    rows = []
    for (case, variant) in sorted(runs):
        get = lambda key: (lambda r: r.get(key))
        bench = median(runs, case, variant, get("cpu_bench_pct"))
        broker = median(runs, case, variant, get("cpu_broker_pct"))
        redis = median(runs, case, variant, get("cpu_redis_pct"))
        machine = median(runs, case, variant, get("cpu_machine_pct"))
        others = median(runs, case, variant, get("cpu_others_pct"))
        ours = sum(x for x in (bench, broker, redis) if x is not None)
        kernel = None if machine is None else max(0.0, machine - ours - (others or 0))
        cores = median(runs, case, variant, get("cores"))
        rows.append([case, variant, fmt(bench, "{:.0f}%"), fmt(broker, "{:.0f}%"),
                     fmt(redis, "{:.0f}%"), fmt(kernel, "{:.0f}%"), fmt(others, "{:.0f}%"),
                     fmt(machine, "{:.0f}%") + ("" if cores is None else " of %d00%%" % cores),
                     str(len(runs[(case, variant)]))])
    return table(["case", "server", "load generator", "broker", "redis",
                  "kernel, not in a process", "other processes", "whole machine", "runs"],
                 rows, markdown)


def errors_table(runs, markdown):
    rows = []
    for (case, variant), rs in sorted(runs.items()):
        total = sum(r.get("errors_total", 0) for r in rs)
        if total == 0:
            continue
        merged = {}
        for r in rs:
            for k, n in r.get("errors", {}).items():
                merged[k] = merged.get(k, 0) + n
        rows.append([case, variant, str(total), ", ".join("%s=%d" % kv for kv in sorted(merged.items()))])
    if not rows:
        return "no errors in any run"
    return table(["case", "server", "errors", "by code"], rows, markdown)


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    markdown = "--markdown" in sys.argv[2:]
    runs = load(sys.argv[1])
    if not runs:
        print("summarize: no results in %s" % sys.argv[1], file=sys.stderr)
        return 1
    print(results_table(runs, markdown))
    print()
    print(targets_table(runs, markdown))
    print()
    print("CPU during the measured window, % of one core (from /proc/PID/stat and /proc/stat):")
    if markdown:
        print()
    print(cpu_table(runs, markdown))
    print()
    print(errors_table(runs, markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
