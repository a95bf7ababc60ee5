"""redis_wait_replicas: a private message is answered 200 only once that many replicas of
Redis confirmed they have it (WAIT); without them the sender gets 503 and the broker keeps
serving. On one Redis with a replica started by the test (the same code runs per master on a
Redis Cluster)."""
import os
import subprocess
import unittest

from harness import BrokerTest, free_port, wait_port
from helpers import poll, uname


class Replica:
    """A redis-server replicating the test's Redis, in a directory of its own."""

    def __init__(self, tmp, master_port):
        self.dir = os.path.join(tmp, "replica")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--save", "", "--appendonly", "no", "--replicaof", "127.0.0.1", str(master_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, proc=self.proc)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class WaitReplicasTest(BrokerTest):
    extra = ["redis_wait_replicas 1", "redis_timeout 1", "request_rate 0"]

    def send(self, sender, to, body):
        return sender.call(dict(type="send", to=to, body=body))

    def replicas(self):
        """Replicas past their first sync (they acknowledge what they have)."""
        info = self.redis.cmd("INFO", "replication").decode()
        return info.count("state=online")

    def test_send_waits_for_a_replica(self):
        alice, bob = uname("a"), uname("b")
        a = self.login(alice)
        self.register(bob)
        # no replica: stored on the master, but not confirmed, so not acknowledged
        r = self.send(a, bob, "unconfirmed")
        self.assertEqual(r["code"], 503, r)
        self.assertIn("too few replicas confirmed", self.broker.log_text())
        replica = Replica(self.tmp, self.redis.port)
        try:
            poll(lambda: self.replicas() == 1, what="the replica in sync")
            for i in range(20):
                r = self.send(a, bob, "confirmed %d" % i)
                self.assertEqual(r["code"], 200, r)
            # what was acknowledged is on the replica already
            bob_box = self.user_key("mbox", bob).encode()
            out = subprocess.run(["redis-cli", "-p", str(replica.port), "ZCARD", bob_box],
                                 capture_output=True, check=True).stdout
            self.assertGreaterEqual(int(out), 20)
            replica.stop()
            poll(lambda: self.replicas() == 0, what="the master saw the replica leave")
            self.assertEqual(self.send(a, bob, "again unconfirmed")["code"], 503)
        finally:
            if replica.proc.poll() is None:
                replica.stop()
        # the broker kept serving: a read still works
        self.assertEqual(a.call(dict(type="users"))["code"], 200)


if __name__ == "__main__":
    unittest.main()
