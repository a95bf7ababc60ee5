"""Integration tests of `broadcast`, of 500 clients logging in at once and all hearing one
broadcast, and of `presence` pushes (PROTOCOL.md), over real sockets against a real broker and
a real redis-server."""
import resource
import time
import unittest

from harness import BrokerTest, wait_connections
from helpers import is_int, uname
from mpwire import frame

MAX_BODY = 16384


class ChatBase(BrokerTest):

    def online_user(self, prefix="b"):
        return self.login(uname(prefix))

    def pushes_until_marker(self, c, marker_from):
        """Sends C a private marker message from MARKER_FROM and returns every push C gets
        before it (the broker writes to one connection in order)."""
        body = uname("marker-")
        r = marker_from.call(dict(type="send", to=c.user, body=body))
        self.assertEqual(r["code"], 200, r)
        seen = c.read_until(lambda f: f.get("type") == "msg" and f.get("body") == body)
        return seen[:-1]

    def broadcast(self, c, body, code=200):
        rid = c.send(dict(type="broadcast", body=body))
        r = c.wait_res(rid)
        self.assertEqual(r["code"], code, r)
        if code == 200:
            self.assertEqual(r["id"], rid)
            self.assertTrue(is_int(r["mid"]) and r["mid"] > 0, r)
        else:
            self.assertIsInstance(r.get("error"), str)
            self.assertNotIn("mid", r)
        return r


class BroadcastTest(ChatBase):

    def test_broadcast_reaches_every_other_session_not_the_sender(self):
        a, b, c, d = (self.online_user() for _ in range(4))
        before = int(time.time() * 1000)
        r = self.broadcast(a, "hello all")
        for x in (b, c, d):
            f = x.wait_push("broadcast")
            self.assertEqual(f["mid"], r["mid"], f)
            self.assertEqual(f["from"], a.user)
            self.assertEqual(f["body"], "hello all")
            self.assertTrue(is_int(f["ts"]), f)
            self.assertLess(abs(f["ts"] - before), 60000)
            self.assertNotIn("id", f)
        self.assertEqual([f for f in self.pushes_until_marker(a, b)
                          if f.get("type") == "broadcast"], [])

    def test_broadcast_bin_body_round_trips(self):
        a, b = self.online_user(), self.online_user()
        body = bytes(range(256)) * 8
        r = self.broadcast(a, body)
        f = b.wait_push("broadcast", pred=lambda f: f["mid"] == r["mid"])
        self.assertIsInstance(f["body"], bytes)
        self.assertEqual(f["body"], body)
        r = self.broadcast(a, "\u00e9t\u00e9 \u2600")
        f = b.wait_push("broadcast", pred=lambda f: f["mid"] == r["mid"])
        self.assertEqual(f["body"], "\u00e9t\u00e9 \u2600")
        self.assertIsInstance(f["body"], str)

    def test_broadcast_400_missing_or_invalid_body(self):
        a, b = self.online_user(), self.online_user()
        self.broadcast(a, None, code=400)
        for bad in (5, ["x"], {"k": "v"}, True):
            self.broadcast(a, bad, code=400)
        r = a.call(dict(type="broadcast"))
        self.assertEqual(r["code"], 400, r)
        self.assertEqual([f for f in self.pushes_until_marker(b, a)
                          if f.get("type") == "broadcast"], [])

    def test_broadcast_413_and_exactly_max_body(self):
        a, b = self.online_user(), self.online_user()
        self.broadcast(a, "x" * (MAX_BODY + 1), code=413)
        self.broadcast(a, b"x" * (MAX_BODY + 1), code=413)
        self.broadcast(a, "\u00e9" * 8193, code=413)   # 16386 bytes
        exact = "y" * MAX_BODY
        r = self.broadcast(a, exact)
        seen = self.pushes_until_marker(b, a)
        got = [f for f in seen if f.get("type") == "broadcast"]
        self.assertEqual(len(got), 1, got)
        self.assertEqual(got[0]["mid"], r["mid"])
        self.assertEqual(got[0]["body"], exact)
        r = self.broadcast(a, "")
        self.assertEqual(b.wait_push("broadcast", pred=lambda f: f["mid"] == r["mid"])["body"], "")

    def test_broadcast_is_not_stored(self):
        a = self.online_user()
        late = uname("late")
        self.assertEqual(self.register(late)["code"], 200)
        keys_before = set(self.redis.cmd("KEYS", "*"))
        self.broadcast(a, "only for those online now")
        self.assertEqual(self.redis.cmd("EXISTS", self.user_key("mbox", late)), 0)
        # no new key holds it
        for key in set(self.redis.cmd("KEYS", "*")) - keys_before:
            if self.redis.cmd("TYPE", key) == "string":
                self.assertNotIn(b"only for those online now", self.redis.cmd("GET", key))
        cl = self.login(late, register=False)
        seen = self.pushes_until_marker(cl, a)
        self.assertEqual([f for f in seen if f.get("type") in ("broadcast", "msg")], [], seen)

    def test_broadcast_mids_increase(self):
        a, c, b = self.online_user(), self.online_user(), self.online_user()
        mids = []
        for i in range(10):
            mids.append(self.broadcast(a if i % 2 else c, "n%d" % i)["mid"])
        self.assertTrue(all(x < y for x, y in zip(mids, mids[1:])), mids)
        got = []
        while len(got) < 10:
            got.append(b.wait_push("broadcast"))
        self.assertEqual([f["mid"] for f in got], mids)
        self.assertEqual([f["body"] for f in got], ["n%d" % i for i in range(10)])

    def test_pipelined_broadcasts_keep_order(self):
        a, b = self.online_user(), self.online_user()
        a.send_raw(b"".join(frame(dict(type="broadcast", id=i + 1, body="p%d" % i))
                            for i in range(100)))
        mids = [a.wait_res(i + 1)["mid"] for i in range(100)]
        self.assertTrue(all(x < y for x, y in zip(mids, mids[1:])), mids)
        got = [b.wait_push("broadcast") for _ in range(100)]
        self.assertEqual([f["body"] for f in got], ["p%d" % i for i in range(100)])
        self.assertEqual([f["mid"] for f in got], mids)

    def test_no_presence_pushes_when_off(self):
        a = self.online_user()
        b = self.online_user()       # login
        b.close()                    # disconnect
        c = self.online_user()
        self.assertEqual(c.call(dict(type="logout"))["code"], 200)   # logout
        d = self.online_user()
        seen = self.pushes_until_marker(a, d)
        self.assertEqual([f for f in seen if f.get("type") == "presence"], [], seen)


