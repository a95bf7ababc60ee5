#!/usr/bin/env python3
"""redis_pubsub_cost.py: Redis CPU per PUBLISH as the subscribers of a channel grow: what one
cross-node message (one subscriber: the node's channel) and one broadcast (one subscriber per
node: the broadcast channel) cost the one Redis of a cluster (docs/cluster.md).

    bench/redis_pubsub_cost.py [-n 100000] [--size 200] [--subscribers 1,2,6,16,64] [--batch B]

For each count S: S subscriber connections read and drop everything, then N PUBLISHes of SIZE
bytes go in pipelined batches of B (default 1000); the Redis CPU of that phase (/proc/PID/stat:
the command and the writes to the subscribers' sockets) divided by N. In big batches Redis
writes many messages to a subscriber in one write(); with --batch 1 every message is a write of
its own, as under a light load. A PING in the same batches is the baseline: what any request
costs Redis (reading it, answering it). Starts its own redis-server on a free port."""
import argparse
import os
import selectors
import socket
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from redis_cost import Conn, command, cpu_seconds, start_redis, stop_redis  # noqa: E402

class Subscribers:
    """S connections SUBSCRIBEd to CHANNEL (or SSUBSCRIBEd: VERB), drained by one thread until
    stop()."""

    def __init__(self, port, channel, count, verb="SUBSCRIBE"):
        self.socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
        self.sel = selectors.DefaultSelector()
        for s in self.socks:
            s.sendall(command(verb, channel))
            s.recv(4096)  # the confirmation
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ)
        self.running = True
        self.thread = threading.Thread(target=self.drain, daemon=True)
        self.thread.start()

    def drain(self):
        while self.running:
            for key, _ in self.sel.select(0.1):
                try:
                    key.fileobj.recv(1 << 20)
                except BlockingIOError:
                    pass

    def stop(self):
        self.running = False
        self.thread.join()
        for s in self.socks:
            s.close()


def publish_cost(port, pid, n, size, subscribers, batch_size):
    """Redis CPU per request (us) and copies per message; 0 subscribers: PING instead."""
    channel = "mp:node:bench-%d" % subscribers
    subs = Subscribers(port, channel, subscribers)
    try:
        c = Conn(port)
        one = (command("PUBLISH", channel, b"D" + b"x" * (size - 1)) if subscribers else
               command("PING"))
        batch = [one] * batch_size
        t0 = cpu_seconds(pid)
        receivers = 0
        for _ in range(n // batch_size):
            receivers += sum(int(r) if subscribers else 0 for r in c.pipeline(batch))
        t1 = cpu_seconds(pid)
        c.sock.close()
    finally:
        subs.stop()
    sent = n // batch_size * batch_size
    return (t1 - t0) / sent * 1e6, receivers / sent


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=100000)
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--subscribers", default="1,2,6,16,64")
    ap.add_argument("--batch", type=int, default=1000)
    a = ap.parse_args()
    redis, port, tmp = start_redis()
    try:
        us, _ = publish_cost(port, redis.pid, a.n, a.size, 0, a.batch)
        print("PING, batches of %d: %.2f us of Redis CPU each" % (a.batch, us))
        for s in (int(x) for x in a.subscribers.split(",")):
            us, copies = publish_cost(port, redis.pid, a.n, a.size, s, a.batch)
            print("PUBLISH of %d bytes to %d subscriber(s), batches of %d: %.2f us of Redis CPU "
                  "each (%.2f us per copy; %.0f copies per message)" % (
                      a.size, s, a.batch, us, us / s, copies))
    finally:
        stop_redis(redis, tmp)


if __name__ == "__main__":
    main()
