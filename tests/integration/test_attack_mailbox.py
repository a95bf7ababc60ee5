"""One sender cannot fill another user's mailbox (issue 11, item 10), and a Redis that is out
of memory is answered cleanly.

Each recipient's mailbox keeps, next to its messages, how many unacked ones each sender has in
it (`mp:mboxfrom:NAME`); past `mailbox_per_sender` the sender is answered 429 while everyone
else still reaches the recipient, and the recipient's ack gives the quota back. When Redis
reaches `maxmemory` (noeviction), a send is answered 503 "storage full" and logged, the broker
goes on, and an ack still runs and frees memory.

Every test runs twice: with scripts/send.lua and with the C send plugin (plugins/send)."""
import shutil
import unittest

from harness import BrokerTest
from helpers import poll, uname
from mpwire import frame, packb
from test_plugins import CleanExit, plugin

QUOTA_TEXT = "too many unread messages to this user"


class MailboxCase(CleanExit):
    """Helpers; SEND_PLUGIN says whether the C send plugin serves `send`."""
    send_plugin = False
    config = []

    @classmethod
    def setUpClass(cls):
        # floods pipeline more than request_burst sends: the request budget (test_attack_net)
        # would answer them 429 before the quota does
        cls.extra = ["request_rate 0"] + list(cls.config) + (
            ["plugin %s" % plugin("send")] if cls.send_plugin else [])
        try:
            super().setUpClass()
        except Exception:  # e.g. a broker that refuses the config: no Redis left behind
            cls.redis.stop()
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise

    def online(self, prefix="q"):
        return self.login(uname(prefix))

    def offline(self, prefix="q"):
        user = uname(prefix)
        self.assertEqual(self.register(user)["code"], 200)
        return user

    def flood(self, c, to, n, body="x", first_id=1):
        """C pipelines N sends to TO; returns the N replies in order."""
        c.send_raw(b"".join(frame(dict(type="send", id=first_id + i, to=to, body=body))
                            for i in range(n)))
        return [c.wait_res(first_id + i, timeout=60) for i in range(n)]

    def send(self, c, to, body="x"):
        return c.call(dict(type="send", to=to, body=body), timeout=30)

    def sender_counts(self, user):
        """{sender: unacked messages} of USER's mailbox, as Redis keeps it."""
        flat = self.redis.cmd("HGETALL", "mp:mboxfrom:" + user) or []
        return {flat[i].decode(): int(flat[i + 1]) for i in range(0, len(flat), 2)}

    def assert_quota_refused(self, r):
        self.assertEqual((r["code"], r.get("error")), (429, QUOTA_TEXT), r)
        self.assertNotIn("mid", r)


class DefaultQuota(MailboxCase):
    """The defaults: mailbox_max 10000, mailbox_per_sender 1000."""

    def test_one_sender_cannot_make_a_victim_unreachable(self):
        attacker, other = self.online("att"), self.online("oth")
        victim = self.offline("vic")
        replies = self.flood(attacker, victim, 1200)
        codes = [r["code"] for r in replies]
        self.assertEqual(codes, [200] * 1000 + [429] * 200)
        self.assert_quota_refused(replies[-1])
        self.assertEqual(self.mbox_count(victim), 1000)
        self.assertEqual(self.sender_counts(victim), {attacker.user: 1000})
        # everyone else still reaches the victim, and the attacker still reaches others
        r = self.send(other, victim, "still here")
        self.assertEqual(r["code"], 200, r)
        self.assertEqual(self.send(attacker, self.offline("vic2"))["code"], 200)
        # the victim reads and acks everything: the quota comes back
        cv = self.login(victim, register=False)
        msgs = cv.read_msgs(1001, timeout=60)
        self.assertEqual(msgs[-1]["body"], "still here")
        self.assertEqual(cv.call(dict(type="ack", upto=msgs[-1]["mid"]))["code"], 200)
        self.assertEqual(self.mbox_count(victim), 0)
        self.assertEqual(self.redis.cmd("EXISTS", "mp:mboxfrom:" + victim), 0)
        self.assertEqual(self.send(attacker, victim, "again")["code"], 200)


