#!/usr/bin/env python3
"""Broker RSS per idle logged-in session, WebSocket next to plain TCP.

For each transport, starts a redis-server and a fresh broker (the test login of
tests/integration/lua/auth.lua, so no password hashing) on loopback, samples the broker's
VmRSS, logs in SESSIONS sessions over that transport and leaves them idle, waits SETTLE
seconds and samples VmRSS again: (after - before) / SESSIONS is the cost of one session.

    bench/ws_idle.py [--sessions 10000] [--settle 3] [--transports tcp,ws]

The environment variable MOONPOST_BIN chooses the broker binary (default build/broker/moonpost).
"""
import argparse
import os
import resource
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

from harness import AUTH, Broker, Client, Redis  # noqa: E402
from wsclient import WsClient  # noqa: E402


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def measure(transport, sessions, settle):
    tmp = tempfile.mkdtemp(prefix="moonpost-wsidle-")
    redis = Redis(tmp)
    redis.start()
    extra = ["max_connections %d" % (sessions + 100), "log_level warn", "idle_timeout 0",
             "login_timeout 0", "request_rate 0"]
    broker = Broker(tmp, redis.port, [AUTH], extra).start()
    pid = broker.proc.pid
    clients = []
    try:
        warm = Client(broker.port)  # the first connection's one-time allocations
        warm.call({"type": "t.login", "user": "warm"})
        time.sleep(0.5)
        before = rss_kib(pid)
        t0 = time.time()
        for i in range(sessions):
            c = WsClient(broker.http_port) if transport == "ws" else Client(broker.port)
            c.send({"type": "t.login", "user": "%s%d" % (transport, i)})
            clients.append(c)
        bad = sum(1 for c in clients if c.wait_res(1)["code"] != 200)
        setup = time.time() - t0
        time.sleep(settle)
        after = rss_kib(pid)
        per = (after - before) * 1024 / sessions
        print("%-4s %6d sessions (%d not 200) in %.1f s: broker RSS %d -> %d KiB, %.0f bytes "
              "per session" % (transport, sessions, bad, setup, before, after, per), flush=True)
        return per
    finally:
        for c in clients:
            c.close()
        broker.stop()
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=10000)
    ap.add_argument("--settle", type=float, default=3.0)
    ap.add_argument("--transports", default="tcp,ws")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for transport in args.transports.split(","):
        measure(transport, args.sessions, args.settle)


if __name__ == "__main__":
    main()
