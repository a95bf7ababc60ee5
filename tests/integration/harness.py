"""harness: starts a real redis-server and a real moonpost on free ports in a temp dir, and
speaks the protocol to them over real sockets. Everything is stopped and removed afterwards."""
import itertools
import os
import random
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

from helpers import poll
from mpwire import frame, unpackb

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("MOONPOST_BUILD", os.path.join(ROOT, "build"))
BROKER = os.environ.get("MOONPOST_BIN", os.path.join(BUILD, "broker", "moonpost"))
SCRIPTS = os.path.join(ROOT, "scripts")
ALL_SCRIPTS = ["ping", "register", "login", "users", "send", "broadcast", "mailbox", "presence",
               "rooms"]
LUA = os.path.join(HERE, "lua")  # the test handlers
AUTH = os.path.join(LUA, "auth.lua")
CORE_LUA = os.path.join(LUA, "core_test.lua")
REDIS_LUA = os.path.join(LUA, "redis_test.lua")


_ports_given = set()


# Listening ports come from below the kernel's ephemeral range (32768-60999 by default): a
# port taken from that range can be handed to the outgoing socket of any client of a test
# running in parallel before the broker binds it ("Address already in use").
PORT_RANGE = (20000, 32000)
_port_rng = random.Random(os.getpid() ^ time.time_ns())


def free_port():
    """A port nothing listens on now, outside the ephemeral range, and that this process has
    not handed out before."""
    while True:
        port = _port_rng.randrange(*PORT_RANGE)
        if port in _ports_given:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _ports_given.add(port)
        return port


def running(proc):
    """True; raises when PROC (if given) has exited: nothing started by it will come up."""
    if proc is not None and proc.poll() is not None:
        raise RuntimeError("process exited with %s" % proc.returncode)
    return True


def wait_port(port, timeout=30.0, proc=None, host="127.0.0.1"):
    """Until HOST:PORT accepts a connection (PROC, if given, still running)."""
    def accepts():
        running(proc)
        socket.create_connection((host, port), timeout=2).close()
        return True
    poll(accepts, timeout, interval=0.02, what="a listener on %s port %d" % (host, port),
         retry_on=(OSError,))


def connect_addr(addr):
    """(host, port) to connect to for a config address "host:port" or "[v6]:port"; a wildcard
    host is reached on the loopback."""
    host, _, port = addr.rpartition(":")
    host = host.strip("[]")
    return {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host), int(port)


