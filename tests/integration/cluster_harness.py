"""cluster_harness: several brokers (nodes n1, n2, ...) on one redis-server, each in a directory
of its own (config, log, admin socket) with its own ports, `node_id` and a short
`presence_ttl`, and the users that talk to them: synchronous (harness.Client) for the
step-by-step tests, asyncio (ChatUser, a libmoonpost-like client) for the ones that drive many
messages at once. docs/cluster.md is the contract the tests check."""
import asyncio
import inspect
import signal
import tempfile
import time

from aioclient import Viewer, connect, connect_unix
from harness import Broker, BrokersTest, Client, admin_call, fresh_addr
from helpers import poll, uname

PASSWORD = "cluster-secret"
PRESENCE_TTL = 3  # seconds: a killed node is dead for every reader this long after its last beat
# Added to a bound of the contract (1 s to unlist after a logout, presence_ttl after a kill)
# when a test polls for it: the test's own round trips on a loaded machine.
SLACK = 1.0


def now_ms():
    return int(time.time() * 1000)


def strictly_increasing(values):
    return all(a < b for a, b in zip(values, values[1:]))


class ClusterTest(BrokersTest):
    """Each test starts its nodes against the class's redis-server, emptied first (a node an
    earlier test killed stays registered until its deadline); at the end every node still
    running must stop with 0 (BrokersTest)."""

    node_extra = []  # config lines of every node of the class, before a test's own

    def setUp(self):
        super().setUp()
        self.redis.cmd("FLUSHALL")

    def node(self, node_id, extra=None, scripts=None, start=True):
        """A broker with node_id NODE_ID (a second one with the same id gets a directory of its
        own too) and presence_ttl PRESENCE_TTL, then EXTRA config lines."""
        d = tempfile.mkdtemp(prefix=node_id + "-", dir=self.dir)
        conf = ["node_id %s" % node_id, "presence_ttl %d" % PRESENCE_TTL,
                "request_rate 0"] + self.node_extra + list(extra or [])  # (tests send fast)
        conf = self.redis_conf() + conf
        b = Broker(d, self.redis.port, scripts or self.default_scripts, conf)
        b.node_id = node_id
        self.brokers.append(b)
        if start:
            b.start()
        return b

    def cluster(self, n=3, extra=None):
        """Nodes n1..nN, started one after another."""
        return [self.node("n%d" % i, extra) for i in range(1, n + 1)]

    def kill(self, b):
        """SIGKILLs node B (no goodbye: its entries stay in Redis until its deadline)."""
        b.stop(signal.SIGKILL)

    def start_failing(self, b, timeout=30):
        """Starts B, which must exit by itself; returns its exit code."""
        return b.run_until_exit(timeout)

    # ---- users (synchronous) ----

    def connect(self, b):
        c = Client(b.port, timeout=30)
        self.clients.append(c)
        return c

    def register(self, b, user=None):
        """Registers USER (default: a fresh name) on node B; returns the name."""
        user = user or uname("k")
        c = Client(b.port, timeout=30)
        try:
            r = c.call(dict(type="register", user=user, password=PASSWORD), 30)
        finally:
            c.close()
        self.assertEqual(r["code"], 200, r)
        return user

    def login(self, b, user=None, register=True, settle=True):
        """A session of USER (registered first unless REGISTER is false) on node B, answered
        200: the Client carries .user, .token, .node and .login (the reply). With SETTLE, returns
        once the mailbox replay that follows the login has read the mailbox once (a message
        sent during a replay comes from the mailbox, with offline: true; a replay that Redis
        cuts closes the session with bye 503): a `users` request of the session reads Redis
        after that read, on the same connection to Redis."""
        if register:
            user = self.register(b, user)
        c = self.connect(b)
        r = c.call(dict(type="login", user=user, password=PASSWORD), 30)
        self.assertEqual(r["code"], 200, "login of %s on %s: %r" % (user, b.node_id, r))
        c.user, c.token, c.node, c.login = user, r["token"], b, r
        if settle:
            self.assertEqual(c.call(dict(type="users", limit=1), 30)["code"], 200)
        return c

    def listed(self, c, limit=10000):
        """(set of users, count) that `users` answers on C's node."""
        r = c.call(dict(type="users", limit=limit), 30)
        self.assertEqual(r["code"], 200, r)
        return set(r["users"]), r["count"]

    def listed_now(self, c):
        """The set of users `users` on C's node lists, or None when it answers another code
        (503 while its Redis is away): for polling."""
        r = c.call(dict(type="users", limit=10000), 30)
        return set(r["users"]) if r["code"] == 200 else None

    def wait_listed(self, observers, users, timeout=30.0):
        """Until `users` on the node of each of OBSERVERS lists every one of USERS."""
        users = set(users)
        for o in observers:
            poll(lambda: users <= (self.listed_now(o) or set()), timeout,
                 what=lambda: "%s listed on %s (listed: %s)"
                 % (sorted(users), o.node.node_id, sorted(self.listed_now(o) or ())))

    def send(self, c, to, body, online=None):
        """C sends BODY to TO, answered 200 (with `online` ONLINE when given); returns the
        reply."""
        r = c.call(dict(type="send", to=to, body=body), 30)
        self.assertEqual(r["code"], 200, r)
        if online is not None:
            self.assertIs(r["online"], online, "send %s -> %s: %r" % (c.user, to, r))
        return r

    def nodes_of(self, b):
        """{node id: entry} of admin.nodes on node B."""
        r = admin_call(b, {"type": "admin.nodes"}, timeout=30)
        self.assertEqual(r["code"], 200, r)
        return {n["node"]: n for n in r["nodes"]}

    def node_ids(self, b):
        """The set of node ids admin.nodes on node B lists, or None when it answers another
        code (503 while its Redis is away): for polling."""
        r = admin_call(b, {"type": "admin.nodes"}, timeout=30)
        return {n["node"] for n in r["nodes"]} if r["code"] == 200 else None


