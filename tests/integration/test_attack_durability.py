"""Durability under Redis failures (issue 11, items 2, 3, 4 and the replay wait of 11):
mids that Redis cannot hand out twice even when it forgets its last writes, a mailbox replay
that Redis cuts, the broker's check of Redis's persistence settings, and a replay waiting on a
client that never reads.

Each test runs its own redis-server and broker. Redis keeps no append-only file here (as in
the harness); a "rollback" is a restart from an older RDB snapshot made with SAVE."""
import os
import shutil
import socket
import subprocess
import tempfile
import unittest

import harness
from harness import Broker, Client, Redis, healthz, metrics, wait_port


def gauge(broker, name):
    """NAME from BROKER's /metrics, or None."""
    return metrics(broker).get(name)
from helpers import poll, uname


class SnapshotRedis(Redis):
    """A redis-server whose data can be snapshotted (SAVE into a named RDB file) and that can
    be restarted from such a snapshot, on the same port. EXTRA are more server arguments."""

    def __init__(self, tmp, extra=()):
        super().__init__(tmp)
        self.extra = list(extra)

    def start(self, dbfilename="dump.rdb"):
        self.dbfilename = dbfilename
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.tmp,
             "--save", "", "--appendonly", "no", "--dbfilename", dbfilename,
             "--daemonize", "no", "--loglevel", "warning"] + self.extra,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, proc=self.proc)

    def snapshot(self, name):
        """Saves the data set now, as NAME in the data directory."""
        r = self.cmd("SAVE")
        if r != "OK":
            raise AssertionError("SAVE answered %r" % (r,))
        shutil.copy(os.path.join(self.tmp, self.dbfilename), os.path.join(self.tmp, name))

    def kill_and_restart_from(self, name):
        """SIGKILL (nothing is saved on the way out), then a restart that loads NAME."""
        self.stop()
        self.start(dbfilename=name)


class DurabilityBase(unittest.TestCase):
    redis_extra = ()
    broker_extra = ()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="moonpost-durability-")
        self.redis = SnapshotRedis(self.tmp, self.redis_extra)
        self.redis.start()
        self.broker = None
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close()
        try:
            if self.broker is not None:
                rc = self.broker.stop()
                self.assertEqual(rc, 0, "broker exit %s: %s" % (rc, self.broker.log_text()[-3000:]))
        finally:
            self.redis.stop()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def start_broker(self, extra=(), name="moonpost"):
        os.makedirs(os.path.join(self.tmp, name), exist_ok=True)
        b = Broker(os.path.join(self.tmp, name), self.redis.port,
                   # the tests pipeline thousands of sends: no request budget (test_attack_net)
                   extra=["request_rate 0"] + list(self.broker_extra) + list(extra))
        return b.start()

    def connect(self, broker=None):
        c = Client((broker or self.broker).port)
        self.clients.append(c)
        return c

    def register(self, user):
        c = self.connect()
        r = c.call(dict(type="register", user=user, password="secret1"))
        self.assertEqual(r["code"], 200, r)
        c.close()
        self.clients.remove(c)

    def login(self, user, timeout=30.0):
        """A logged-in client; retries while the broker answers 503 (Redis not back yet)."""
        def logged_in():
            c = self.connect()
            r = c.call(dict(type="login", user=user, password="secret1"))
            if r["code"] == 200:
                c.user = user
                return c
            c.close()
            self.clients.remove(c)
            self.assertEqual(r["code"], 503, r)
            return None
        return poll(logged_in, timeout, interval=0.1, what="login of %s" % user)

    def send_ok(self, c, to, body, timeout=30.0):
        """Sends until answered 200 (503s while Redis is away are retried); returns the mid."""
        return self.until_200(lambda: c.call(dict(type="send", to=to, body=body),
                                             timeout=timeout), timeout, "send")["mid"]

    def until_200(self, request, timeout, what):
        """The first reply of REQUEST() answered 200; 503 (Redis away) is retried."""
        def answered():
            r = request()
            if r["code"] != 200:
                self.assertEqual(r["code"], 503, r)
                return None
            return r
        return poll(answered, timeout, what="%s answered 200" % what)

    def mailbox_bodies(self, user):
        rows = self.redis.cmd("ZRANGE", "mp:mbox:" + user, 0, -1)
        bodies = []
        for member in rows:
            blob = member.split(b":", 2)[2]  # "mid:sender:blob"
            from mpwire import unpackb
            bodies.append(unpackb(blob)["body"])
        return bodies


