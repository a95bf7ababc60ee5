"""The promises of a cluster (PROTOCOL.md "Cluster", docs/cluster.md), checked on three brokers
(nodes n1, n2, n3) that share one redis-server, with the users spread over the nodes: private
chat, offline mail, the online list, broadcast, presence, one session per user, logout and a
stopped node, the order of mids when a recipient moves between nodes or hears from several
at once, admin.nodes, admin.users and admin.kick, a node id used twice, a node restarted at
once after a kill, and the node channels: each node's own is sharded (SSUBSCRIBE, SHARDNUMSUB
1), the broadcast channel classic (NUMSUB the node count). The chat tests run with send served
by scripts/send.lua and by the C plugin. Faults (a node killed under load, Redis restarted or
rolled back, channel connections cut, processes N) are in test_cluster_faults.py."""
import asyncio
import signal
import socket
import time

from cluster_harness import (PASSWORD, PRESENCE_TTL, SLACK, ChatUser, ClusterTest, apoll,
                             now_ms, strictly_increasing)
from harness import admin_call, redis_calls
from helpers import is_int, poll, uname
from test_plugins import plugin

MOVING_MESSAGES = 1000      # to a recipient that moves from n2 to n3 after MOVE_AFTER of them
MOVE_AFTER = 400
CONCURRENT_MESSAGES = 500   # from each of two senders (n1, n2) to one recipient (n3)
PIPELINED_MESSAGES = 300    # from each of three senders, PIPELINE_DEPTH requests in flight
PIPELINE_DEPTH = 10
DELIVERY_TIMEOUT = 120.0    # for every message answered 200 to be shown (a bound, not a goal)
LOGIN_RACES = 20


def gone(c):
    """True once the broker has closed C's connection; the frames read on the way are kept in
    c.pushes. Never waits long: for polling."""
    if getattr(c, "eof", False):
        return True
    try:
        c.pushes.append(c.read_frame(0.05))
    except socket.timeout:
        return False
    except (EOFError, ConnectionResetError):
        c.eof = True
        return True
    return False


