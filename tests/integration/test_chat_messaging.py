"""Integration tests of `users`, `send`, `ack`, the mailbox and the delivery guarantees of
PROTOCOL.md, over real sockets against a real broker and a real redis-server."""
import time
import unittest

from harness import BrokerTest, redis_calls
from helpers import is_int, uname
from mpwire import frame

MAX_BODY = 16384


class ChatBase(BrokerTest):
    # the stores of one loop pass share one Redis call (send.lua with store_batch on one Redis)
    stores_share_calls = False

    def new_user(self, prefix="m"):
        user = uname(prefix)
        r = self.register(user)
        self.assertEqual(r["code"], 200, r)
        return user

    def online_user(self, prefix="m"):
        return self.login(uname(prefix))

    def send_to(self, c, to, body, code=200):
        r = c.call(dict(type="send", to=to, body=body))
        self.assertEqual(r["code"], code, r)
        return r

    def mail_from_two(self, p, n, every, tag):
        """Online users P+"a" and P+"c" send N messages with bodies TAG+"0", TAG+"1", ... to
        the new user P+"b", who stays offline (C sends every EVERY-th one, the first
        included); returns b and [(mid, sender, body)] in sending order."""
        a, c = self.online_user(p + "a"), self.online_user(p + "c")
        b = self.new_user(p + "b")
        sent = []
        for i in range(n):
            sender = a if i % every else c
            body = "%s%d" % (tag, i)
            sent.append((self.send_to(sender, b, body)["mid"], sender.user, body))
        return b, sent

    def msgs_until_marker(self, c, marker_from):
        """Sends C a marker message from MARKER_FROM and returns the msg pushes C gets before
        it. Pushes are in mid order within a session, so anything still due comes first."""
        body = uname("marker-")
        self.send_to(marker_from, c.user, body)
        seen = c.read_until(lambda f: f.get("type") == "msg" and f.get("body") == body)
        return [f for f in seen[:-1] if f.get("type") == "msg"]

    def login_raw(self, user, password="secret1"):
        """Logs in and returns (client, reply, frames after the reply in arrival order); checks
        that nothing is pushed before the login reply."""
        c = self.connect()
        rid = c.send(dict(type="login", user=user, password=password))
        f = c.read_frame(10)
        self.assertEqual(f.get("type"), "res", "a push came before the login reply: %r" % f)
        self.assertEqual(f.get("id"), rid)
        self.assertEqual(f["code"], 200, f)
        c.token, c.user = f["token"], user
        return c, f

    def assert_replay_then_live(self, a, cb, stored, got, stored_bodies):
        """GOT, the 350 msgs CB read, are the 300 mailbox messages STORED (bodies
        STORED_BODIES) and then A's 50 live sends (ids 1000 to 1049, bodies live0 to live49),
        with no gap, repeat or reorder, and nothing comes after them; returns the 50 replies
        to the live sends."""
        live = [a.wait_res(1000 + i, timeout=60) for i in range(50)]
        self.assertEqual({r["code"] for r in live}, {200})
        mids = [m["mid"] for m in got]
        self.assertEqual(mids, [m["mid"] for m in stored] + [r["mid"] for r in live],
                         "gap, repeat or reorder")
        self.assertEqual(mids, sorted(set(mids)))
        self.assertEqual([m["body"] for m in got],
                         stored_bodies + ["live%d" % i for i in range(50)])
        self.assertEqual(mids[300:], [r["mid"] for r in live])
        self.assertEqual(self.msgs_until_marker(cb, a), [])
        return live

    def assert_msg(self, m, mid, frm, to, body, offline):
        self.assertEqual(m["type"], "msg")
        self.assertEqual(m["mid"], mid, m)
        self.assertEqual(m["from"], frm, m)
        self.assertEqual(m["to"], to, m)
        self.assertEqual(type(m["body"]), type(body), m)
        self.assertEqual(m["body"], body, m)
        self.assertIs(m["offline"], offline, m)
        self.assertTrue(is_int(m["ts"]), m)