class Reader:
    """A client that follows docs/protocol.md: it keeps the highest mid it has seen across its
    connections, drops any msg at or below it as a repeat, and acks the highest mid it saw."""

    def __init__(self, test):
        self.test = test
        self.highest = 0
        self.accepted = []  # (mid, body) in arrival order
        self.repeats = 0

    def take(self, f):
        if f.get("type") != "msg":
            return
        if f["mid"] <= self.highest:
            self.repeats += 1
            return
        self.highest = f["mid"]
        self.accepted.append((f["mid"], f["body"]))

    def read_until_body(self, c, body, timeout=60.0):
        """Takes every push up to and including the msg with BODY."""
        for f in c.read_until(lambda f: f.get("type") == "msg" and f.get("body") == body,
                              timeout=timeout):
            self.take(f)

    def ack(self, c):
        r = c.call(dict(type="ack", upto=self.highest))
        self.test.assertEqual(r["code"], 200, r)

    def bodies(self):
        return {b for _, b in self.accepted}


class TestMidsSurviveRollback(DurabilityBase):
    """Item 2: Redis restarted from an older snapshot must not make the broker hand out a mid
    again, nor make a protocol-following client drop or delete what it has not seen."""

    def test_rollback_reuses_no_mid_and_loses_nothing_acked_after_it(self):
        self.broker = self.start_broker()
        a_user, b_user = uname("ra"), uname("rb")
        self.register(a_user)
        self.register(b_user)
        a = self.login(a_user)
        b = self.login(b_user)
        reader = Reader(self)
        sent = {}  # mid -> body, for every 200
        reused = []  # (mid, first body, second body)

        def send(tag, n):
            bodies = ["%s%d" % (tag, i) for i in range(n)]
            for body in bodies:
                mid = self.send_ok(a, b_user, body)
                if mid in sent:
                    reused.append((mid, sent[mid], body))
                sent[mid] = body
            return bodies

        # phase 1: B reads 50 and acks only the first 30 before the snapshot
        p1 = send("one-", 50)
        reader.read_until_body(b, p1[-1])
        self.assertEqual(reader.bodies(), set(p1))
        r = b.call(dict(type="ack", upto=reader.accepted[29][0]))
        self.assertEqual(r["code"], 200, r)
        self.redis.snapshot("old.rdb")
        # phase 2: 50 more, seen and acked, then Redis forgets them (and the mid counter)
        p2 = send("two-", 50)
        reader.read_until_body(b, p2[-1])
        reader.ack(b)
        self.redis.kill_and_restart_from("old.rdb")
        # phase 3: sends answered 200 after the restart, B still connected
        p3 = send("three-", 50)
        mark3 = send("mark3-", 1)
        reader.read_until_body(b, mark3[0])
        reader.ack(b)
        # phase 4: B offline, more mail, then B logs in again and reads its mailbox
        b.close()
        p4 = send("four-", 20)
        in_redis = self.mailbox_bodies(b_user)
        b2 = self.login(b_user)
        final = send("final-", 1)
        reader.read_until_body(b2, final[0])
        reader.ack(b2)

        after_restart = set(p3 + mark3 + p4 + final)
        missing = sorted(after_restart - reader.bodies())
        self.assertEqual(missing, [], "answered 200 after the restart, never seen by B")
        missing = sorted(set(in_redis) - reader.bodies())
        self.assertEqual(missing, [], "left in Redis, never seen by B")
        self.assertEqual(reused[:3], [], "%d mids handed out twice" % len(reused))
        mids = [m for m, _ in reader.accepted]
        self.assertEqual(mids, sorted(mids))
        self.assertEqual(self.redis.cmd("ZCARD", "mp:mbox:" + b_user), 0)

    def test_broadcast_mids_do_not_go_back(self):
        self.broker = self.start_broker()
        a_user = uname("bc")
        self.register(a_user)
        a = self.login(a_user)
        first = a.call(dict(type="broadcast", body="x"))
        self.assertEqual(first["code"], 200, first)
        self.redis.snapshot("old.rdb")
        second = a.call(dict(type="broadcast", body="y"))
        self.redis.kill_and_restart_from("old.rdb")
        third = self.until_200(lambda: a.call(dict(type="broadcast", body="z")), 30, "broadcast")
        self.assertLess(first["mid"], second["mid"])
        self.assertLess(second["mid"], third["mid"])
        self.assertLess(third["mid"], 2 ** 53, "mids must stay exact as Redis scores")


class TestMidsSurviveRollbackCSend(TestMidsSurviveRollback):
    """The same with `send` served by the C plugin (plugins/send/send.c)."""
    broker_extra = ["plugin " + os.path.join(harness.BUILD, "plugins", "moonpost_send.so")]

    def setUp(self):
        super().setUp()
        self.assertTrue(os.path.exists(self.broker_extra[0].split()[1]), "build moonpost_send")

    def start_broker(self, extra=(), name="moonpost"):
        b = super().start_broker(extra, name)
        self.assertIn("plugin send", b.log_text())  # logged before the port opens
        return b


