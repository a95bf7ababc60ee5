#!/usr/bin/env python3
"""login_storm.py: how long N clients take to log in again after a broker restart, with their
password (argon2id at the broker's default cost unless --conf says otherwise) and with their
resume token. Each client connects from its own loopback address and behaves as a client
should: after a 503 it waits `retry_after`, after a closed connection it connects again.

    bench/login_storm.py [-n 2000] [--conf "key value"]... [--deadline 900]

Starts its own redis-server and broker (tests/integration/harness.py) on free ports; nothing
leaves 127.0.0.1."""
import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import harness  # noqa: E402
from test_attack_auth import request  # noqa: E402

PASSWORD = "secret1"


async def until_ok(port, msg, src, deadline, stats):
    while time.time() < deadline:
        r = await request(port, msg, src, timeout=30.0)
        if r is None:
            stats["reconnects"] += 1
        elif r["code"] == 503 and isinstance(r.get("retry_after"), int):
            stats["busy"] += 1
            await asyncio.sleep(r["retry_after"])
        else:
            return r
    return None


def storm(port, msgs, deadline_s):
    stats = {"busy": 0, "reconnects": 0}
    deadline = time.time() + deadline_s

    async def run():
        return await asyncio.gather(*[until_ok(port, m, harness.fresh_addr(), deadline, stats)
                                      for m in msgs])

    t0 = time.time()
    replies = asyncio.run(run())
    took = time.time() - t0
    ok = sum(1 for r in replies if r and r["code"] == 200)
    return replies, ok, took, stats


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-n", type=int, default=2000)
    p.add_argument("--conf", action="append", default=[])
    p.add_argument("--deadline", type=float, default=900)
    args = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="moonpost-storm-")
    redis = harness.Redis(tmp)
    redis.start()
    # the broker's default argon2id cost (the harness lowers it for tests)
    conf = ["pwhash_memory 19456", "pwhash_ops 2", "log_level warn",
            "max_connections %d" % (args.n + 100)] + args.conf
    broker = harness.Broker(tmp, redis.port, extra=conf)
    try:
        broker.start()
        c = harness.Client(broker.port)
        r = c.call(dict(type="register", user="storm0", password=PASSWORD), timeout=60)
        assert r["code"] == 200, r
        fields = redis.cmd("HGETALL", "mp:user:storm0")
        users = ["storm%d" % i for i in range(args.n)]
        for u in users[1:]:
            redis.cmd("HSET", "mp:user:" + u, *fields)
        broker.stop()
        broker.start()
        replies, ok, took, stats = storm(
            broker.port, [dict(type="login", user=u, password=PASSWORD) for u in users],
            args.deadline)
        print("password logins after a restart: %d of %d in %.1f s (%d busy replies, "
              "%d reconnects)" % (ok, args.n, took, stats["busy"], stats["reconnects"]))
        tokens = [(u, r["token"]) for u, r in zip(users, replies) if r and r["code"] == 200]
        broker.stop()
        broker.start()
        _, ok, took, stats = storm(
            broker.port, [dict(type="resume", user=u, token=t) for u, t in tokens], args.deadline)
        print("resumes after a restart: %d of %d in %.1f s" % (ok, len(tokens), took))
    finally:
        broker.stop()
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