class Redis:
    def __init__(self, tmp):
        self.tmp, self.port, self.proc = tmp, free_port(), None

    def server_args(self):
        return ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.tmp,
                "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"]

    def start(self):
        self.proc = subprocess.Popen(self.server_args(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.port, proc=self.proc)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def cmd(self, *args):
        """One command over RESP, returns the parsed reply."""
        return redis_cmd(self.port, *args)


def redis_calls(redis, command):
    """How many times REDIS (anything with cmd(): Redis, or a cluster's first master) has run
    COMMAND (lower case, e.g. "fcall") so far, from INFO commandstats."""
    for line in redis.cmd("INFO", "commandstats").decode().splitlines():
        if line.startswith("cmdstat_%s:" % command):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def redis_cmd(port, *args, timeout=None):
    """One command to the redis-server on 127.0.0.1:PORT over RESP, returns the parsed reply
    (an error reply raises RuntimeError)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        s.sendall(out)
        f = s.makefile("rb")
        return _resp(f)


def _resp(f):
    line = f.readline().rstrip(b"\r\n")
    t, rest = line[:1], line[1:]
    if t == b"+":
        return rest.decode()
    if t == b"-":
        raise RuntimeError(rest.decode())
    if t == b":":
        return int(rest)
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data
    if t == b"*":
        n = int(rest)
        return None if n < 0 else [_resp(f) for _ in range(n)]
    raise RuntimeError("bad resp %r" % line)


class Broker:
    def __init__(self, tmp, redis_port, scripts=None, extra=None):
        self.tmp = tmp
        self.port = free_port()
        self.http_port = free_port()
        self.redis_port = redis_port
        self.admin = os.path.join(tmp, "admin.sock")
        self.log = os.path.join(tmp, "moonpost.log")
        self.proc = None
        self.conf = os.path.join(tmp, "broker.conf")
        lines = ["listen 127.0.0.1:%d" % self.port,
                 "redis 127.0.0.1:%d" % redis_port,
                 "admin_socket %s" % self.admin,
                 "http_listen 127.0.0.1:%d" % self.http_port,
                 "log_level debug",
                 "pwhash_memory 8192", "pwhash_ops 1", "workers 2",
                 "pwhash_queue_per_addr 1000000",
                 "shutdown_timeout 5"]
        paths = [name if name.startswith("/") else os.path.join(SCRIPTS, name + ".lua")
                 for name in (scripts or ALL_SCRIPTS)]
        lines += ["script %s" % path for path in paths]
        # tests register and log in many users at once from 127.0.0.1: no per-address limits
        # unless a test sets them (options of the scripts that declare them: set only with them)
        loaded = {os.path.basename(path) for path in paths}
        if "register.lua" in loaded:
            lines.append("register_max_per_addr 0")
        if "login.lua" in loaded:
            lines.append("login_addr_max_failures 1000000")
        lines += (extra or [])
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, wait=True):
        """Starts the broker; with WAIT, returns once every listener it has serves."""
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen([BROKER, "-c", self.conf], stdout=self.logf, stderr=self.logf)
        if wait:
            self.wait_listening()
        return self

    def run_until_exit(self, timeout=30):
        """Starts the broker, which must exit by itself; returns its exit code."""
        self.start(wait=False)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.logf.close()
            self.proc = None

    def conf_values(self, key):
        """The values of KEY's lines in the config file, in order."""
        values = []
        with open(self.conf) as f:
            for line in f:
                words = line.split(None, 1)
                if len(words) == 2 and words[0] == key:
                    values.append(words[1].strip())
        return values

    def wait_listening(self, timeout=30.0):
        """Until each listener of the config serves: every `listen` address accepts, the admin
        socket answers a request and the HTTP listener (when configured) answers one. The
        broker opens them one after another: the first one open says nothing of the others.
        With redis_cluster on, also until /healthz says the store serves (it reads the
        cluster's map first: a request before is answered 503)."""
        for addr in self.conf_values("listen"):
            host, port = connect_addr(addr)
            wait_port(port, timeout, self.proc, host)
        admin = self.conf_values("admin_socket")
        if admin:
            poll(lambda: running(self.proc) and admin_call(
                self, {"type": "admin.stats"}, timeout=5, path=admin[-1]),
                 timeout, interval=0.02, what="an answer on the admin socket %s" % admin[-1],
                 retry_on=(OSError, EOFError))
        http = self.conf_values("http_listen")
        if http:
            host, port = connect_addr(http[-1])
            tls = self.conf_values("http_tls")[-1:] == ["on"]
            poll(lambda: running(self.proc) and http_answers(host, port, tls),
                 timeout, interval=0.02, what="an answer on the HTTP listener %s" % http[-1],
                 retry_on=(OSError,))
            if self.conf_values("redis_cluster")[-1:] == ["on"]:
                poll(lambda: running(self.proc) and healthz(self) == 200, timeout,
                     interval=0.02, what="the store serving the cluster's slots",
                     retry_on=(OSError,))

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            raise AssertionError("broker did not stop within %ss" % timeout)
        finally:
            self.logf.close()
            self.proc = None
        return rc

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()


_addr = itertools.count(1)


def fresh_addr():
    """Another loopback source address (127.0.0.0/8 is all local on Linux), for Client(src=):
    login failures are counted per client address, so each test that provokes failures uses
    its own."""
    n = next(_addr)
    return "127.%d.%d.%d" % (30 + n // 62500, (n // 250) % 250 + 1, n % 250 + 1)


class Client:
    """One connection. send() returns the id used; wait_res(id) returns that reply while
    keeping pushes in self.pushes. SRC is the local address to connect from."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0, family=socket.AF_INET, path=None,
                 src=None):
        if path:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.connect(path)
        else:
            self.sock = socket.create_connection(
                (host, port), timeout=timeout, source_address=(src, 0) if src else None)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.next_id = 1
        self.pushes = []
        self.replies = {}

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def with_id(self, msg, with_id=True):
        """A copy of MSG with the client's next request id, unless it has one or WITH_ID is
        false."""
        msg = dict(msg)
        if with_id and "id" not in msg:
            msg["id"] = self.next_id
            self.next_id += 1
        return msg

    def send(self, msg, with_id=True):
        msg = self.with_id(msg, with_id)
        self.sock.sendall(frame(msg))
        return msg.get("id")

    def read_frame(self, timeout=None):
        if timeout is not None:
            self.sock.settimeout(timeout)
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack(">I", self.buf[:4])[0]
                if len(self.buf) >= 4 + n:
                    body, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    return unpackb(body)
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("connection closed")
            self.buf += data

    def next(self, timeout=10.0):
        """The next frame that is not a reply waited for elsewhere."""
        if self.pushes:
            return self.pushes.pop(0)
        return self.read_frame(timeout)

    def wait_res(self, rid, timeout=10.0):
        deadline = time.time() + timeout
        while rid not in self.replies:
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("no reply for id %s" % rid)
            f = self.read_frame(left)
            if f.get("type") == "res" and "id" in f:
                self.replies[f["id"]] = f
            else:
                self.pushes.append(f)
        return self.replies.pop(rid)

    def call(self, msg, timeout=10.0):
        return self.wait_res(self.send(msg), timeout)

    def wait_push(self, type_, timeout=10.0, pred=None):
        deadline = time.time() + timeout
        for i, f in enumerate(self.pushes):
            if f.get("type") == type_ and (pred is None or pred(f)):
                return self.pushes.pop(i)
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("no %s push" % type_)
            f = self.read_frame(left)
            if f.get("type") == "res" and "id" in f:
                self.replies[f["id"]] = f
            elif f.get("type") == type_ and (pred is None or pred(f)):
                return f
            else:
                self.pushes.append(f)

    def read_until(self, pred, timeout=10.0):
        """Frames pushed to this connection (replies with an id are put aside) up to and
        including the first one PRED accepts."""
        seen = []
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("nothing matching came; seen %r" % seen[-5:])
            f = self.next(left)
            if f.get("type") == "res" and "id" in f:
                self.replies[f["id"]] = f
                continue
            seen.append(f)
            if pred(f):
                return seen

    def read_msgs(self, n, timeout=20.0):
        """The next N msg pushes (replies with an id are put aside, other pushes dropped)."""
        out = []
        deadline = time.time() + timeout
        while len(out) < n:
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("got %d of %d msgs" % (len(out), n))
            f = self.next(left)
            if f.get("type") == "res" and "id" in f:
                self.replies[f["id"]] = f
            elif f.get("type") == "msg":
                out.append(f)
        return out

    def expect_closed(self, timeout=10.0):
        """Reads until EOF; returns the frames seen on the way."""
        seen = list(self.pushes)
        self.pushes = []
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("connection not closed")
            try:
                seen.append(self.read_frame(left))
            except (EOFError, ConnectionResetError):
                return seen


def admin_call(broker, msg, timeout=10.0, path=None):
    """One request on a connection of its own to BROKER's admin socket (or PATH); returns the
    reply."""
    c = Client(None, path=path or broker.admin, timeout=timeout)
    try:
        return c.call(msg, timeout)
    finally:
        c.close()


def http_raw(port, data, timeout=5.0, host="127.0.0.1", tls=False):
    """Sends DATA on a fresh HTTP connection (HTTPS when TLS, the certificate unchecked);
    returns what came back until EOF, a reset or TIMEOUT (a refused connection may be reset
    when the request was still unread)."""
    out = b""
    with socket.create_connection((host, port), timeout=timeout) as s:
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            s = ctx.wrap_socket(s)
        try:
            s.sendall(data)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return out
                out += chunk
        except (socket.timeout, ConnectionResetError, BrokenPipeError):
            return out


def http_answers(host, port, tls=False):
    """True when HOST:PORT answers an HTTP request (the status does not matter). The reply is
    read up to the broker's close: by then the broker no longer counts the connection."""
    return http_raw(port, b"GET /healthz HTTP/1.0\r\n\r\n", host=host,
                    tls=tls).startswith(b"HTTP/1.1 ")


def http_get(port, path, timeout=5):
    """(status, body) of a GET of PATH on 127.0.0.1:PORT, error statuses included."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def parse_metrics(text):
    """{sample name with its labels: value} from the Prometheus text format."""
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def metrics(broker):
    """BROKER's /metrics, parsed."""
    status, text = http_get(broker.http_port, "/metrics", timeout=10)
    if status != 200:
        raise RuntimeError("GET /metrics answered %d" % status)
    return parse_metrics(text)


def wait_connections(broker, n, timeout=30.0):
    """Until BROKER holds exactly N client and admin connections (it lets go of a closed one a
    little after the other side has seen the close)."""
    poll(lambda: metrics(broker)["moonpost_connections"] == n, timeout,
         what="%d connection(s) open on the broker" % n)


def healthz(broker):
    """The status code of BROKER's /healthz."""
    return http_get(broker.http_port, "/healthz", timeout=10)[0]


def user_key(kind, user, cluster=False):
    """The name of USER's key KIND ("user", "mbox", "tokens", ...): scripts/lib/chat.lua's names,
    with the user as hash tag when the brokers run with redis_cluster on."""
    return "mp:%s:%s" % (kind, "{%s}" % user if cluster else user)


class RedisServerTest(unittest.TestCase):
    """A fresh redis-server in a fresh temp dir per test class (not started when
    start_redis is false). REDIS_CLASS starts it (a class may put a Redis Cluster there);
    REDIS_CLUSTER says whether the brokers run with redis_cluster on (key names: user_key)."""
    tmp_prefix = "moonpost-test-"
    start_redis = True
    redis_class = Redis
    redis_cluster = False

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix=cls.tmp_prefix)
        cls.redis = cls.redis_class(cls.tmp)
        if cls.start_redis:
            cls.redis.start()

    def user_key(self, kind, user):
        return user_key(kind, user, self.redis_cluster)

    @classmethod
    def tearDownClass(cls):
        cls.redis.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def redis_conf(cls):
        """Config lines that point a broker at cls.redis, put before a test's own lines (for one
        redis-server, Broker's `redis` line does; redis_cluster_harness gives a cluster's
        seeds)."""
        return []


SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                   "runtime error:")


