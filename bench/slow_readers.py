#!/usr/bin/env python3
"""Broker RSS before, at the peak of and after a broadcast storm to slow readers.

Starts a redis-server and the broker (the test login of tests/integration/lua/auth.lua and
scripts/broadcast.lua) on loopback, logs in READERS sessions that never read, sends BROADCASTS
broadcasts of SIZE bytes from one more session, samples the broker's VmRSS, closes the readers
and samples it again once the broker has freed their output.

    bench/slow_readers.py [--readers 5000] [--broadcasts 30] [--size 16000] [--set KEY=VALUE]...

The environment variable MOONPOST_BIN chooses the broker binary (default build/broker/moonpost).
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

from harness import AUTH, SCRIPTS, Broker, Client, Redis, metrics  # noqa: E402


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--readers", type=int, default=5000)
    ap.add_argument("--broadcasts", type=int, default=30)
    ap.add_argument("--size", type=int, default=16000)
    ap.add_argument("--set", action="append", default=[], help="a broker config line KEY=VALUE")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds to wait after closing")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="moonpost-slow-")
    redis = Redis(tmp)
    redis.start()
    extra = ["script_path " + SCRIPTS, "max_connections %d" % (args.readers + 100),
             "log_level warn"] + [kv.replace("=", " ", 1) for kv in args.set]
    broker = Broker(tmp, redis.port, [AUTH, "broadcast"], extra).start()
    pid = broker.proc.pid
    readers = []
    try:
        for i in range(args.readers):
            c = Client(broker.port)
            c.send({"type": "t.login", "user": "slow%d" % i})
            readers.append(c)
        for c in readers:
            c.wait_res(1)
        pub = Client(broker.port)
        assert pub.call({"type": "t.login", "user": "publisher"})["code"] == 200
        before = rss_mib(pid)
        peak, body, ids = before, "x" * args.size, []
        t0 = time.time()
        for _ in range(args.broadcasts):
            ids.append(pub.send({"type": "broadcast", "body": body}))
        replies = [pub.wait_res(i, timeout=120) for i in ids]
        codes = [r["code"] for r in replies]
        if codes.count(200) < len(codes):
            print("not 200:", [r for r in replies if r["code"] != 200][:3])
        storm = time.time() - t0
        for _ in range(10):
            peak = max(peak, rss_mib(pid))
            time.sleep(0.1)
        for c in readers:
            c.close()
        readers = []
        time.sleep(args.settle)
        after = rss_mib(pid)
        queued = metrics(broker).get("moonpost_output_queued_bytes", -1)
        print("readers %d, broadcasts %d x %d B (%d answered 200, %.1f s): RSS MiB before %.0f, "
              "peak %.0f, after %.0f (output still queued: %d B)"
              % (args.readers, args.broadcasts, args.size, codes.count(200), storm, before, peak,
                 after, queued))
        pub.close()
    finally:
        for c in readers:
            c.close()
        broker.stop()
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
