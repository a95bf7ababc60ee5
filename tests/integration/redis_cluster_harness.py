"""redis_cluster_harness: a real Redis Cluster (3 masters and a replica each, by default) of
redis-server processes on free ports, each in a directory of its own, built with
`redis-cli --cluster create`; and what the tests do to it: find the master of a key, kill a
master and wait for its replica to take over, move a slot with its keys while brokers use it.
RedisClusterTest runs a test class's brokers on such a cluster; OnRedisCluster puts a test class
written for one redis-server on it. Building a cluster takes seconds: the classes of one test
process share one (shared_cluster), emptied before each test."""
import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from harness import Broker, BrokersTest, free_port, redis_cmd, user_key, wait_port
from helpers import poll

SLOTS = 16384
NODE_TIMEOUT_MS = 1000  # a master unreachable this long is failed over by its replica


def _crc16_table():
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return table


_CRC16 = _crc16_table()


def key_slot(key):
    """The hash slot of KEY (str or bytes): CRC16 (XMODEM) of the key, or of its hash tag (what
    lies between the first `{` and the next `}`, when that is not empty), modulo 16384."""
    key = key.encode() if isinstance(key, str) else key
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1:end]
    crc = 0
    for byte in key:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16[((crc >> 8) ^ byte) & 0xFF]
    return crc % SLOTS