class BrokersTest(RedisServerTest):
    """Each test starts its own brokers (in its own temp dir) against the class's redis-server;
    at the end each one still running must stop with 0 and nothing from the sanitizers."""
    default_scripts = None

    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=self.tmp)
        self.brokers = []
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close()
        for b in self.brokers:
            if b.proc is not None:
                self.assert_clean_exit(b, b.stop())

    def broker(self, scripts=None, extra=None, start=True):
        b = Broker(self.dir, self.redis.port, scripts or self.default_scripts,
                   self.redis_conf() + list(extra or []))
        self.brokers.append(b)
        if start:
            b.start()
        return b

    def connect(self, b):
        c = Client(b.port)
        self.clients.append(c)
        return c

    def assert_clean_exit(self, b, rc):
        log = b.log_text()
        self.assertEqual(rc, 0, "exit code %s; log tail:\n%s" % (rc, log[-4000:]))
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, log, "sanitizer report in the log:\n%s" % log[-6000:])


class BrokerTest(RedisServerTest):
    """A fresh redis-server and broker per test class; state is flushed between tests."""
    scripts = None
    extra = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.broker = Broker(cls.tmp, cls.redis.port, cls.scripts,
                            cls.redis_conf() + list(cls.extra or [])).start()

    @classmethod
    def tearDownClass(cls):
        try:
            rc = cls.broker.stop()
            if rc not in (0, None):
                print(cls.broker.log_text()[-4000:])
        finally:
            super().tearDownClass()

    def setUp(self):
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close()

    def connect(self, **kw):
        c = Client(self.broker.port, **kw)
        self.clients.append(c)
        return c

    def connect_from(self, src=None):
        """A connection from the loopback address SRC (default: a fresh one)."""
        return self.connect(src=src or fresh_addr())

    def register(self, user, password="secret1", **kw):
        c = self.connect()
        r = c.call(dict(type="register", user=user, password=password, **kw))
        c.close()
        self.clients.remove(c)
        return r

    def login(self, user, password="secret1", register=True):
        if register:
            self.register(user, password)
        c = self.connect()
        r = c.call(dict(type="login", user=user, password=password))
        self.assertEqual(r["code"], 200, r)
        c.token = r["token"]
        c.user = user
        return c

    def mbox_count(self, user):
        """How many messages wait in USER's mailbox."""
        return self.redis.cmd("ZCARD", self.user_key("mbox", user))
