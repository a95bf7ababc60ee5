#!/usr/bin/env python3
"""redis_cluster_cost.py: Redis CPU per call of the cluster registry (broker/cluster_functions.lua,
docs/cluster.md) with N users online over K nodes: what a login (claim), a logout (release), a
cross-node message (the lookup of the recipient's node, then the SPUBLISH of the message on
that node's channel) and the online list of a login reply (users 1000) cost the one Redis
every node shares.

    bench/redis_cluster_cost.py [ROOT] [-n 100000] [--nodes 6]

ROOT is the checkout whose functions are measured (default: this one). Each phase is N calls
(users: N/50) pipelined in batches of 1,000; its Redis CPU (/proc/PID/stat) divided by the
calls. Every node channel has one subscriber (SSUBSCRIBE: node channels are sharded) that reads
and drops what comes, as a node's. Starts its own redis-server on a free port; nothing leaves
127.0.0.1."""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from redis_cost import Conn, command, cpu_seconds, start_redis, stop_redis  # noqa: E402
from redis_pubsub_cost import Subscribers  # noqa: E402

PREFIX = "mp:"
BATCH = 1000


def fcall(name, *args):
    """A registry call as cluster.c sends it on one Redis: declaring the registry's key."""
    return command("FCALL", name, 1, PREFIX + "nodes", PREFIX, *args)


def node(i):
    return "bench-%d" % i


def channel(node_id):
    """A node's channel, as cluster.c names it."""
    if isinstance(node_id, bytes):
        node_id = node_id.decode()
    return PREFIX + "node:" + node_id


def measure(c, pid, commands):
    """Redis CPU per command (us) over COMMANDS sent in batches, and the replies."""
    replies = []
    t0 = cpu_seconds(pid)
    for i in range(0, len(commands), BATCH):
        replies += c.pipeline(commands[i:i + BATCH])
    return (cpu_seconds(pid) - t0) / len(commands) * 1e6, replies


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root", nargs="?", default=os.path.join(HERE, ".."))
    ap.add_argument("-n", type=int, default=100000)
    ap.add_argument("--nodes", type=int, default=6)
    a = ap.parse_args()
    library = open(os.path.join(a.root, "broker", "cluster_functions.lua")).read()
    redis, port, tmp = start_redis()
    subs = []
    try:
        c = Conn(port)
        c.pipeline([command("FUNCTION", "LOAD", "REPLACE", library)])
        now = int(time.time() * 1000)
        c.pipeline([fcall("moonpost_node_beat", node(k), "i%d" % k, 600000, 0, now, "bench", k)
                    for k in range(a.nodes)])
        subs = [Subscribers(port, channel(node(k)), 1, "SSUBSCRIBE") for k in range(a.nodes)]
        users = ["u%d" % i for i in range(a.n)]
        rows = []
        us, claims = measure(c, redis.pid, [fcall("moonpost_presence_claim", u, node(i % a.nodes))
                                            for i, u in enumerate(users)])
        assert all(len(r) == 1 for r in claims), "a first claim named an old node"
        rows.append(("claim (a login)", us))
        us, wheres = measure(c, redis.pid, [fcall("moonpost_where", u) for u in users])
        assert wheres == [node(i % a.nodes).encode() for i in range(a.n)], "a lookup missed"
        rows.append(("where (the lookup of a cross-node send)", us))
        message = b"D" + b"x" * 199
        us, sent = measure(c, redis.pid, [command("SPUBLISH", channel(w), message)
                                          for w in wheres])
        assert all(int(r) == 1 for r in sent), "a node channel had no subscriber"
        rows.append(("SPUBLISH of a 200-byte message to a node channel", us))
        us, _ = measure(c, redis.pid, [fcall("moonpost_users", 1000)] * max(1, a.n // 50))
        rows.append(("users 1000 (the online list of a login reply)", us))
        us, claims = measure(c, redis.pid, [fcall("moonpost_presence_claim", u,
                                                  node((i + 1) % a.nodes))
                                            for i, u in enumerate(users)])
        assert all(r[1:] == [node(i % a.nodes).encode()] for i, r in enumerate(claims)), \
            "a claim did not name the node that held the user"
        rows.append(("claim of a user online on another node (names it)", us))
        us, released = measure(c, redis.pid, [fcall("moonpost_presence_release",
                                                    node((i + 1) % a.nodes), u, claims[i][0])
                                              for i, u in enumerate(users)])
        assert all(int(r) == 1 for r in released), "a release missed its claim"
        rows.append(("release (a logout)", us))
        print("Redis CPU per call, %d users over %d nodes (%s):" % (a.n, a.nodes,
                                                                    os.path.abspath(a.root)))
        for name, us in rows:
            print("  %-55s %7.2f us" % (name, us))
    finally:
        for s in subs:
            s.stop()
        stop_redis(redis, tmp)


if __name__ == "__main__":
    main()