class SmallQuota(MailboxCase):
    config = ["mailbox_max 25", "mailbox_per_sender 10"]

    def test_partial_ack_gives_back_what_it_deleted(self):
        a = self.online("pa")
        b = self.online("pb")
        replies = self.flood(a, b.user, 12)
        self.assertEqual([r["code"] for r in replies], [200] * 10 + [429] * 2)
        # each member names its sender in plain text, for the ack's count (docs/data-model.md)
        members = self.redis.cmd("ZRANGE", "mp:mbox:" + b.user, 0, -1)
        self.assertEqual([m.split(b":", 2)[:2] for m in members],
                         [[b"%d" % r["mid"], a.user.encode()] for r in replies[:10]])
        b.read_msgs(10)
        self.assertEqual(b.call(dict(type="ack", upto=replies[3]["mid"]))["code"], 200)
        self.assertEqual(self.sender_counts(b.user), {a.user: 6})
        more = self.flood(a, b.user, 5, first_id=100)
        self.assertEqual([r["code"] for r in more], [200] * 4 + [429])
        self.assertEqual(self.sender_counts(b.user), {a.user: 10})

    def test_counts_per_sender_and_full_mailbox_is_still_507(self):
        senders = [self.online("fs") for _ in range(4)]
        victim = self.offline("fv")
        for s, n in zip(senders, (10, 10, 5)):
            self.assertEqual({r["code"] for r in self.flood(s, victim, n)}, {200})
        self.assertEqual(self.sender_counts(victim),
                         {senders[0].user: 10, senders[1].user: 10, senders[2].user: 5})
        # 25 messages: full for everyone, a sender under its quota included
        r = self.send(senders[3], victim)
        self.assertEqual((r["code"], r.get("error")), (507, "mailbox full"), r)
        cv = self.login(victim, register=False)
        msgs = cv.read_msgs(25)
        # ack the first 12: sender 0's ten and two of sender 1's
        self.assertEqual(cv.call(dict(type="ack", upto=msgs[11]["mid"]))["code"], 200)
        self.assertEqual(self.sender_counts(victim), {senders[1].user: 8, senders[2].user: 5})
        self.assertEqual(self.send(senders[3], victim)["code"], 200)

    def test_ack_of_messages_stored_without_counts(self):
        # messages stored by an older broker have no count, and a member that is not
        # MessagePack has no sender: acking them leaves no count behind, and the counts of
        # newer ones stay right
        a, old = self.online("la"), uname("old")
        b = self.offline("lb")
        members = []
        for mid in (1, 2):
            blob = packb({"from": old, "to": b, "body": "old%d" % mid, "ts": 1})
            members += [mid, b"%d:" % mid + blob]
        members += [3, b"3:\xc1"]
        self.redis.cmd("ZADD", "mp:mbox:" + b, *members)
        self.redis.cmd("HSET", "mp:user:" + b, "mid", 3)
        self.assertEqual({r["code"] for r in self.flood(a, b, 3)}, {200})
        cb = self.login(b, register=False)
        msgs = cb.read_msgs(5)  # the replay skips the member it cannot decode
        self.assertEqual([m["from"] for m in msgs], [old, old, a.user, a.user, a.user])
        self.assertEqual(cb.call(dict(type="ack", upto=msgs[3]["mid"]))["code"], 200)
        self.assertEqual(self.sender_counts(b), {a.user: 1})
        self.assertEqual(self.mbox_count(b), 1)
        self.assertEqual(cb.call(dict(type="ack", upto=msgs[4]["mid"]))["code"], 200)
        self.assertEqual(self.redis.cmd("EXISTS", "mp:mboxfrom:" + b), 0)

    def test_stale_counts_are_dropped_when_the_mailbox_empties(self):
        # counts that no longer match the mailbox (its members removed behind the broker's
        # back) cannot lock a sender out for good: the next ack that empties it drops them
        a = self.online("sa")
        b = self.online("sb")
        self.assertEqual({r["code"] for r in self.flood(a, b.user, 10)}, {200})
        self.redis.cmd("DEL", "mp:mbox:" + b.user)
        self.assert_quota_refused(self.send(a, b.user))
        self.assertEqual(b.call(dict(type="ack", upto=2 ** 53))["code"], 200)
        self.assertEqual(self.send(a, b.user)["code"], 200)


