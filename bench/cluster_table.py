#!/usr/bin/env python3
"""cluster_table: the JSON results of bench/cluster.sh (CASE.NODES.RUN.json) as one table of
medians: delivered msgs/s, latency, the share of private messages that reached their recipient
through a mailbox read (a resync) rather than live, errors and the CPU of every process (in % of
one core; "others" is every other process on the machine).

usage: cluster_table.py RESULTS_DIR"""
import collections
import glob
import json
import os
import statistics
import sys

CASES = [
    ("private", "private chat, as fast as possible"),
    ("private20k", "private chat at 20,000 msgs/s"),
    ("broadcast", "broadcast 1 -> 1,000"),
    ("latency-local", "private at a fixed rate, every message on its node"),
    ("latency-cross", "private at a fixed rate, every message to the other node"),
]


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, spec):
    return "-" if v is None else spec.format(v)


def row(runs):
    per_broker = zip(*[r["cpu_brokers_pct"] for r in runs])
    brokers = " + ".join(fmt(median(list(b)), "{:.0f}%") for b in per_broker)
    errors = sum(r["errors_total"] for r in runs)
    resynced = median([100.0 * r.get("from_mailbox", 0) / r["delivered_all"]
                       for r in runs if r["delivered_all"]])
    return [fmt(median([r["delivered_per_s"] for r in runs]), "{:,.0f}"),
            fmt(median([r["latency"]["p50_us"] / 1e3 for r in runs]), "{:.3f}"),
            fmt(median([r["latency"]["p99_us"] / 1e3 for r in runs]), "{:.3f}"),
            fmt(resynced, "{:.1f}%"),
            fmt(median([r["cpu_bench_pct"] for r in runs]), "{:.0f}%"), brokers,
            fmt(median([r["cpu_redis_pct"] for r in runs]), "{:.0f}%"),
            fmt(median([r["cpu_machine_pct"] for r in runs]), "{:.0f}%"),
            fmt(median([r["cpu_others_pct"] for r in runs]), "{:.0f}%"),
            "%d (%d runs)" % (errors, len(runs))]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("\n\n")[-1])
    runs = collections.defaultdict(list)
    for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
        case, nodes, _ = os.path.basename(path).rsplit(".", 3)[:3]
        try:
            with open(path) as f:
                runs[(case, int(nodes))].append(json.load(f))
        except (OSError, ValueError) as e:
            print("cluster_table: %s: %s" % (path, e), file=sys.stderr)
    head = ["case", "nodes", "delivered/s", "p50 ms", "p99 ms", "resync", "load gen.", "brokers",
            "redis", "machine", "others", "errors"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for case, label in CASES:
        for nodes in sorted(n for c, n in runs if c == case):
            rate = runs[(case, nodes)][0]["rate"]
            text = label.replace("a fixed rate", "{:,.0f} msgs/s".format(rate))
            print("| " + " | ".join([text, str(nodes)] + row(runs[(case, nodes)])) + " |")


if __name__ == "__main__":
    main()