class TestMidRegressionIsNotSilent(DurabilityBase):
    """A live message whose mid is not above the session's last (the clocks went back further
    than Redis's loss) is not pushed, but logged and counted."""

    def test_mid_that_went_back_is_logged_and_counted(self):
        self.broker = self.start_broker()
        a_user, b_user = uname("ga"), uname("gb")
        self.register(a_user)
        self.register(b_user)
        a, b = self.login(a_user), self.login(b_user)
        # a mid from the future, handed out and acked long ago (nothing of it waits)
        self.redis.cmd("HSET", "mp:user:" + b_user, "mid", 2 ** 52, "acked", 2 ** 52)
        high = self.send_ok(a, b_user, "from the future")
        self.assertEqual(high, 2 ** 52 + 1)
        self.assertEqual(b.read_msgs(1)[0]["mid"], high)
        self.redis.cmd("HSET", "mp:user:" + b_user, "mid", 0, "acked", 0)  # ... and the counter lost
        low = self.send_ok(a, b_user, "back to now")
        self.assertLess(low, high)
        poll(lambda: gauge(self.broker, "moonpost_mid_regressions_total") == 1.0,
             what="the regression counted")
        self.assertRegex(self.broker.log_text(),
                         r"ERROR .*%s: live message mid %d is not above the last pushed mid %d"
                         % (b_user, low, high))
        self.assertEqual(self.redis.cmd("ZCARD", "mp:mbox:" + b_user), 2, "both stay stored")


class TestReplayCut(DurabilityBase):
    """Item 3: Redis dies while the mailbox is being replayed after login."""
    broker_extra = ["output_limit 1048576", "mailbox_per_sender 2000"]  # COUNT from one sender
    COUNT = 2000
    BODY = 16000

    def test_cut_replay_never_lets_newer_mail_overtake(self):
        self.broker = self.start_broker()
        a_user, b_user = uname("ca"), uname("cb")
        self.register(a_user)
        self.register(b_user)
        a = self.login(a_user)
        stored = []
        for i in range(self.COUNT):
            body = "%05d-" % i + "x" * self.BODY
            self.send_ok(a, b_user, body)
            stored.append(body)

        b = self.connect()
        b.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        r = b.call(dict(type="login", user=b_user, password="secret1"))
        self.assertEqual(r["code"], 200, r)
        reader = Reader(self)
        for f in b.read_msgs(100, timeout=60):
            self.assertTrue(f["offline"], f)
            reader.take(f)
        reader.ack(b)
        # B reads no more: the replay stalls on B's full output; Redis dies meanwhile
        self.redis.snapshot("cut.rdb")
        self.redis.stop()
        first_session, got_bye = self.read_session(b, reader, idle=20.0)
        self.redis.start(dbfilename="cut.rdb")
        poll(lambda: healthz(self.broker) == 200, timeout=30, what="redis back")
        live = "live-after-cut"
        self.send_ok(a, b_user, live)
        if not got_bye:  # the replay went on or stalled: read on in the same session
            more, got_bye = self.read_session(b, reader, idle=10.0, until_body=live)
            first_session += more
        # within the session: no live msg before every mailbox msg below it was sent
        offline_left = set(stored) - {f["body"] for f in first_session if f.get("type") == "msg"}
        for f in first_session:
            if f.get("type") == "msg" and not f["offline"]:
                self.assertEqual(len(offline_left), 0, "live mid %d came with %d mailbox msgs "
                                 "unsent" % (f["mid"], len(offline_left)))
        # this broker ends a cut replay (the other allowed outcome: it completes later)
        self.assertTrue(got_bye, "the replay was not cut, or went on without a bye")
        if got_bye:
            b.close()
            b = self.login(b_user)
            reader.read_until_body(b, live)
        reader.ack(b)
        self.assertEqual(len(set(stored) - reader.bodies()), 0, "mailbox messages lost")
        self.assertIn(live, reader.bodies())
        self.assertEqual(self.redis.cmd("ZCARD", "mp:mbox:" + b_user), 0)

    def read_session(self, c, reader, idle, until_body=None):
        """Reads C until bye/EOF, UNTIL_BODY, or IDLE seconds without a frame; returns the
        frames and whether the session ended with bye 503 (the replay could not finish)."""
        frames, bye = [], False
        while True:
            try:
                f = c.next(idle)
            except (socket.timeout, TimeoutError):
                return frames, bye
            except (EOFError, ConnectionResetError):
                return frames, bye
            frames.append(f)
            reader.take(f)
            if f.get("type") == "bye":
                self.assertEqual(f["code"], 503, f)
                bye = True
            if until_body is not None and f.get("body") == until_body:
                return frames, bye