class RedisNode:
    """One redis-server of the cluster: its port, directory (nodes.conf, appendonly files, log)
    and process."""

    def __init__(self, tmp):
        self.port = free_port()
        self.bus_port = free_port()  # (by default port + 10000: maybe taken, or ephemeral)
        self.dir = tempfile.mkdtemp(prefix="redis-%d-" % self.port, dir=tmp)
        self.proc = None
        self.id = None

    def start(self):
        log = open(os.path.join(self.dir, "redis.log"), "ab")
        try:
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                 "--dir", self.dir, "--cluster-enabled", "yes",
                 "--cluster-config-file", "nodes.conf", "--cluster-port", str(self.bus_port),
                 "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                 # a replica takes over however long it was cut off: failovers are what
                 # the tests are about
                 "--cluster-replica-validity-factor", "0",
                 "--appendonly", "yes", "--save", "", "--daemonize", "no",
                 "--loglevel", "warning"], stdout=log, stderr=log)
        finally:
            log.close()
        wait_port(self.port, proc=self.proc)

    def kill(self):
        """SIGKILL: no goodbye to the cluster, what was not yet written to a replica is lost."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class RedisCluster:
    """MASTERS masters with REPLICAS replicas each, every node a redis-server of its own."""

    def __init__(self, tmp, masters=3, replicas=1):
        self.tmp, self.masters, self.replicas = tmp, masters, replicas
        self.nodes = [RedisNode(tmp) for _ in range(masters * (1 + replicas))]

    def start(self, timeout=60.0):
        try:
            for n in self.nodes:
                n.start()
            r = subprocess.run(
                ["redis-cli", "--cluster", "create"]
                + ["127.0.0.1:%d" % n.port for n in self.nodes]
                + ["--cluster-replicas", str(self.replicas), "--cluster-yes"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
            if r.returncode != 0:
                raise RuntimeError("redis-cli --cluster create failed:\n" + r.stdout)
            for n in self.nodes:
                n.id = self.cmd(n.port, "CLUSTER", "MYID").decode()
            self.wait_ready(timeout, replicas=self.masters * self.replicas)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        for n in self.nodes:
            n.kill()

    # ---- talking to it ----

    @staticmethod
    def cmd(port, *args):
        """One command to the node at PORT; returns its reply (an error raises RuntimeError)."""
        return redis_cmd(port, *args, timeout=10)

    def node(self, port):
        return next(n for n in self.nodes if n.port == port)

    def live_ports(self):
        return [n.port for n in self.nodes if n.alive]

    def seeds(self):
        """The addresses of every node, as the broker's `redis` line takes them."""
        return " ".join("127.0.0.1:%d" % n.port for n in self.nodes)

    def slot_map(self, port=None):
        """[(first slot, last slot, master port, (replica ports))] as the node at PORT (default:
        the first live one) tells it in CLUSTER SLOTS, in slot order."""
        port = port or self.live_ports()[0]
        ranges = []
        for entry in self.cmd(port, "CLUSTER", "SLOTS"):
            first, last, master = entry[0], entry[1], entry[2]
            ranges.append((first, last, master[1], tuple(sorted(r[1] for r in entry[3:]))))
        return sorted(ranges)

    def master_of_slot(self, slot, port=None):
        for first, last, master, _ in self.slot_map(port):
            if first <= slot <= last:
                return master
        raise AssertionError("slot %d is served by no master" % slot)

    def master_of(self, key):
        """The port of the master that serves KEY's slot."""
        return self.master_of_slot(key_slot(key))

    def master_ports(self):
        """The ports of the masters that serve slots, in slot order of their first range."""
        ports = []
        for _, _, master, _ in self.slot_map():
            if master not in ports:
                ports.append(master)
        return ports

    def flushall(self):
        """Empties every master (their replicas follow); functions stay loaded."""
        for port in self.master_ports():
            self.cmd(port, "FLUSHALL")

    # ---- state ----

    def agreed_map(self, replicas=None):
        """The slot map when every live node says cluster_state:ok, all of them tell the same
        masters for the same slots, every slot has a live master (and, with REPLICAS, that many
        replicas are listed); else None. For polling."""
        maps = []
        for port in self.live_ports():
            if b"cluster_state:ok" not in self.cmd(port, "CLUSTER", "INFO"):
                return None
            maps.append(self.slot_map(port))
        masters = [[(first, last, master) for first, last, master, _ in m] for m in maps]
        if any(m != masters[0] for m in masters):
            return None
        live = set(self.live_ports())
        covered = sum(last - first + 1 for first, last, master, _ in maps[0] if master in live)
        if covered != SLOTS:
            return None
        if replicas is not None and sum(len(r) for *_, r in maps[0]) < replicas:
            return None
        return maps[0]

    def wait_ready(self, timeout=60.0, replicas=None):
        """Until every live node agrees on a slot map that covers every slot with live masters
        (agreed_map); returns that map."""
        return poll(lambda: self.agreed_map(replicas), timeout, interval=0.1,
                    what=lambda: "an agreed slot map with cluster_state:ok on ports %s "
                    "(maps: %s)" % (self.live_ports(), self._maps_for_message()),
                    retry_on=(OSError, RuntimeError))

    def _maps_for_message(self):
        out = {}
        for port in self.live_ports():
            try:
                out[port] = [(f, l, m) for f, l, m, _ in self.slot_map(port)]
            except (OSError, RuntimeError) as e:
                out[port] = repr(e)
        return out

    # ---- faults and changes ----

    def kill_master(self, port):
        """SIGKILLs the master at PORT (it must serve slots)."""
        if port not in self.master_ports():
            raise AssertionError("%d is not a master serving slots" % port)
        self.node(port).kill()

    def wait_failover(self, timeout=30.0):
        """Until a replica of every killed master has taken its slots over and the live nodes
        agree on the map again (cluster_state:ok everywhere); returns the map."""
        return self.wait_ready(timeout)

    def restart(self, port, timeout=30.0):
        """Starts the killed node at PORT again: it rejoins from its nodes.conf (as a replica
        of the master that took over). Returns once the live nodes agree on the map."""
        self.node(port).start()
        return self.wait_ready(timeout)

    def move_slot(self, slot, to_port, batch=2, pause_between_keys=0.2, timeout=60.0):
        """Moves SLOT with its keys to the master at TO_PORT the way redis-cli --cluster
        reshard does: the target imports, the source migrates, the keys go over BATCH at a
        time with a pause after each batch (so that clients meet ASK while the slot is
        half-moved), then every master hears the slot's new owner. Returns how many keys
        moved."""
        source = self.master_of_slot(slot)
        if source == to_port:
            return 0
        source_id, target_id = self.node(source).id, self.node(to_port).id
        self.cmd(to_port, "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        self.cmd(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        moved, deadline = 0, time.monotonic() + timeout
        while True:
            keys = self.cmd(source, "CLUSTER", "GETKEYSINSLOT", slot, batch)
            if not keys:
                break
            if time.monotonic() > deadline:
                raise AssertionError("slot %d: keys still on %d after %g s"
                                     % (slot, source, timeout))
            self.cmd(source, "MIGRATE", "127.0.0.1", to_port, "", 0, 10000, "KEYS", *keys)
            moved += len(keys)
            time.sleep(pause_between_keys)
        for port in [to_port, source] + [p for p in self.master_ports() if p not in
                                         (to_port, source)]:
            self.cmd(port, "CLUSTER", "SETSLOT", slot, "NODE", target_id)
        poll(lambda: self.agreed_map() and self.master_of_slot(slot) == to_port and all(
            self.master_of_slot(slot, p) == to_port for p in self.live_ports()),
             timeout, interval=0.1, what="every node telling slot %d on %d" % (slot, to_port),
             retry_on=(OSError, RuntimeError))
        return moved


_shared = None


def shared_cluster():
    """The Redis Cluster of this test process, built at the first call and stopped when the
    process exits."""
    global _shared
    if _shared is None:
        tmp = tempfile.mkdtemp(prefix="moonpost-rcluster-")
        cluster = RedisCluster(tmp)
        try:
            cluster.start()
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        atexit.register(shutil.rmtree, tmp, ignore_errors=True)
        atexit.register(cluster.stop)  # (run first)
        _shared = cluster
    return _shared


class ClusterRedis:
    """Stands in for harness.Redis in the test classes written for one redis-server: .cmd
    routes a command by its first key's slot (argv[1]), as the broker's store does; FLUSHALL,
    FLUSHDB and KEYS go to every master (KEYS returns all their keys). The cluster is the
    process's shared one: stop() leaves it running."""

    EVERY_MASTER = ("FLUSHALL", "FLUSHDB", "KEYS")

    def __init__(self, tmp):
        self.cluster = None  # (the shared one, in its own directory)

    @property
    def port(self):
        return self.cluster.nodes[0].port

    def start(self):
        self.cluster = shared_cluster()

    def stop(self):
        pass

    def cmd(self, *args):
        name = str(args[0]).upper()
        if name in self.EVERY_MASTER:
            replies = [self.cluster.cmd(p, *args) for p in self.cluster.master_ports()]
            return sum(replies, []) if name == "KEYS" else replies[0]
        if len(args) < 2:
            return self.cluster.cmd(self.cluster.master_ports()[0], *args)
        return self.cluster.cmd(self.cluster.master_of(args[1]), *args)


class RedisClusterTest(unittest.TestCase):
    """The Redis Cluster (3 masters, a replica each, shared_cluster), emptied before each test;
    each test starts its own brokers on it (broker()), and at the end each one still running
    must stop with 0 and nothing from the sanitizers. The mixin OnRedisCluster puts the test
    classes written for one redis-server on a cluster instead."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=self.tmp)
        self.brokers = []
        self.clients = []
        self.cluster.flushall()

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="moonpost-rcluster-test-")
        try:
            cls.cluster = shared_cluster()
        except BaseException:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def tearDown(self):
        for c in self.clients:
            c.close()
        for b in self.brokers:
            if b.proc is not None:
                BrokersTest.assert_clean_exit(self, b, b.stop())

    def user_key(self, kind, user):
        return user_key(kind, user, cluster=True)

    def cluster_conf(self, seeds=None):
        return ["redis %s" % (seeds or self.cluster.seeds()), "redis_cluster on"]

    def broker(self, extra=None, scripts=None, seeds=None, node_id=None, start=True):
        """A broker in a directory of its own on the class's cluster (node NODE_ID when given)
        with EXTRA config lines."""
        d = tempfile.mkdtemp(prefix=(node_id or "b") + "-", dir=self.dir)
        conf = self.cluster_conf(seeds) + ["request_rate 0"]
        if node_id:
            conf.append("node_id %s" % node_id)
        b = Broker(d, self.cluster.nodes[0].port, scripts, conf + list(extra or []))
        b.node_id = node_id
        self.brokers.append(b)
        if start:
            b.start()
        return b


class OnRedisCluster:
    """Mixed in before a test class written for one redis-server (harness.RedisServerTest and
    its children: BrokerTest, BrokersTest, cluster_harness.ClusterTest): its brokers run on a
    Redis Cluster of 3 masters with a replica each, self.redis routes by key (ClusterRedis) and
    self.user_key names the keys as in cluster mode."""

    redis_class = ClusterRedis
    redis_cluster = True

    @classmethod
    def redis_conf(cls):
        return ["redis %s" % cls.redis.cluster.seeds(), "redis_cluster on"]