class UsersTest(ChatBase):

    def test_users_limits_and_count(self):
        clients = [self.online_user("uu") for _ in range(3)]
        c = clients[0]
        full = c.call(dict(type="users", limit=10000))
        self.assertEqual(full["code"], 200, full)
        self.assertTrue(is_int(full["count"]))
        self.assertEqual(full["count"], len(full["users"]), full)
        for x in clients:
            self.assertIn(x.user, full["users"])
        self.assertEqual(len(set(full["users"])), len(full["users"]))
        one = c.call(dict(type="users", limit=1))
        self.assertEqual(one["code"], 200, one)
        self.assertEqual(len(one["users"]), 1, one)
        self.assertIn(one["users"][0], full["users"])
        self.assertEqual(one["count"], full["count"])
        two = c.call(dict(type="users", limit=2))
        self.assertEqual(len(two["users"]), 2, two)
        self.assertEqual(two["count"], full["count"])
        default = c.call(dict(type="users"))
        self.assertEqual(default["code"], 200)
        self.assertEqual(sorted(default["users"]), sorted(full["users"]))
        self.assertEqual(default["count"], full["count"])

    def test_users_bad_limit_400(self):
        c = self.online_user("ub")
        for bad in (0, 10001, -1, "5", "abc", 1.5, 10.0, True, None, [5], b"5", 2 ** 40):
            r = c.call(dict(type="users", limit=bad))
            if bad is None:
                # msgpack nil: an absent limit (the default) or 400 are both defensible
                self.assertIn(r["code"], (200, 400), r)
                continue
            self.assertEqual(r["code"], 400, (bad, r))
            self.assertIsInstance(r.get("error"), str)
            self.assertNotIn("users", r)


    def test_users_limit_false_400(self):
        # msgpack false is not an integer from 1 to 10000 (and not an absent field either)
        c = self.online_user("uf")
        r = c.call(dict(type="users", limit=False))
        self.assertEqual(r["code"], 400, r)
        self.assertNotIn("users", r)