class ClusterChatTest(ClusterTest):

    # ---- private chat, offline mail ----

    def test_private_chat_across_nodes(self):
        n1, n2, n3 = self.cluster()
        a, b, c = self.login(n1), self.login(n2), self.login(n3)
        self.wait_listed([a, b, c], [a.user, b.user, c.user])
        for sender, rcpt in ((a, b), (b, c), (c, a), (b, a), (a, c)):
            body = "%s to %s" % (sender.user, rcpt.user)
            r = self.send(sender, rcpt.user, body, online=True)
            m = rcpt.read_msgs(1)[0]
            self.assertEqual((m["mid"], m["from"], m["to"], m["body"], m["offline"]),
                             (r["mid"], sender.user, rcpt.user, body, False), m)

    def test_send_right_after_the_login_reply_is_online(self):
        """Once its login is answered a user is logged in, so a send to it from another node
        finds it online and pushes at once (PROTOCOL.md: `online` is true when the recipient
        is logged in on any node)."""
        n1, n2, _ = self.cluster()
        a = self.login(n1)
        for i in range(10):
            b = self.login(n2, settle=False)
            r = self.send(a, b.user, "right after %d" % i)
            m = b.read_msgs(1)[0]  # live, or from the replay that follows the login
            self.assertEqual((m["mid"], m["body"]), (r["mid"], "right after %d" % i), m)
            self.assertIs(r["online"], True, "round %d: the reply to a send to %s, answered "
                          "after its login on n2: %r" % (i, b.user, r))

    def test_offline_mail_is_read_on_another_node(self):
        n1, n2, n3 = self.cluster()
        a = self.login(n1)
        b = self.register(n2)
        bodies = ["mail %d" % i for i in range(5)]
        mids = [self.send(a, b, body, online=False)["mid"] for body in bodies]
        self.assertTrue(strictly_increasing(mids), mids)
        c = self.login(n3, b, register=False)
        msgs = c.read_msgs(5)
        self.assertEqual([(m["mid"], m["from"], m["to"], m["body"], m["offline"]) for m in msgs],
                         [(mid, a.user, b, body, True) for mid, body in zip(mids, bodies)])
        self.wait_listed([a], [b])
        r = self.send(a, b, "now live", online=True)
        m = c.read_msgs(1)[0]  # (offline: true if the replay's last read has not ended yet)
        self.assertEqual((m["mid"], m["body"]), (r["mid"], "now live"), m)
        self.assertGreater(r["mid"], mids[-1])

    # ---- the online list ----

    def test_users_lists_the_users_of_every_node(self):
        nodes = self.cluster()
        clients = [self.login(nodes[i % 3]) for i in range(6)]
        names = {c.user for c in clients}
        for c in clients[:3]:  # one on each node
            poll(lambda: self.listed(c) == (names, 6), 30,
                 what=lambda: "every user and count 6 on %s (got %r)"
                 % (c.node.node_id, self.listed(c)))
            r = c.call(dict(type="users", limit=2))
            self.assertEqual(r["code"], 200, r)
            self.assertEqual((len(r["users"]), r["count"]), (2, 6), r)
            self.assertLessEqual(set(r["users"]), names, r)
        late = self.login(nodes[2])
        self.assertEqual(set(late.login["users"]), names | {late.user}, late.login)

    # ---- broadcast, presence ----

    def test_broadcast_reaches_every_other_session_on_every_node_once(self):
        nodes = self.cluster()
        clients = [self.login(nodes[i % 3]) for i in range(9)]  # three on each node
        self.wait_listed(clients[:3], [c.user for c in clients])
        sender = clients[0]
        body = uname("everyone-")
        r = sender.call(dict(type="broadcast", body=body), 30)
        self.assertEqual(r["code"], 200, r)
        self.assertTrue(is_int(r["mid"]) and r["mid"] > 0, r)
        for x in clients[1:]:
            f = x.wait_push("broadcast", timeout=30, pred=lambda f: f.get("body") == body)
            self.assertEqual((f["mid"], f["from"]), (r["mid"], sender.user), f)
        # A private marker from a session on another node comes over the same Redis channel
        # connection after the broadcast: a second copy (or the sender's own) would be before it.
        for i, x in enumerate(clients):
            marker_from = next(c for c in clients if c.node is not x.node)
            marker = uname("marker-")
            self.send(marker_from, x.user, marker)
            seen = x.read_until(lambda f: f.get("type") == "msg" and f.get("body") == marker,
                                timeout=30)
            again = [f for f in seen if f.get("type") == "broadcast" and f.get("body") == body]
            self.assertEqual(again, [], "%s on %s (%s)" % (
                x.user, x.node.node_id, "the sender" if i == 0 else "heard it twice"))

    def test_presence_is_announced_on_every_node(self):
        n1, n2, n3 = self.cluster(extra=["presence_notify on"])
        a, c = self.login(n1), self.login(n3)
        b = self.login(n2)
        for x in (a, c):
            f = x.wait_push("presence", timeout=30, pred=lambda f: f.get("user") == b.user)
            self.assertIs(f["online"], True, f)
        self.assertEqual(b.call(dict(type="logout"))["code"], 200)
        for x in (a, c):
            f = x.wait_push("presence", timeout=30, pred=lambda f: f.get("user") == b.user)
            self.assertIs(f["online"], False, f)

    # ---- one user, one session ----

    def test_login_on_another_node_closes_the_older_session_409(self):
        n1, n2, n3 = self.cluster()
        user = self.register(n1)
        old = self.login(n1, user, register=False)
        new = self.login(n2, user, register=False)
        seen = old.expect_closed(timeout=30)
        self.assertEqual([f.get("code") for f in seen if f.get("type") == "bye"], [409], seen)
        s = self.login(n3)
        self.wait_listed([s], [user])
        r = self.send(s, user, "to the newer session", online=True)
        m = new.read_msgs(1)[0]
        self.assertEqual((m["mid"], m["body"]), (r["mid"], "to the newer session"), m)
        self.assertEqual(new.call(dict(type="ping"))["code"], 200)

    def test_simultaneous_logins_on_two_nodes_leave_one_session(self):
        nodes = self.cluster()
        user = self.register(nodes[0])
        senders = [self.login(b) for b in nodes]
        for i in range(LOGIN_RACES):
            # two nodes, and every fourth round twice the same one
            x, y = nodes[i % 3], nodes[(i + (0 if i % 4 == 3 else 1)) % 3]
            third = senders[(i + 2) % 3]
            pair = [self.connect(x), self.connect(y)]
            ids = [c.send(dict(type="login", user=user, password=PASSWORD)) for c in pair]
            replies = []
            for c, rid in zip(pair, ids):
                try:
                    replies.append(c.wait_res(rid, 30)["code"])
                except (EOFError, ConnectionResetError):
                    c.eof = True  # closed before its reply: by the other login (bye below)
                    replies.append(None)
            self.assertIn(replies, ([200, 200], [200, None], [None, 200]), "round %d" % i)
            closed = poll(lambda: [c for c in pair if gone(c)], 30,
                          what="round %d (%s and %s): one of the two sessions closed"
                          % (i, x.node_id, y.node_id))
            self.assertEqual(len(closed), 1, "round %d: both sessions were closed" % i)
            loser, = closed
            survivor, = [c for c in pair if c is not loser]
            self.assertEqual([f.get("code") for f in loser.pushes if f.get("type") == "bye"],
                             [409], "round %d: %r" % (i, loser.pushes))
            # the survivor is the user's session everywhere: a send from the third node
            # finds it online and reaches it
            body = "round %d" % i
            r = self.send(third, user, body)
            survivor.read_until(lambda f: f.get("type") == "msg" and f.get("body") == body,
                                timeout=30)
            self.assertIs(r["online"], True, "round %d: %r" % (i, r))
            self.assertEqual(survivor.call(dict(type="ack", upto=r["mid"]))["code"], 200)
            self.assertEqual(survivor.call(dict(type="ping"))["code"], 200,
                             "round %d: the survivor lives" % i)
            self.assertEqual(survivor.call(dict(type="logout"))["code"], 200)
            survivor.expect_closed(timeout=30)

    # ---- logout ----

    def test_logout_and_disconnect_unlist_the_user_within_a_second(self):
        n1, n2, n3 = self.cluster()
        o1, o3 = self.login(n1), self.login(n3)
        u, v = self.login(n2), self.login(n2)
        self.wait_listed([o1, o3], [u.user, v.user])
        for leaver, leave in ((u, "logout"), (v, "disconnect")):
            if leave == "logout":
                self.assertEqual(leaver.call(dict(type="logout"))["code"], 200)
            else:
                leaver.close()
            deadline = time.monotonic() + 1 + SLACK
            for o in (o1, o3):
                poll(lambda: leaver.user not in self.listed(o)[0],
                     max(0.0, deadline - time.monotonic()),
                     what="%s unlisted on %s after its %s on n2" % (leaver.user,
                                                                    o.node.node_id, leave))

    def test_users_of_a_stopped_node_are_unlisted_within_a_second(self):
        """A node that stops closes its sessions (bye 503): they are disconnects, and the users
        stop being listed within a second, like any other."""
        n1, n2, n3 = self.cluster()
        o1, o2 = self.login(n1), self.login(n2)
        leaving = [self.login(n3), self.login(n3)]
        names = {c.user for c in leaving}
        self.wait_listed([o1, o2], names)
        n3.proc.send_signal(signal.SIGTERM)
        for c in leaving:
            seen = c.expect_closed(timeout=30)
            self.assertEqual([f.get("code") for f in seen if f.get("type") == "bye"], [503], seen)
        deadline = time.monotonic() + 1 + SLACK
        for o in (o1, o2):
            poll(lambda: not names & self.listed(o)[0], max(0.0, deadline - time.monotonic()),
                 what=lambda: "the users of the stopped n3 unlisted on %s (listed: %s)"
                 % (o.node.node_id, sorted(self.listed(o)[0])))
        self.assertEqual(n3.stop(), 0)
        poll(lambda: set(self.nodes_of(n1)) == {"n1", "n2"}, PRESENCE_TTL + SLACK,
             what=lambda: "n3 gone from admin.nodes (got %r)" % self.nodes_of(n1))

    # ---- the order of mids ----

    def test_recipient_moving_between_nodes_sees_every_message_once_in_order(self):
        n1, n2, n3 = self.cluster()
        sender, rcpt = ChatUser(self.register(n1)), ChatUser(self.register(n2))
        answered = asyncio.run(self.moving_recipient(sender, rcpt, n1, n2, n3))
        self.assertEqual(len(rcpt.sessions), 2, "one session on n2, then one on n3")
        self.assert_shown_once_in_order(rcpt, {sender.name: answered})
        self.assertEqual(self.redis.cmd("ZCARD", self.user_key("mbox", rcpt.name)), 0,
                         "the recipient's mailbox after its ack of the highest mid")

    async def moving_recipient(self, sender, rcpt, n1, n2, n3):
        """SENDER on N1 sends MOVING_MESSAGES to RCPT, one after another; after MOVE_AFTER of
        them RCPT drops its session on N2 and logs in on N3. Returns {body: mid} answered."""
        self.assertEqual((await rcpt.log_in(n2.port))["code"], 200)
        self.assertEqual((await sender.log_in(n1.port))["code"], 200)
        answered = {}

        async def move():
            rcpt.drop()
            r = await rcpt.log_in(n3.port)
            self.assertEqual(r["code"], 200, r)

        try:
            moving = None
            for i in range(MOVING_MESSAGES):
                body = "m%04d" % i
                r = await sender.conn.call(dict(type="send", to=rcpt.name, body=body))
                self.assertEqual(r["code"], 200, r)
                answered[body] = r["mid"]
                if i == MOVE_AFTER:
                    moving = asyncio.ensure_future(move())
            await moving
            await apoll(lambda: len(rcpt.shown_content) >= MOVING_MESSAGES, DELIVERY_TIMEOUT,
                        what=lambda: "all %d shown (%d are)" % (MOVING_MESSAGES,
                                                                len(rcpt.shown_content)))
            r = await rcpt.ack_now()
            self.assertEqual(r["code"], 200, r)
        finally:
            sender.drop()
            rcpt.drop()
        return answered

    def test_concurrent_senders_on_two_nodes_one_recipient_in_order(self):
        n1, n2, n3 = self.cluster()
        s1, s2 = ChatUser(self.register(n1)), ChatUser(self.register(n2))
        rcpt = ChatUser(self.register(n3))
        answered = asyncio.run(self.concurrent_senders([(s1, n1), (s2, n2)], rcpt, n3))
        self.assertEqual(len(rcpt.sessions), 1)
        self.assert_shown_once_in_order(rcpt, answered)

    async def concurrent_senders(self, senders, rcpt, rcpt_node):
        """Each of SENDERS [(user, node)] sends CONCURRENT_MESSAGES to RCPT (on RCPT_NODE) one
        after another, all at the same time. Returns {sender: {body: mid}}."""
        self.assertEqual((await rcpt.log_in(rcpt_node.port))["code"], 200)
        for s, node in senders:
            self.assertEqual((await s.log_in(node.port))["code"], 200)

        async def listed(s):
            r = await s.conn.call(dict(type="users", limit=10000))
            return rcpt.name in r.get("users", ())

        answered = {}

        async def send_all(s):
            mine = answered[s.name] = {}
            for i in range(CONCURRENT_MESSAGES):
                body = "%s#%04d" % (s.name, i)
                r = await s.conn.call(dict(type="send", to=rcpt.name, body=body))
                self.assertEqual(r["code"], 200, r)
                self.assertIs(r["online"], True, r)
                mine[body] = r["mid"]

        try:
            for s, _ in senders:
                await apoll(lambda: listed(s), 30, what="the recipient listed")
            await asyncio.gather(*(send_all(s) for s, _ in senders))
            total = CONCURRENT_MESSAGES * len(senders)
            await apoll(lambda: len(rcpt.shown_content) >= total, DELIVERY_TIMEOUT,
                        what=lambda: "all %d shown (%d are)" % (total, len(rcpt.shown_content)))
        finally:
            for s, _ in senders:
                s.drop()
            rcpt.drop()
        return answered

    def test_pipelined_senders_on_every_node_to_a_recipient_moving_twice(self):
        nodes = self.cluster()
        senders = [(ChatUser(self.register(b)), b) for b in nodes]
        rcpt = ChatUser(self.register(nodes[2]))
        answered = asyncio.run(self.pipelined_senders(senders, rcpt, nodes))
        self.assertEqual(len(rcpt.sessions), 3, "on n3, then n1, then n2")
        self.assert_shown_once_in_order(rcpt, answered)

    async def pipelined_senders(self, senders, rcpt, nodes):
        """Each of SENDERS [(user, node)] sends PIPELINED_MESSAGES to RCPT with up to
        PIPELINE_DEPTH requests in flight, all at the same time; RCPT starts on n3 and moves to
        n1, then to n2, as the thirds are answered. Returns {sender: {body: mid}}."""
        self.assertEqual((await rcpt.log_in(nodes[2].port))["code"], 200)
        for s, node in senders:
            self.assertEqual((await s.log_in(node.port))["code"], 200)
        total = PIPELINED_MESSAGES * len(senders)
        answered = {s.name: {} for s, _ in senders}
        moves = []

        async def send_one(s, i, window):
            async with window:
                body = "%s#%04d" % (s.name, i)
                r = await s.conn.call(dict(type="send", to=rcpt.name, body=body))
            self.assertEqual(r["code"], 200, r)
            answered[s.name][body] = r["mid"]
            done = sum(len(a) for a in answered.values())
            for third, node in ((1, nodes[0]), (2, nodes[1])):
                if done >= third * total // 3 and len(moves) < third:
                    moves.append(asyncio.ensure_future(self.move(rcpt, node, moves[-1:])))

        async def send_all(s):
            window = asyncio.Semaphore(PIPELINE_DEPTH)
            await asyncio.gather(*(send_one(s, i, window) for i in range(PIPELINED_MESSAGES)))

        try:
            await asyncio.gather(*(send_all(s) for s, _ in senders))
            await asyncio.gather(*moves)
            await apoll(lambda: len(rcpt.shown_content) >= total, DELIVERY_TIMEOUT,
                        what=lambda: "all %d shown (%d are)" % (total, len(rcpt.shown_content)))
        finally:
            for s, _ in senders:
                s.drop()
            rcpt.drop()
        return answered

    async def move(self, user, node, before):
        """USER drops its session and logs in on NODE, once the moves BEFORE are done."""
        await asyncio.gather(*before)
        user.drop()
        r = await user.log_in(node.port)
        self.assertEqual(r["code"], 200, r)

    def assert_shown_once_in_order(self, rcpt, answered):
        """RCPT's sessions each got strictly increasing mids; RCPT showed every message of
        ANSWERED {sender: {body: mid}} once, under the mid its send was answered with, each
        sender's in the order sent (bodies sort in that order), and nothing else."""
        self.assertEqual(rcpt.disordered_sessions(), [], "pushes out of order in a session")
        self.assertEqual(rcpt.reused, [], "a mid pushed again with another message")
        self.assertEqual(rcpt.dropped_unseen, 0,
                         "pushes below the highest mid shown, never shown before (skipped)")
        expected = {mid: (sender, body) for sender, sent in answered.items()
                    for body, mid in sent.items()}
        missing = sorted(set(expected) - set(rcpt.shown))
        self.assertEqual(missing[:10], [], "%d answered, not shown" % len(missing))
        self.assertEqual({mid: rcpt.shown[mid] for mid in expected}, expected,
                         "a body shown under another mid than its send was answered with")
        self.assertEqual(len(rcpt.shown), len(expected), "shown but never sent")
        for sender in answered:
            bodies = [body for s, body in (rcpt.shown[mid] for mid in rcpt.shown_order)
                      if s == sender]
            self.assertEqual(bodies, sorted(answered[sender]), "the order of %s" % sender)