class ChatUser(Viewer):
    """A user driven like libmoonpost: logs in (or resumes with its token), shows each mid once
    in increasing order (Viewer), acks the highest mid shown every 0.2 s. Every session's raw
    `msg` pushes are kept, in order, in .sessions (one list per session)."""

    def __init__(self, name, password=PASSWORD):
        super().__init__()
        self.name, self.password = name, password
        self.src = fresh_addr()  # login failures count per address: one address per user
        self.token = None
        self.conn = None
        self.sessions = []       # [[mids pushed in that session, in order]]
        self.byes = []           # codes of the byes received
        self.acker = None

    def on_push(self, f, mids):
        if f.get("type") == "msg":
            mids.append(f["mid"])
            self.on_msg(f)
        elif f.get("type") == "bye":
            self.byes.append(f.get("code"))

    async def log_in(self, port):
        """A session on the node at PORT (resume with the token when there is one, login when
        it is refused); returns the reply. The connection is .conn only on a 200."""
        mids = []
        conn = await connect(port, lambda f: self.on_push(f, mids), src=self.src, timeout=10)
        try:
            r = None
            if self.token is not None:
                r = await conn.call(dict(type="resume", user=self.name, token=self.token))
            if r is None or r["code"] == 401:
                r = await conn.call(dict(type="login", user=self.name, password=self.password))
        except BaseException:
            conn.close()
            raise
        if r["code"] != 200:
            conn.close()
            return r
        self.token = r["token"]
        self.sessions.append(mids)
        self.conn = conn
        self.acker = asyncio.ensure_future(self.ack_loop(conn))
        return r

    async def ack_loop(self, conn):
        while not conn.closed:
            await asyncio.sleep(0.2)
            if self.last_mid > conn.acked and not conn.closed:
                conn.post(dict(type="ack", upto=self.last_mid))
                conn.acked = self.last_mid

    async def ack_now(self):
        """Acks the highest mid shown and waits for the reply (sent after the deletion)."""
        r = await self.conn.call(dict(type="ack", upto=self.last_mid))
        if r["code"] == 200:
            self.conn.acked = self.last_mid
        return r

    def drop(self):
        """Closes the session without a word (like a lost connection)."""
        if self.acker is not None:
            self.acker.cancel()
            self.acker = None
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def bodies_shown(self):
        """[body] in the order shown."""
        return [self.shown[mid][1] for mid in self.shown_order]

    def disordered_sessions(self):
        """[(session index, mids pushed)] of the sessions whose pushes were not strictly
        increasing (the protocol promises they are, within one session)."""
        return [(i, mids) for i, mids in enumerate(self.sessions) if not strictly_increasing(mids)]


async def register_async(port, name, password=PASSWORD):
    """Registers NAME on the node at PORT; returns the reply."""
    conn = await connect(port, lambda f: None, src=fresh_addr(), timeout=30)
    try:
        return await conn.call(dict(type="register", user=name, password=password), 60)
    finally:
        conn.close()


async def admin_async(b, msg):
    """One admin request to node B on a connection of its own; returns the reply."""
    conn = await connect_unix(b.admin)
    try:
        return await conn.call(msg)
    finally:
        conn.close()


async def apoll(fn, timeout=30.0, interval=0.1, what="condition"):
    """helpers.poll inside a running event loop: calls FN (awaiting what it returns when that
    is awaitable) until the value is true and returns it; a lost connection or a timeout
    counts as "not yet"; past TIMEOUT, an AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = fn()
            if inspect.isawaitable(v):
                v = await v
        except (OSError, EOFError, ConnectionError, asyncio.TimeoutError) as e:
            v = e
        else:
            if v:
                return v
        if time.monotonic() > deadline:
            raise AssertionError("%s not reached within %g s (last: %r)"
                                 % (what() if callable(what) else what, timeout, v))
        await asyncio.sleep(interval)