class SendTest(ChatBase):
    extra = ["request_burst 1000"]  # 1,000 sends pipelined at once (the default burst is 400)

    def test_send_to_online_user(self):
        a, b = self.online_user("sa"), self.online_user("sb")
        before = int(time.time() * 1000)
        rid = a.send(dict(type="send", to=b.user, body="hello B"))
        r = a.wait_res(rid)
        self.assertEqual(r["code"], 200, r)
        self.assertEqual(r["id"], rid)
        self.assertTrue(is_int(r["mid"]) and r["mid"] > 0, r)
        self.assertIs(r["online"], True, r)
        m = b.wait_push("msg")
        self.assert_msg(m, r["mid"], a.user, b.user, "hello B", False)
        self.assertLess(abs(m["ts"] - before), 60000)
        # the sender does not get a copy
        self.assertEqual(self.msgs_until_marker(a, b), [])

    def test_send_to_offline_user_is_stored(self):
        a = self.online_user("oa")
        b = self.new_user("ob")
        r = self.send_to(a, b, "while you were out")
        self.assertIs(r["online"], False, r)
        self.assertTrue(is_int(r["mid"]) and r["mid"] > 0)
        # stored before the 200
        self.assertEqual(self.mbox_count(b), 1)
        cb, _ = self.login_raw(b)
        m = cb.read_msgs(1)[0]
        self.assert_msg(m, r["mid"], a.user, b, "while you were out", True)

    def test_send_online_is_stored_too_until_acked(self):
        a, b = self.online_user("sa"), self.online_user("sb")
        r = self.send_to(a, b.user, "x")
        self.assertIs(r["online"], True)
        self.assertEqual(self.mbox_count(b.user), 1)
        b.wait_push("msg")
        self.assertEqual(b.call(dict(type="ack", upto=r["mid"]))["code"], 200)
        self.assertEqual(self.mbox_count(b.user), 0)

    def test_send_unknown_user_404(self):
        a = self.online_user("na")
        for to in (uname("nobody"), a.user.upper(), "bad user!", "x" * 33):
            r = a.call(dict(type="send", to=to, body="hi"))
            self.assertEqual(r["code"], 404, (to, r))
            self.assertIsInstance(r.get("error"), str)
            self.assertNotIn("mid", r)
        self.assertEqual(self.redis.cmd("EXISTS", self.user_key("mbox", a.user.upper())), 0)

    def test_send_missing_or_invalid_fields_400(self):
        a, b = self.online_user("fa"), self.online_user("fb")
        for msg in (dict(type="send", body="no to"),
                    dict(type="send", to=b.user),
                    dict(type="send"),
                    dict(type="send", to=5, body="x"),
                    dict(type="send", to=b.user, body=5),
                    dict(type="send", to=b.user, body=None),
                    dict(type="send", to=b.user, body=["x"]),
                    dict(type="send", to=b.user, body={"k": "v"})):
            r = a.call(msg)
            self.assertEqual(r["code"], 400, (msg, r))
            self.assertIsInstance(r.get("error"), str)
        self.assertEqual(self.mbox_count(b.user), 0)
        self.assertEqual(self.msgs_until_marker(b, a), [])

    def test_body_size_limits(self):
        a, b = self.online_user("za"), self.online_user("zb")
        r = a.call(dict(type="send", to=b.user, body="x" * (MAX_BODY + 1)))
        self.assertEqual(r["code"], 413, r)
        r = a.call(dict(type="send", to=b.user, body=b"\x00" * (MAX_BODY + 1)))
        self.assertEqual(r["code"], 413, r)
        # 8193 two-byte characters = 16386 bytes: the limit is in bytes
        r = a.call(dict(type="send", to=b.user, body="\u00e9" * 8193))
        self.assertEqual(r["code"], 413, r)
        self.assertEqual(self.mbox_count(b.user), 0)
        exact = ("0123456789abcdef" * (MAX_BODY // 16))[:MAX_BODY]
        r1 = self.send_to(a, b.user, exact)
        r2 = self.send_to(a, b.user, "")
        r3 = self.send_to(a, b.user, b"")
        exact_bin = bytes(range(256)) * (MAX_BODY // 256)
        r4 = self.send_to(a, b.user, exact_bin)
        ms = b.read_msgs(4)
        self.assert_msg(ms[0], r1["mid"], a.user, b.user, exact, False)
        self.assert_msg(ms[1], r2["mid"], a.user, b.user, "", False)
        self.assert_msg(ms[2], r3["mid"], a.user, b.user, b"", False)
        self.assert_msg(ms[3], r4["mid"], a.user, b.user, exact_bin, False)

    def test_bin_and_str_bodies_round_trip(self):
        a, b = self.online_user("ba"), self.online_user("bb")
        bodies = [bytes(range(256)) * 4, "h\u00e9llo \u2713 \U0001F600", b"\xff\xfe\x00",
                  "plain", b"plain", "\x00nul\x00"]
        mids = [self.send_to(a, b.user, body)["mid"] for body in bodies]
        got = b.read_msgs(len(bodies))
        for m, mid, body in zip(got, mids, bodies):
            self.assert_msg(m, mid, a.user, b.user, body, False)
        # and the same through the mailbox (offline)
        c = self.new_user("bc")
        mids = [self.send_to(a, c, body)["mid"] for body in bodies]
        cc, _ = self.login_raw(c)
        got = cc.read_msgs(len(bodies))
        for m, mid, body in zip(got, mids, bodies):
            self.assert_msg(m, mid, a.user, c, body, True)

    def test_mids_strictly_increasing_per_recipient(self):
        b, sent = self.mail_from_two("i", 30, 3, "n")
        mids = [mid for mid, _, _ in sent]
        self.assertTrue(all(is_int(m) and m > 0 for m in mids))
        self.assertEqual(mids, sorted(set(mids)), mids)
        cb, _ = self.login_raw(b)
        got = cb.read_msgs(30)
        self.assertEqual([m["mid"] for m in got], mids)
        self.assertEqual([m["body"] for m in got], ["n%d" % i for i in range(30)])

    def test_ack(self):
        a = self.online_user("aa")
        b = self.new_user("ab")
        mids = [self.send_to(a, b, "m%d" % i)["mid"] for i in range(5)]
        self.assertEqual(self.mbox_count(b), 5)
        cb, _ = self.login_raw(b)
        self.assertEqual([m["mid"] for m in cb.read_msgs(5)], mids)
        r = cb.call(dict(type="ack", upto=mids[2]))
        self.assertEqual(r["code"], 200, r)
        # the reply comes after the deletion
        self.assertEqual(self.mbox_count(b), 2)
        left = [int(x.split(b":", 1)[0]) for x in
                self.redis.cmd("ZRANGE", self.user_key("mbox", b), 0, -1)]
        self.assertEqual(left, mids[3:])
        cb.close()
        cb2, _ = self.login_raw(b)
        got = cb2.read_msgs(2)
        self.assertEqual([m["mid"] for m in got], mids[3:])
        self.assertTrue(all(m["offline"] is True for m in got))
        self.assertEqual(self.msgs_until_marker(cb2, a), [])
        # ack 0 deletes nothing, a far upto deletes everything (including the marker)
        self.assertEqual(cb2.call(dict(type="ack", upto=0))["code"], 200)
        self.assertEqual(self.mbox_count(b), 3)
        self.assertEqual(cb2.call(dict(type="ack", upto=2 ** 53))["code"], 200)
        self.assertEqual(self.mbox_count(b), 0)

    def test_ack_bad_upto_400(self):
        a = self.online_user("xa")
        b = self.online_user("xb")
        mid = self.send_to(a, b.user, "keep me")["mid"]
        for msg in (dict(type="ack"), dict(type="ack", upto="5"), dict(type="ack", upto=-1),
                    dict(type="ack", upto=1.5), dict(type="ack", upto=None),
                    dict(type="ack", upto=[mid]), dict(type="ack", upto=True)):
            r = b.call(msg)
            self.assertEqual(r["code"], 400, (msg, r))
            self.assertIsInstance(r.get("error"), str)
        self.assertEqual(self.mbox_count(b.user), 1)

    def test_offline_mail_after_login_reply_in_mid_order(self):
        b, sent = self.mail_from_two("p", 12, 2, "o")
        cb, reply = self.login_raw(b)   # checks the reply is the first frame
        got = cb.read_msgs(12)
        for m, (mid, frm, body) in zip(got, sent):
            self.assert_msg(m, mid, frm, b, body, True)

    def test_unacked_mail_comes_again_acked_does_not(self):
        a = self.online_user("ua")
        b = self.new_user("ub")
        mids = [self.send_to(a, b, "u%d" % i)["mid"] for i in range(4)]
        cb, _ = self.login_raw(b)
        self.assertEqual([m["mid"] for m in cb.read_msgs(4)], mids)
        cb.close()     # nothing acked
        cb, _ = self.login_raw(b)
        again = cb.read_msgs(4)
        self.assertEqual([m["mid"] for m in again], mids)
        self.assertEqual([m["body"] for m in again], ["u%d" % i for i in range(4)])
        self.assertTrue(all(m["offline"] is True for m in again))
        self.assertEqual(cb.call(dict(type="ack", upto=mids[-1]))["code"], 200)
        cb.close()
        cb, _ = self.login_raw(b)
        self.assertEqual(self.msgs_until_marker(cb, a), [])

    def test_unacked_mail_comes_again_at_resume(self):
        a = self.online_user("va")
        b = self.online_user("vb")
        mids = [self.send_to(a, b.user, "v%d" % i)["mid"] for i in range(3)]
        self.assertEqual([m["mid"] for m in b.read_msgs(3)], mids)
        self.assertEqual(b.call(dict(type="ack", upto=mids[0]))["code"], 200)
        b.close()
        c = self.connect()
        c.user = b.user
        rid = c.send(dict(type="resume", user=b.user, token=b.token))
        f = c.read_frame(10)
        self.assertEqual((f.get("id"), f.get("code")), (rid, 200), f)
        got = c.read_msgs(2)
        self.assertEqual([m["mid"] for m in got], mids[1:])
        self.assertEqual([m["body"] for m in got], ["v1", "v2"])
        self.assertTrue(all(m["offline"] is True for m in got))

    def test_unacked_live_mail_comes_again(self):
        a, b = self.online_user("la"), self.online_user("lb")
        r = self.send_to(a, b.user, "live")
        self.assertIs(r["online"], True)
        self.assertEqual(b.wait_push("msg")["mid"], r["mid"])
        b.close()
        cb, _ = self.login_raw(b.user)
        m = cb.read_msgs(1)[0]
        self.assert_msg(m, r["mid"], a.user, b.user, "live", True)

    def test_1000_messages_in_order_while_online(self):
        a, b = self.online_user("ka"), self.online_user("kb")
        n = 1000
        data = b"".join(frame(dict(type="send", id=i + 1, to=b.user, body="k%d" % i))
                        for i in range(n))
        a.send_raw(data)
        got = b.read_msgs(n, timeout=60)
        replies = [a.wait_res(i + 1, timeout=60) for i in range(n)]
        self.assertEqual([r["code"] for r in replies], [200] * n)
        self.assertTrue(all(r["online"] is True for r in replies))
        bodies = [m["body"] for m in got]
        self.assertEqual(bodies, ["k%d" % i for i in range(n)])   # in order, none missing
        mids = [m["mid"] for m in got]
        self.assertEqual(len(set(mids)), n)                        # no duplicate
        self.assertTrue(all(x < y for x, y in zip(mids, mids[1:])))
        self.assertEqual(mids, [r["mid"] for r in replies])
        self.assertTrue(all(m["offline"] is False and m["from"] == a.user for m in got))
        # and nothing more comes (acked first: a's 1000 unacked ones are its mailbox_per_sender)
        self.assertEqual(b.call(dict(type="ack", upto=mids[-1]))["code"], 200)
        self.assertEqual(self.msgs_until_marker(b, a), [])

    def test_stores_and_acks_of_one_loop_pass_share_a_redis_call(self):
        """200 sends written at once are read in a few loop passes. With store_batch on one
        Redis (BatchedSendTest) the stores of a pass go to Redis as one moonpost_store_many
        call (lib/batch.lua): far fewer FCALLs than messages, each message stored once with its
        own mid, in the sender's order; then 50 acks written at once share calls too and empty
        the mailbox. Without it, and on a Redis Cluster (each user's keys on its own master),
        each store and ack is a call of its own."""
        a, c = self.online_user("ba"), self.online_user("bb")  # c online here: no registry
        b, n = c.user, 200
        before = redis_calls(self.redis, "fcall")
        a.send_raw(b"".join(frame(dict(type="send", id=i + 1, to=b, body="b%d" % i))
                            for i in range(n)))
        replies = [a.wait_res(i + 1, timeout=60) for i in range(n)]
        stores = redis_calls(self.redis, "fcall") - before
        self.assertEqual([r["code"] for r in replies], [200] * n)
        mids = [r["mid"] for r in replies]
        self.assertTrue(all(x < y for x, y in zip(mids, mids[1:])), "the sender's order")
        if self.redis_cluster or not self.stores_share_calls:
            self.assertGreaterEqual(stores, n, "%d FCALLs for %d stores" % (stores, n))
        else:
            self.assertLessEqual(stores, n // 4, "%d FCALLs for %d stores" % (stores, n))
        self.assertEqual(self.redis.cmd("ZCARD", self.user_key("mbox", b)), n)
        got = c.read_msgs(n, timeout=60)
        self.assertEqual([m["body"] for m in got], ["b%d" % i for i in range(n)])
        before = redis_calls(self.redis, "fcall")
        c.send_raw(b"".join(frame(dict(type="ack", id=i + 1, upto=mids[4 * i + 3]))
                            for i in range(n // 4)))
        acks = [c.wait_res(i + 1, timeout=60) for i in range(n // 4)]
        calls = redis_calls(self.redis, "fcall") - before
        self.assertEqual([r["code"] for r in acks], [200] * (n // 4))
        if self.redis_cluster or not self.stores_share_calls:
            self.assertGreaterEqual(calls, n // 4, "%d FCALLs for %d acks" % (calls, n // 4))
        else:
            self.assertLessEqual(calls, n // 16, "%d FCALLs for %d acks" % (calls, n // 4))
        self.assertEqual(self.redis.cmd("ZCARD", self.user_key("mbox", b)), 0)

    def test_live_messages_during_replay(self):
        """300 messages wait in B's mailbox; B logs in and while the replay runs 50 more are
        sent live: B sees strictly increasing mids, no gap, no duplicate."""
        a = self.online_user("ra")
        b = self.new_user("rb")
        body = "r" * 200
        a.send_raw(b"".join(frame(dict(type="send", id=i + 1, to=b, body="%s%d" % (body, i)))
                            for i in range(300)))
        stored = [a.wait_res(i + 1, timeout=60) for i in range(300)]
        self.assertEqual({r["code"] for r in stored}, {200})
        self.assertTrue(all(r["online"] is False for r in stored))
        cb = self.connect()
        cb.user = b
        cb.send(dict(type="login", id=1, user=b, password="secret1"))
        f = cb.read_frame(10)
        self.assertEqual((f.get("id"), f.get("code")), (1, 200), f)
        # the replay is under way: send 50 live ones now
        a.send_raw(b"".join(frame(dict(type="send", id=1000 + i, to=b, body="live%d" % i))
                            for i in range(50)))
        got = cb.read_msgs(350, timeout=60)
        self.assert_replay_then_live(a, cb, stored, got, ["%s%d" % (body, i) for i in range(300)])
        self.assertTrue(all(m["offline"] is True for m in got[:300]))

    def test_sender_order_kept_with_two_senders(self):
        a, c, b = self.online_user("ga"), self.online_user("gc"), self.online_user("gb")
        n = 200
        a.send_raw(b"".join(frame(dict(type="send", id=i + 1, to=b.user, body="A%d" % i))
                            for i in range(n)))
        c.send_raw(b"".join(frame(dict(type="send", id=i + 1, to=b.user, body="C%d" % i))
                            for i in range(n)))
        got = b.read_msgs(2 * n, timeout=60)
        for x in (a, c):
            self.assertEqual({x.wait_res(i + 1, timeout=60)["code"] for i in range(n)}, {200})
        mids = [m["mid"] for m in got]
        self.assertTrue(all(x < y for x, y in zip(mids, mids[1:])), "mids not increasing")
        self.assertEqual([m["body"] for m in got if m["from"] == a.user],
                         ["A%d" % i for i in range(n)])
        self.assertEqual([m["body"] for m in got if m["from"] == c.user],
                         ["C%d" % i for i in range(n)])


class BatchedSendTest(SendTest):
    """The send tests again with store_batch on: the stores and acks of a loop pass share
    one Redis call (moonpost_store_many, moonpost_ack_many)."""
    extra = SendTest.extra + ["store_batch on"]
    stores_share_calls = True


class BatchedStoreFailureTest(ChatBase):
    """A batched store call that Redis refuses whole (its function library gone) fails every
    send of the batch with the storage error, and stores none of them. In a class of its own:
    the library stays gone."""
    extra = ["store_batch on"]

    def test_a_refused_batch_fails_every_send_in_it(self):
        a, c = self.online_user("fa"), self.online_user("fb")
        self.redis.cmd("FUNCTION", "DELETE", "moonpost")
        n = 20
        a.send_raw(b"".join(frame(dict(type="send", id=i + 1, to=c.user, body="f%d" % i))
                            for i in range(n)))
        replies = [a.wait_res(i + 1, timeout=30) for i in range(n)]
        self.assertEqual({(r["code"], r.get("error")) for r in replies}, {(500, "storage error")})
        self.assertEqual(self.redis.cmd("EXISTS", self.user_key("mbox", c.user)), 0)
        self.assertEqual(a.call(dict(type="ping"))["code"], 200)


class ReplayRaceTest(ChatBase):
    """output_limit 65536 makes the replay fetch one message per Redis round trip, so live
    sends surely land while it runs."""
    extra = ["output_limit 65536"]

    def test_live_messages_interleaved_with_a_slow_replay(self):
        a = self.online_user("qa")
        b = self.new_user("qb")
        a.send_raw(b"".join(frame(dict(type="send", id=i + 1, to=b, body="q%d" % i))
                            for i in range(300)))
        stored = [a.wait_res(i + 1, timeout=60) for i in range(300)]
        self.assertEqual({r["code"] for r in stored}, {200})
        cb = self.connect()
        cb.user = b
        cb.send(dict(type="login", id=1, user=b, password="secret1"))
        # 10 live sends right behind the login request, before its reply
        next_id = [1000]

        def send_live(k):
            out = b""
            for _ in range(k):
                i = next_id[0] - 1000
                out += frame(dict(type="send", id=next_id[0], to=b, body="live%d" % i))
                next_id[0] += 1
            a.send_raw(out)

        send_live(10)
        f = cb.read_frame(10)
        self.assertEqual((f.get("type"), f.get("id"), f.get("code")), ("res", 1, 200), f)
        got = []
        for chunk in (20, 40, 60, 80):
            send_live(10)
            got += cb.read_msgs(max(0, chunk - len(got)), timeout=60)
        got += cb.read_msgs(350 - len(got), timeout=60)
        live = self.assert_replay_then_live(a, cb, stored, got, ["q%d" % i for i in range(300)])
        during = sum(1 for r, m in zip(live, got[300:]) if r["online"] and m["offline"])
        print("\n  [%d of 50 live sends were held back by the replay]" % during, end=" ")


class MailboxFullTest(ChatBase):
    extra = ["mailbox_max 5"]

    def test_mailbox_full_507(self):
        a = self.online_user("fa")
        b = self.new_user("fb")
        mids = [self.send_to(a, b, "f%d" % i)["mid"] for i in range(5)]
        r = a.call(dict(type="send", to=b, body="one too many"))
        self.assertEqual(r["code"], 507, r)
        self.assertIsInstance(r.get("error"), str)
        self.assertNotIn("mid", r)
        self.assertEqual(self.mbox_count(b), 5)
        # nothing was dropped: the five are there, the sixth is not
        cb, _ = self.login_raw(b)
        got = cb.read_msgs(5)
        self.assertEqual([m["mid"] for m in got], mids)
        # also for an online recipient, until it acks
        r = cb.call(dict(type="ack", upto=mids[1]))
        self.assertEqual(r["code"], 200)
        r1 = self.send_to(a, b, "room again")
        self.assertIs(r1["online"], True)
        self.send_to(a, b, "and again")
        r = a.call(dict(type="send", to=b, body="full while online"))
        self.assertEqual(r["code"], 507, r)
        bodies = [m["body"] for m in cb.read_msgs(2)]
        self.assertEqual(bodies, ["room again", "and again"])
        self.assertEqual(self.mbox_count(b), 5)
        self.assertEqual(cb.call(dict(type="ack", upto=2 ** 53))["code"], 200)
        self.assertEqual(self.mbox_count(b), 0)
        self.assertEqual(self.send_to(a, b, "after ack")["code"], 200)


class MailRestartTest(ChatBase):
    """Offline mail survives a broker restart."""

    def token_of(self, user):
        """The token of USER's latest login (the set's highest expiry)."""
        return self.redis.cmd("ZRANGE", self.user_key("tokens", user), -1, -1)[0].decode()

    def test_offline_mail_survives_broker_restart(self):
        a = self.online_user("ha")
        b = self.new_user("hb")
        bodies = ["before restart", b"\x00\x01bin\xff", ""]
        mids = [self.send_to(a, b, body)["mid"] for body in bodies]
        a.close()
        self.clients.remove(a)
        rc = self.broker.stop()
        self.assertEqual(rc, 0)
        self.broker.start()
        cb, _ = self.login_raw(b)
        got = cb.read_msgs(3)
        for m, mid, body in zip(got, mids, bodies):
            self.assert_msg(m, mid, a.user, b, body, True)
        # not acked: after a second restart it is there again, for a resume this time
        self.broker.stop()
        self.broker.start()
        cb = self.connect()
        rid = cb.send(dict(type="resume", user=b, token=self.token_of(b)))
        f = cb.read_frame(10)
        self.assertEqual((f.get("id"), f.get("code")), (rid, 200), f)
        got = cb.read_msgs(3)
        self.assertEqual([m["mid"] for m in got], mids)
        self.assertEqual([m["body"] for m in got], bodies)
        # the mid counter goes on after the restart
        a2 = self.login(a.user, register=False)
        r = self.send_to(a2, b, "after restart")
        self.assertGreater(r["mid"], mids[-1])
        self.assertEqual(cb.read_msgs(1)[0]["mid"], r["mid"])


if __name__ == "__main__":
    unittest.main()