class PrevFromTheUser(MailboxCase):
    """moonpost_store's prev (the newest message still waiting: docs/cluster.md) comes from the
    user's hash, `mid` and the `acked` that moonpost_ack keeps, not from a lookup in the
    mailbox; a user stored before `acked` was kept is looked up in the mailbox."""

    def store(self, user, sender):
        blob = packb({"from": sender, "to": user, "body": "p", "ts": 1})
        r = self.redis.cmd("FCALL", "moonpost_store", 3, "mp:user:" + user, "mp:mbox:" + user,
                           "mp:mboxfrom:" + user, 100, blob, 0, 100, sender)
        return int(r[0]), int(r[1])

    def ack(self, c, upto):
        self.assertEqual(c.call(dict(type="ack", upto=upto))["code"], 200)

    def test_prev_follows_stores_and_acks(self):
        a, b = self.online("va"), self.online("vb")
        m1, p1 = self.store(b.user, a.user)
        m2, p2 = self.store(b.user, a.user)
        m3, p3 = self.store(b.user, a.user)
        self.assertEqual((p1, p2, p3), (0, m1, m2))
        self.ack(b, m2)  # m3 still waits
        self.assertEqual(int(self.redis.cmd("HGET", "mp:user:" + b.user, "acked")), m2)
        m4, p4 = self.store(b.user, a.user)
        self.assertEqual(p4, m3)
        self.ack(b, 2 ** 53 - 1)  # far past the last: acked is what was deleted, m4
        self.assertEqual(int(self.redis.cmd("HGET", "mp:user:" + b.user, "acked")), m4)
        self.assertEqual(self.store(b.user, a.user)[1], 0, "nothing waited")
        self.ack(b, 1)  # deletes nothing: acked stays
        self.assertEqual(int(self.redis.cmd("HGET", "mp:user:" + b.user, "acked")), m4)

    def test_an_ack_of_everything_drops_the_mailbox_whole(self):
        # the ack's short way (its upto at or past the newest message) leaves what the long
        # one would: no mailbox, no counts, `acked` the newest mid as an integer
        a, c, b = self.online("xa"), self.online("xc"), self.online("xb")
        m1, _ = self.store(b.user, a.user)
        m2, _ = self.store(b.user, c.user)
        m3, _ = self.store(b.user, a.user)
        self.ack(b, m2)  # below the newest: the long way, one left
        self.assertEqual(self.mbox_count(b.user), 1)
        self.assertEqual(self.sender_counts(b.user), {a.user: 1})
        self.ack(b, m3)
        self.assertEqual(self.redis.cmd("EXISTS", "mp:mbox:" + b.user,
                                        "mp:mboxfrom:" + b.user), 0)
        self.assertEqual(self.redis.cmd("HGET", "mp:user:" + b.user, "acked"), b"%d" % m3)
        self.assertEqual(self.store(b.user, a.user)[1], 0, "nothing waited")
        self.assertGreater(m3, m1)

    def test_user_without_acked_is_looked_up_in_the_mailbox(self):
        a, b = self.online("wa"), self.offline("wb")
        m1, _ = self.store(b, a.user)
        self.redis.cmd("HDEL", "mp:user:" + b, "acked")
        self.redis.cmd("HSET", "mp:user:" + b, "mid", m1 + 10)  # handed out, never stored
        m2, p2 = self.store(b, a.user)
        self.assertEqual(p2, m1)
        self.assertGreater(m2, m1 + 10)


class OutOfMemory(MailboxCase):
    """Redis at maxmemory (noeviction) refuses writes: sends are answered 503, the broker
    logs it and goes on, and an ack (which frees memory) still works."""

    def tearDown(self):
        self.redis.cmd("CONFIG", "SET", "maxmemory", 0)
        super().tearDown()

    def used_memory(self):
        info = self.redis.cmd("INFO", "memory").decode()
        return int(info.split("used_memory:", 1)[1].split()[0])

    def test_send_to_a_full_redis_503_then_ack_frees(self):
        a, b = self.online("oa"), self.online("ob")
        limit = self.used_memory() + 2 * 1024 * 1024
        self.redis.cmd("CONFIG", "SET", "maxmemory-policy", "noeviction")
        self.redis.cmd("CONFIG", "SET", "maxmemory", limit)
        body = "m" * 16384
        codes = []
        while not codes or codes[-1] == 200:
            self.assertLess(len(codes), 1000, "Redis never ran out of memory")
            r = self.send(a, b.user, body)
            codes.append(r["code"])
        self.assertEqual((r["code"], r.get("error")), (503, "storage full"), r)
        self.assertGreater(len(codes), 10)
        got = b.read_msgs(len(codes) - 1, timeout=60)
        # Redis entirely full now: every write is refused, and the broker goes on
        self.redis.cmd("CONFIG", "SET", "maxmemory", 1)
        self.assertEqual(self.send(a, b.user, body)["code"], 503)
        self.assertIsNone(self.broker.proc.poll())
        poll(lambda: "redis is out of memory" in self.broker.log_text(), what="the OOM logged")
        # but the recipient's ack still runs: it is what frees memory
        self.assertEqual(b.call(dict(type="ack", upto=got[-1]["mid"]))["code"], 200)
        self.assertEqual(self.mbox_count(b.user), 0)
        self.redis.cmd("CONFIG", "SET", "maxmemory", limit)
        r = self.send(a, b.user, body)
        self.assertEqual(r["code"], 200, r)


class LuaDefaultQuotaTest(DefaultQuota, BrokerTest):
    pass


class CDefaultQuotaTest(DefaultQuota, BrokerTest):
    send_plugin = True


class LuaSmallQuotaTest(SmallQuota, BrokerTest):
    pass


class CSmallQuotaTest(SmallQuota, BrokerTest):
    send_plugin = True


class PrevFromTheUserTest(PrevFromTheUser, BrokerTest):
    pass


class LuaOutOfMemoryTest(OutOfMemory, BrokerTest):
    pass


class COutOfMemoryTest(OutOfMemory, BrokerTest):
    send_plugin = True


if __name__ == "__main__":
    unittest.main()
