#!/usr/bin/env python3
"""redis_cost.py: Redis CPU per private message, for the Redis functions of a checkout: N
stores (`FCALL moonpost_store`, pipelined) spread over MAILBOXES mailboxes, then acks of ACK
messages at a time in each, with the CPU time Redis used for each phase (from /proc/PID/stat).

    bench/redis_cost.py [ROOT] [-n 50000] [--mailboxes 1] [--ack 32] [--many K]

`--mailboxes 1000 --ack 1` is the private-chat benchmark's shape: clients that ack after every
read get about one message per read at its rates.

`--live` stores and acks in rounds, as live clients do: ACK messages to each mailbox, then
each mailbox's ack of all it holds, and again (without it every store comes first, and the
acks then delete from mailboxes that still hold the rest).

`--many K` sends the stores and the acks K per call (`moonpost_store_many`,
`moonpost_ack_many`: what the chat scripts send for the messages of one loop pass).

ROOT is the checkout whose scripts/lib/redis_functions.lua is measured (default: this one), so
two versions compare in one run: `bench/redis_cost.py OLD_CHECKOUT; bench/redis_cost.py`.
Starts its own redis-server on a free port; nothing leaves 127.0.0.1."""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from harness import free_port, wait_port  # noqa: E402
from mpwire import packb  # noqa: E402