class ClusterChatSendPluginTest(ClusterChatTest):
    """The same with `send` served by the C plugin (plugins/send) on every node."""

    @classmethod
    def setUpClass(cls):
        cls.node_extra = ["plugin %s" % plugin("send")]
        super().setUpClass()

    def test_send_is_served_by_the_plugin(self):
        n1 = self.node("n1")
        r = admin_call(n1, dict(type="admin.plugins"))
        self.assertEqual({h["type"]: h["impl"] for h in r["handlers"]}["send"], "c", r)


class ClusterNodesTest(ClusterTest):

    def shard_subscribers(self, channels):
        """[PUBSUB SHARDNUMSUB count of each of CHANNELS], in their order."""
        r = self.redis.cmd("PUBSUB", "SHARDNUMSUB", *channels)
        counts = dict(zip(r[::2], r[1::2]))
        return [counts[ch.encode()] for ch in channels]

    def test_node_channels_are_sharded_and_private_chat_stays_live(self):
        """Each node subscribes its own channel mp:node:<id> with SSUBSCRIBE (sharded pub/sub:
        on a Redis Cluster only the master of the channel's slot carries it) and the broadcast
        channel with classic SUBSCRIBE: SHARDNUMSUB of every node's channel is 1 and NUMSUB of
        mp:broadcast is the number of nodes. A private message to a user on another node is
        SPUBLISHed on that node's channel and still pushed live (offline false)."""
        nodes = self.cluster()
        channels = ["mp:node:%s" % b.node_id for b in nodes]
        poll(lambda: self.shard_subscribers(channels) == [1, 1, 1], 30,
             what=lambda: "SHARDNUMSUB 1 for each of %s (got %r)"
             % (channels, self.shard_subscribers(channels)))
        r = self.redis.cmd("PUBSUB", "NUMSUB", "mp:broadcast")
        self.assertEqual(r, [b"mp:broadcast", len(nodes)])
        a, b = self.login(nodes[0]), self.login(nodes[2])
        self.wait_listed([a], [b.user])
        before = redis_calls(self.redis, "spublish")
        body = uname("sharded-")
        r = self.send(a, b.user, body, online=True)
        m = b.read_msgs(1)[0]
        self.assertEqual((m["mid"], m["from"], m["body"], m["offline"]),
                         (r["mid"], a.user, body, False), m)
        self.assertGreater(redis_calls(self.redis, "spublish"), before,
                           "the live message went to n3 without an SPUBLISH")

    def test_admin_nodes_lists_every_live_node(self):
        t0 = now_ms()
        nodes = self.cluster()
        n1, n2, n3 = nodes
        a = self.login(n1)
        self.login(n1)
        c = self.login(n2)

        def sessions(b):
            return {n: e["sessions"] for n, e in self.nodes_of(b).items()}
        for b in nodes:
            poll(lambda: sessions(b) == {"n1": 2, "n2": 1, "n3": 0}, 30,
                 what=lambda: "admin.nodes on %s: n1 2, n2 1, n3 0 sessions (got %r)"
                 % (b.node_id, self.nodes_of(b)))
        listed = self.nodes_of(n3)
        for n, e in listed.items():
            self.assertTrue(is_int(e["started"]) and t0 - 1000 <= e["started"] <= now_ms(), e)
        self.assertLessEqual(listed["n1"]["started"], listed["n2"]["started"], listed)
        self.assertLessEqual(listed["n2"]["started"], listed["n3"]["started"], listed)
        c.close()
        poll(lambda: sessions(n1) == {"n1": 2, "n2": 0, "n3": 0}, 30,
             what=lambda: "n2's session gone from admin.nodes (got %r)" % self.nodes_of(n1))
        self.assertEqual(n3.stop(), 0)
        poll(lambda: set(self.nodes_of(n1)) == {"n1", "n2"}, PRESENCE_TTL + SLACK,
             what=lambda: "n3 gone from admin.nodes on n1 once stopped (got %r)"
             % self.nodes_of(n1))
        self.assertEqual(set(self.nodes_of(n2)), {"n1", "n2"})
        self.assertEqual(a.call(dict(type="ping"))["code"], 200)

    def test_admin_users_and_kick_reach_every_node(self):
        nodes = self.cluster()
        clients = [self.login(b) for b in nodes]
        names = {c.user for c in clients}

        def admin_users(b):
            r = admin_call(b, {"type": "admin.users"}, timeout=30)
            return (set(r["users"]), r["count"]) if r["code"] == 200 else r
        for b in nodes:
            poll(lambda: admin_users(b) == (names, 3), 30,
                 what=lambda: "admin.users on %s: all three (got %r)" % (b.node_id, admin_users(b)))
        victim = clients[2]  # on n3, kicked from n1
        r = admin_call(nodes[0], {"type": "admin.kick", "user": victim.user}, timeout=30)
        self.assertEqual(r["code"], 200, r)
        seen = victim.expect_closed(timeout=30)
        self.assertEqual([f.get("code") for f in seen if f.get("type") == "bye"], [403], seen)
        poll(lambda: admin_users(nodes[1]) == (names - {victim.user}, 2), 30,
             what=lambda: "the kicked user unlisted (got %r)" % (admin_users(nodes[1]),))
        r = admin_call(nodes[0], {"type": "admin.kick", "user": victim.user}, timeout=30)
        self.assertEqual(r["code"], 404, r)

    def test_node_restarted_at_once_after_a_kill_serves_again(self):
        """A node started again with its id at once after a SIGKILL (as a supervisor restarts
        a worker) waits for the old instance's deadline and then serves, sessions included."""
        n1, n2 = self.cluster(2)
        a, b = self.login(n1), self.login(n2)
        first_started = self.nodes_of(n2)["n1"]["started"]
        self.kill(n1)
        n1.start()
        early = self.login(n1)  # before the old instance's deadline has passed
        poll(lambda: self.nodes_of(n2).get("n1", {}).get("started", 0) > first_started, 30,
             what=lambda: "the new n1 listed (got %r)" % self.nodes_of(n2))
        poll(lambda: self.nodes_of(n2)["n1"]["sessions"] == 1, 30,
             what=lambda: "the new n1 with its one session (got %r)" % self.nodes_of(n2))
        self.wait_listed([b], [early.user])
        self.assertNotIn(a.user, self.listed(b)[0])
        r = self.send(b, early.user, "after the restart", online=True)
        m = early.read_msgs(1)[0]
        self.assertEqual((m["mid"], m["body"]), (r["mid"], "after the restart"), m)
        again = self.login(n1, a.user, register=False)
        self.wait_listed([b], [a.user])
        self.send(b, a.user, "welcome back", online=True)
        self.assertEqual(again.read_msgs(1)[0]["body"], "welcome back")

    # ---- the user's location: live messages without the registry ----

    def location(self, user):
        """The location key of USER ("NODE SEQ"), or None."""
        v = self.redis.cmd("GET", self.user_key("loc", user))
        return v.decode() if v is not None else None

    def test_location_follows_the_session(self):
        """A login points the user's location at its node and claim, a login elsewhere moves
        it, a logout removes it."""
        n1, n2 = self.cluster(2)
        a = self.login(n1)
        poll(lambda: (self.location(a.user) or "").startswith("n1 "), 30,
             what=lambda: "location at n1 (got %r)" % self.location(a.user))
        first_seq = int(self.location(a.user).split()[1])
        again = self.login(n2, a.user, register=False)
        poll(lambda: (self.location(a.user) or "").startswith("n2 "), 30,
             what=lambda: "location at n2 (got %r)" % self.location(a.user))
        self.assertGreater(int(self.location(a.user).split()[1]), first_seq)
        self.assertEqual(again.call(dict(type="logout"), 30)["code"], 200)
        poll(lambda: self.location(a.user) is None, 30,
             what=lambda: "location gone (got %r)" % self.location(a.user))

    def test_live_message_to_another_node_asks_no_registry(self):
        """A send to a user on another node reads the user's location with the store and
        publishes to that node: Redis runs no registry lookup (moonpost_where) for it, and a
        send to a user logged in nowhere none either."""
        n1, n2 = self.cluster(2)
        a, b = self.login(n1), self.login(n2)
        offline = self.register(n1)
        poll(lambda: (self.location(b.user) or "").startswith("n2 "), 30, what="b located")
        monitor = socket.create_connection(("127.0.0.1", self.redis.port))
        monitor.sendall(b"MONITOR\r\n")
        # Redis watches from its +OK on: a send before it could go unseen
        monitor.settimeout(10)
        seen = b""
        while not seen.startswith(b"+OK\r\n"):
            chunk = monitor.recv(65536)
            self.assertTrue(chunk, "MONITOR refused")
            seen += chunk
        seen = seen[len(b"+OK\r\n"):]
        monitor.settimeout(0.2)
        try:
            for i in range(10):
                self.send(a, b.user, "live %d" % i, online=True)
                self.send(a, offline, "mail %d" % i, online=False)
            got = b.read_msgs(10)
            self.assertEqual([m["body"] for m in got], ["live %d" % i for i in range(10)])
            self.assertTrue(all(m["offline"] is False for m in got), got)
            deadline = time.time() + 2
            while time.time() < deadline:
                try:
                    chunk = monitor.recv(65536)
                except socket.timeout:
                    break
                if not chunk:
                    break
                seen += chunk
        finally:
            monitor.close()
        self.assertEqual(seen.count(b'"moonpost_store"'), 20, "one store per send")
        self.assertEqual(seen.count(b'"moonpost_where"'), 0, "no registry lookup")
        self.assertEqual(seen.count(b'"SPUBLISH"'), 10, "one publish per live message")

    def test_stale_location_of_a_killed_node_is_forgotten(self):
        """A node killed with a session leaves that user's location behind; once the node's
        id runs again, the first message for the user tells it that it holds no such session,
        it forgets the location, and later sends find the user offline."""
        n1, n2 = self.cluster(2)
        a, b = self.login(n1), self.login(n2)
        poll(lambda: (self.location(b.user) or "").startswith("n2 "), 30, what="b located")
        self.kill(n2)
        n2.start()
        self.assertEqual(self.location(b.user).split()[0], "n2")
        poll(lambda: self.shard_subscribers(["mp:node:n2"]) == [1], 30,
             what="the new n2 subscribed")
        self.send(a, b.user, "to the old session")  # answered 200, stored; online either way
        poll(lambda: self.location(b.user) is None, 30,
             what=lambda: "stale location forgotten (got %r)" % self.location(b.user))
        self.send(a, b.user, "now offline", online=False)
        c = self.login(n1, b.user, register=False)
        self.assertEqual([m["body"] for m in c.read_msgs(2)], ["to the old session", "now offline"])

    def test_node_id_in_use_is_refused_until_that_node_is_dead(self):
        n1, n2 = self.cluster(2)
        first_started = self.nodes_of(n2)["n1"]["started"]
        twin = self.node("n1", start=False)
        rc = self.start_failing(twin)
        self.assertEqual(rc, 2, twin.log_text()[-2000:])
        self.assertIn("node_id n1 is in use by a live node", twin.log_text())
        # the live n1 goes on as before
        self.assertEqual(self.nodes_of(n2)["n1"]["started"], first_started)
        a, b = self.login(n1), self.login(n2)
        self.wait_listed([b], [a.user])
        self.send(b, a.user, "still here", online=True)
        self.assertEqual(a.read_msgs(1)[0]["body"], "still here")
        a.close()
        self.assertEqual(n1.stop(), 0)
        poll(lambda: "n1" not in self.nodes_of(n2), PRESENCE_TTL + SLACK,
             what=lambda: "n1 gone from admin.nodes once stopped (got %r)" % self.nodes_of(n2))
        twin.start()
        listed = poll(lambda: self.nodes_of(n2).get("n1"), 30, what="the new n1 listed")
        self.assertGreater(listed["started"], first_started, listed)
        c = self.login(twin)
        self.wait_listed([b], [c.user])
        self.send(b, c.user, "to the new n1", online=True)
        self.assertEqual(c.read_msgs(1)[0]["body"], "to the new n1")
