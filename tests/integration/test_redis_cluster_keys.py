"""The chat, rooms, files and cluster tests again, on a one-master Redis Cluster (one
redis-server with --cluster-enabled yes holding every slot) with `redis_cluster on`: such a
server refuses a command whose keys are in different slots (CROSSSLOT) and a function that
touches a key outside the slot of its declared keys, so every atomic step the scripts and the
registry take must stay within one hash slot (docs/redis-cluster-keys.md). The tests are the
existing classes, run with another Redis and the cluster setting; the brokers' logs must not
hold a cross-slot error."""
import os
import shutil
import tempfile
import unittest

import test_chat_broadcast as broadcast
import test_chat_login as login
import test_chat_messaging as messaging
import test_chat_register as register
import test_cluster as cluster
import test_files as files
import test_rooms as rooms
from harness import Redis, free_port
from helpers import poll

# What Redis answers a step that touches more than one slot.
CROSS_SLOT_ERRORS = ("CROSSSLOT", "same slot", "non local key")


class OneMasterCluster(Redis):
    """A redis-server in cluster mode that holds all 16384 slots itself."""

    def server_args(self):
        return super().server_args() + [
            "--cluster-enabled", "yes",
            "--cluster-config-file", os.path.join(self.tmp, "nodes-%d.conf" % self.port),
            "--cluster-port", str(free_port()),
            # a node that never met another one does not know its address: CLUSTER SLOTS would
            # answer an empty host
            "--cluster-announce-ip", "127.0.0.1"]

    def start(self):
        super().start()
        self.cmd("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        poll(lambda: b"cluster_state:ok" in self.cmd("CLUSTER", "INFO"), 30,
             what="cluster_state:ok")


class OnCluster:
    """Mixed in before a test class: its Redis is a OneMasterCluster and its brokers run with
    redis_cluster on (the line comes last: a key given again later in the file wins)."""
    redis_class = OneMasterCluster
    redis_cluster = True
    CLUSTER_LINES = ["redis_cluster on"]

    @classmethod
    def setUpClass(cls):
        cls.extra = list(getattr(cls, "extra", None) or []) + cls.CLUSTER_LINES
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        broker = getattr(cls, "broker", None)
        log = broker.log_text() if broker is not None and not callable(broker) else ""
        super().tearDownClass()
        for error in CROSS_SLOT_ERRORS:
            if error in log:
                raise AssertionError("cross-slot error in the broker's log:\n%s" % log[-4000:])

    # the nodes of a ClusterTest
    def node(self, node_id, extra=None, **kw):
        return super().node(node_id, list(extra or []) + self.CLUSTER_LINES, **kw)

    def tearDown(self):
        logs = [b.log_text() for b in getattr(self, "brokers", [])]
        super().tearDown()
        for log in logs:
            for error in CROSS_SLOT_ERRORS:
                self.assertNotIn(error, log, "cross-slot error in a broker's log:\n%s" %
                                 log[-4000:])


def on_cluster(base):
    """BASE's tests, run on a OneMasterCluster."""
    return type(base.__name__ + "OnCluster", (OnCluster, base), {"__module__": __name__})


RegisterTestOnCluster = on_cluster(register.RegisterTest)
LoginTestOnCluster = on_cluster(login.LoginTest)
LoginErrorsTestOnCluster = on_cluster(login.LoginErrorsTest)
LoginWindowTestOnCluster = on_cluster(login.LoginWindowTest)
UsersTestOnCluster = on_cluster(messaging.UsersTest)
SendTestOnCluster = on_cluster(messaging.SendTest)
ReplayRaceTestOnCluster = on_cluster(messaging.ReplayRaceTest)
MailboxFullTestOnCluster = on_cluster(messaging.MailboxFullTest)
MailRestartTestOnCluster = on_cluster(messaging.MailRestartTest)
BroadcastTestOnCluster = on_cluster(broadcast.BroadcastTest)
PresenceTestOnCluster = on_cluster(broadcast.PresenceTest)
RoomsTestOnCluster = on_cluster(rooms.RoomsTest)
RoomHistoryLimitTestOnCluster = on_cluster(rooms.RoomHistoryLimitTest)
RoomLimitsTestOnCluster = on_cluster(rooms.RoomLimitsTest)
FilesTestOnCluster = on_cluster(files.FilesTest)
FileExpiryTestOnCluster = on_cluster(files.FileExpiryTest)
ClusterChatTestOnCluster = on_cluster(cluster.ClusterChatTest)
ClusterChatSendPluginTestOnCluster = on_cluster(cluster.ClusterChatSendPluginTest)
RoomsClusterTestOnCluster = on_cluster(rooms.RoomsClusterTest)
FilesClusterTestOnCluster = on_cluster(files.FilesClusterTest)


class OneMasterClusterTest(unittest.TestCase):
    """The fixture itself: the server refuses a cross-slot command and a function touching a
    key outside its declared key's slot, so the tests above can trust a clean log."""

    def test_the_server_refuses_keys_of_two_slots(self):
        tmp = tempfile.mkdtemp(prefix="moonpost-test-")
        redis = OneMasterCluster(tmp)
        try:
            redis.start()
            with self.assertRaisesRegex(RuntimeError, "CROSSSLOT"):
                redis.cmd("MGET", "mp:user:{a}", "mp:user:{b}")
            self.assertEqual(redis.cmd("MGET", "mp:user:{a}", "mp:mbox:{a}"), [None, None])
            redis.cmd("FUNCTION", "LOAD", "#!lua name=probe\nredis.register_function('probe', "
                      "function(keys, args) return redis.call('GET', args[1]) end)")
            with self.assertRaisesRegex(RuntimeError, "same slot"):
                redis.cmd("FCALL", "probe", 1, "mp:user:{a}", "mp:user:{b}")
            self.assertIsNone(redis.cmd("FCALL", "probe", 1, "mp:user:{a}", "mp:mbox:{a}"))
        finally:
            redis.stop()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