def command(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.reader = self.sock.makefile("rb")

    def reply(self):
        line = self.reader.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.reader.read(n + 2)[:-2]
        if kind == b"*":
            return [self.reply() for _ in range(int(rest))]
        if kind == b"-":
            raise RuntimeError(rest.decode())
        return rest

    def pipeline(self, commands):
        self.sock.sendall(b"".join(commands))
        return [self.reply() for _ in commands]


def cpu_seconds(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_redis():
    """A redis-server of our own on a free loopback port: (process, port, its dir)."""
    tmp = tempfile.mkdtemp(prefix="moonpost-redis-cost.")
    port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                              "--dir", tmp, "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL)
    try:
        wait_port(port, proc=redis)
        # for a profiler to attach to
        print("redis_cost: redis-server pid %d on port %d" % (redis.pid, port), file=sys.stderr)
    except BaseException:
        stop_redis(redis, tmp)
        raise
    return redis, port, tmp


def stop_redis(redis, tmp):
    redis.kill()
    redis.wait()
    subprocess.run(["rm", "-rf", tmp])


def run_stores(c, store, first, end, many):
    """Runs the stores of messages FIRST..END (their commands: one each, or one per MANY):
    their mids."""
    if many > 1:
        replies = [r for call in c.pipeline(store[first // many:(end + many - 1) // many])
                   for r in call]
    else:
        replies = c.pipeline(store[first:end])
    # the mid, or {mid, prev} since the cluster (docs/cluster.md)
    return [int(m[0] if isinstance(m, list) else m) for m in replies]


def ack_commands(order, mids, every, many, quota, acked):
    """The acks of messages ORDER (their mailboxes) with MIDS: each mailbox acks its every
    EVERY-th message and its last one; MANY per call when above 1."""
    by_box = {}
    for b, m in zip(order, mids):
        by_box.setdefault(b, []).append(m)
    acks = [(b, ms[i]) for b, ms in by_box.items()
            for i in range(len(ms)) if (i + 1) % every == 0 or i == len(ms) - 1]
    acks.sort(key=lambda bm: bm[1])
    if many > 1:
        return [command("FCALL", "moonpost_ack_many", 3 * len(part),
                        *[k for b, _ in part for k in ("mp:mbox:" + b, "mp:mboxfrom:" + b,
                                                        "mp:user:" + b)],
                        *[m for _, m in part])
                for part in (acks[i:i + many] for i in range(0, len(acks), many))]
    if quota:
        # the user's hash, for its `acked`, since prev is read from it
        users = (lambda b: ["mp:user:" + b]) if acked else (lambda b: [])
        return [command("FCALL", "moonpost_ack", 2 + len(users(b)), "mp:mbox:" + b,
                        "mp:mboxfrom:" + b, *users(b), m) for b, m in acks]
    return [command("ZREMRANGEBYSCORE", "mp:mbox:" + b, "-inf", m) for b, m in acks]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root", nargs="?", default=os.path.join(HERE, ".."))
    ap.add_argument("-n", type=int, default=50000)
    ap.add_argument("--mailboxes", type=int, default=1)
    ap.add_argument("--ack", type=int, default=32)
    ap.add_argument("--many", type=int, default=1)
    ap.add_argument("--live", action="store_true")
    a = ap.parse_args()
    n = a.n // a.mailboxes * a.mailboxes
    source = open(os.path.join(a.root, "scripts", "lib", "redis_functions.lua")).read()
    library = source[source.index("[[") + 2:source.rindex("]]")]
    # the store's arguments of each version: the quota and the clock came with the time mids
    quota = "moonpost_ack" in library
    redis, port, tmp = start_redis()
    try:
        c = Conn(port)
        boxes = ["b%d" % i for i in range(a.mailboxes)]
        c.pipeline([command("FUNCTION", "LOAD", "REPLACE", library)] +
                   [command("HSET", "mp:user:" + b, "pw", "x", "mid", 0, "acked", 0) for b in boxes])
        blob = packb({"from": "alice", "to": "b", "body": "x" * 64, "ts": int(time.time() * 1e3)})
        # round robin over the mailboxes: message i goes to boxes[i % mailboxes]
        order = [boxes[i % a.mailboxes] for i in range(n)]
        # the recipient's location, read by the store since the location key
        loc = (lambda b: ["mp:loc:" + b]) if "location" in library else (lambda b: [])
        if quota:
            store = [command("FCALL", "moonpost_store", 3 + len(loc(b)), "mp:user:" + b,
                             "mp:mbox:" + b, "mp:mboxfrom:" + b, *loc(b), n + 1, blob,
                             int(time.time() * 1e3), n + 1, "alice") for b in order]
        else:
            store = [command("FCALL", "moonpost_store", 2, "mp:user:" + b, "mp:mbox:" + b, n + 1,
                             blob) for b in order]
        if a.many > 1:
            now = int(time.time() * 1e3)
            store = [command("FCALL", "moonpost_store_many", 4 * len(part),
                             *[k for b in part for k in ("mp:user:" + b, "mp:mbox:" + b,
                                                         "mp:mboxfrom:" + b, "mp:loc:" + b)],
                             n + 1, n + 1, now, *[x for _ in part for x in (blob, "alice")])
                     for part in (order[i:i + a.many] for i in range(0, n, a.many))]
        acked = "acked" in library
        # a round of --live: ACK messages to each mailbox, in whole calls of --many
        size = -(-a.mailboxes * a.ack // a.many) * a.many if a.live else n
        rounds = [(i, min(i + size, n)) for i in range(0, n, size)]
        store_cpu = ack_cpu = 0.0
        for first, end in rounds:
            t0 = cpu_seconds(redis.pid)
            mids = run_stores(c, store, first, end, a.many)
            t1 = cpu_seconds(redis.pid)
            c.pipeline(ack_commands(order[first:end], mids, a.ack, a.many, quota, acked))
            t2 = cpu_seconds(redis.pid)
            store_cpu += t1 - t0
            ack_cpu += t2 - t1
        left = sum(int(r) for r in c.pipeline([command("ZCARD", "mp:mbox:" + b) for b in boxes]))
        print("%s: store %.2f us/msg, ack (%d a time%s) %.2f us/msg, %d per call, Redis CPU for "
              "%d messages in %d mailboxes (%d left unacked)"
              % (os.path.abspath(a.root), store_cpu / n * 1e6, a.ack, ", live" if a.live else "",
                 ack_cpu / n * 1e6, a.many, n, a.mailboxes, left))
    finally:
        stop_redis(redis, tmp)


if __name__ == "__main__":
    main()