class PresenceTest(ChatBase):
    extra = ["presence_notify on"]

    def presence_of(self, watcher, user, online, timeout=10.0):
        f = watcher.wait_push("presence", timeout=timeout,
                              pred=lambda f: f.get("user") == user)
        self.assertIs(f["online"], online, f)
        self.assertNotIn("id", f)
        return f

    def test_presence_online_at_login_offline_at_disconnect(self):
        a, c = self.online_user("pa"), self.online_user("pc")
        b = self.online_user("pb")
        for w in (a, c):
            self.presence_of(w, b.user, True)
        b.close()
        for w in (a, c):
            self.presence_of(w, b.user, False)

    def test_presence_offline_at_logout(self):
        a = self.online_user("pa")
        b = self.online_user("pb")
        self.presence_of(a, b.user, True)
        self.assertEqual(b.call(dict(type="logout"))["code"], 200)
        self.presence_of(a, b.user, False)

    def test_presence_online_at_resume(self):
        a = self.online_user("pa")
        b = self.online_user("pb")
        self.presence_of(a, b.user, True)
        b.close()
        self.presence_of(a, b.user, False)
        c = self.connect()
        r = c.call(dict(type="resume", user=b.user, token=b.token))
        self.assertEqual(r["code"], 200, r)
        self.presence_of(a, b.user, True)

    def test_presence_after_a_second_login_says_online(self):
        """A second login kicks the older session (bye 409); the user stays online, so the
        last presence others hear about it must say online=true."""
        a = self.online_user("pa")
        b1 = self.online_user("pb")
        self.presence_of(a, b1.user, True)
        b2 = self.login(b1.user, register=False)
        frames = b1.expect_closed()
        self.assertIn(409, [f.get("code") for f in frames if f.get("type") == "bye"])
        wait_connections(self.broker, 2)  # a and b2: the older session is let go of
        d = self.online_user("pd")
        seen = self.pushes_until_marker(a, d)
        about_b = [f for f in seen if f.get("type") == "presence" and f.get("user") == b1.user]
        self.assertTrue(about_b, seen)
        self.assertIs(about_b[-1]["online"], True, about_b)
        self.assertIn(b1.user, b2.call(dict(type="users"))["users"])


class ManyClientsTest(ChatBase):
    N = 500
    # 500 registrations and 500 logins cost an argon2 hash each on 2 workers: give the
    # anonymous connections more than the default 10 s, so a slow machine does not fail this
    extra = ["login_timeout 120"]

    def setUp(self):
        super().setUp()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 4 * self.N + 256
        if soft < want:
            new = want if hard == resource.RLIM_INFINITY else min(want, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < self.N + 64:
            self.skipTest("RLIMIT_NOFILE %d is too low for %d clients" % (soft, self.N))

    def test_500_concurrent_logins_all_receive_a_broadcast(self):
        n = self.N
        users = [uname("mc") for _ in range(n)]
        # registration costs an argon2 hash each: pipeline it from a few connections
        regs = [self.connect() for _ in range(5)]
        for k, c in enumerate(regs):
            c.send_raw(b"".join(frame(dict(type="register", id=i + 1, user=u,
                                           password="secret1"))
                                for i, u in enumerate(users[k::5])))
        for k, c in enumerate(regs):
            codes = [c.wait_res(i + 1, timeout=120)["code"] for i in range(len(users[k::5]))]
            self.assertEqual(set(codes), {200})
            c.close()
            self.clients.remove(c)
        # 500 connections, then 500 logins at once
        conns = [self.connect(timeout=60) for _ in range(n)]
        for c, u in zip(conns, users):
            c.user = u
            c.send_raw(frame(dict(type="login", id=1, user=u, password="secret1")))
        for c in conns:
            r = c.wait_res(1, timeout=60)
            self.assertEqual(r["code"], 200, (c.user, r))
            self.assertIn(c.user, r["users"])
        sender = conns[0]
        r = sender.call(dict(type="users", limit=10000))
        self.assertGreaterEqual(r["count"], n)
        self.assertTrue(set(users) <= set(r["users"]))
        b = self.broadcast(sender, "to all %d" % n)
        for c in conns[1:]:
            f = c.wait_push("broadcast", timeout=30)
            self.assertEqual(f["mid"], b["mid"], (c.user, f))
            self.assertEqual(f["from"], sender.user)
            self.assertEqual(f["body"], "to all %d" % n)
        self.assertEqual([f for f in self.pushes_until_marker(sender, conns[1])
                          if f.get("type") == "broadcast"], [])


if __name__ == "__main__":
    unittest.main()