class TestPersistenceCheck(DurabilityBase):
    """Item 4: the broker reads Redis's persistence settings and says what they mean."""

    def verdict(self, broker):
        def known():
            v = gauge(broker, "moonpost_redis_durable")
            return v is not None and v != -1.0 and (v,)
        return poll(known, timeout=20, what="a durability verdict")[0]

    def test_appendonly_no_warns_and_exports_zero(self):
        self.broker = self.start_broker()
        self.assertEqual(self.verdict(self.broker), 0.0)
        poll(lambda: "appendonly" in self.broker.log_text(), what="the warning")
        log = self.broker.log_text()
        self.assertRegex(log, r"WARN .*appendonly no")
        # not required: still served
        user = uname("pw")
        self.register(user)

    def test_require_durable_refuses_then_serves_once_durable(self):
        self.broker = self.start_broker(["redis_require_durable on"])
        self.assertEqual(self.verdict(self.broker), 0.0)
        c = self.connect()
        r = c.call(dict(type="register", user=uname("rq"), password="secret1"))
        self.assertEqual(r["code"], 503, r)
        self.assertEqual(healthz(self.broker), 503)
        # the operator turns the append-only file on: the broker serves again
        self.assertEqual(self.redis.cmd("CONFIG", "SET", "appendonly", "yes"), "OK")
        self.redis.cmd("CLIENT", "KILL", "TYPE", "normal")
        poll(lambda: gauge(self.broker, "moonpost_redis_durable") == 1.0,
             timeout=30, what="durable after CONFIG SET appendonly yes")
        poll(lambda: healthz(self.broker) == 200, timeout=30, what="healthz 200")
        r = c.call(dict(type="register", user=uname("rq"), password="secret1"))
        self.assertEqual(r["code"], 200, r)

    def test_config_refused_is_unknown(self):
        # CONFIG renamed away, as on some managed Redis services
        self.redis.stop()
        self.redis.extra = ["--rename-command", "CONFIG", ""]
        self.redis.start()
        self.broker = self.start_broker(["redis_require_durable on"])
        poll(lambda: "persistence" in self.broker.log_text(), what="the unknown warning")
        self.assertEqual(gauge(self.broker, "moonpost_redis_durable"), -1.0)
        self.assertEqual(healthz(self.broker), 503)


class TestPersistenceCheckDurable(DurabilityBase):
    redis_extra = ["--appendonly", "yes", "--appendfsync", "everysec"]

    def test_appendonly_yes_is_durable(self):
        self.broker = self.start_broker(["redis_require_durable on"])
        poll(lambda: gauge(self.broker, "moonpost_redis_durable") == 1.0,
             timeout=20, what="durable")
        user = uname("du")
        self.register(user)
        poll(lambda: "appendonly yes" in self.broker.log_text(), what="the verdict logged")
        self.assertNotRegex(self.broker.log_text(), r"WARN .*appendonly")


class TestReplayWaitsForTheReader(DurabilityBase):
    """Item 11: a replay waiting on a client that never reads ends after idle_timeout."""
    broker_extra = ["idle_timeout 2", "output_limit 1048576"]

    def test_client_that_never_reads_is_dropped(self):
        self.broker = self.start_broker()
        a_user, b_user = uname("wa"), uname("wb")
        self.register(a_user)
        self.register(b_user)
        a = self.login(a_user)
        for i in range(600):
            self.send_ok(a, b_user, "%04d-" % i + "y" * 16000)
        before = metrics(self.broker).get("moonpost_slow_consumers_dropped_total", 0)
        b = self.connect()
        b.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        b.send(dict(type="login", user=b_user, password="secret1"))
        # B sends a ping every 0.25 s (so the idle timeout never fires) and never reads

        def pinged_until_closed():
            try:
                b.send(dict(type="ping"))
            except OSError:  # broken pipe, reset: the broker closed the connection
                return True
            return self.peer_closed(b)
        poll(pinged_until_closed, timeout=30, interval=0.25,
             what="a client that never reads dropped")
        after = metrics(self.broker).get("moonpost_slow_consumers_dropped_total", 0)
        self.assertEqual(after, before + 1)
        self.assertGreater(self.redis.cmd("ZCARD", "mp:mbox:" + b_user), 0,
                           "the mail stays in the mailbox")

    def peer_closed(self, c):
        """True when the broker has closed C's connection (the socket is not read)."""
        try:
            info = c.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)
        except OSError:
            return True
        # tcpi_state: 1 = ESTABLISHED; anything else means the broker closed its side
        return info[0] != 1


if __name__ == "__main__":
    unittest.main()
