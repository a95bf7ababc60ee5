"""moonpost on a Redis Cluster (issue 18): 3 masters with a replica each, real redis-server
processes built with redis-cli --cluster create. The chat tests written for one redis-server
(register, login, private chat online and offline, broadcast, presence, rooms) run again on the
cluster with their users on two brokers, and those of several nodes (test_cluster.py's chat,
test_rooms.py's rooms across nodes) with their nodes on it; then what only a cluster does: a
master killed under private chat with redis_wait_replicas 1 (503 while its replica takes over
and while that has no replica of its own, 200 again after, every message answered 200
delivered), slots of active mailboxes moved to another master while users chat (nothing lost,
the redirects followed show in /metrics), each node's channel subscribed (SSUBSCRIBE) on the
master of its slot and on no other, the slot of a node's channel moved while a sender writes to
its user (the node subscribes again on the new master; every message answered 200 shown once,
in order, live again after), the config a cluster refuses, and a first seed that is down. The
rooms tests of several nodes include a login that follows more rooms than one batch."""
import asyncio
import itertools
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

import test_chat_broadcast
import test_chat_login
import test_chat_messaging
import test_chat_register
import test_cluster
import test_rooms
from cluster_harness import ChatUser, apoll
from harness import BROKER, Broker, Client, free_port, metrics
from helpers import poll, uname
from redis_cluster_harness import OnRedisCluster, RedisClusterTest, key_slot

PASSWORD = "cluster-secret"
SENDERS = 4            # clients sending private messages in a loop, half on each broker
RECIPIENTS = 4         # half of them with their mailbox on the master the failover test kills
AFTER_RECOVERY = 10    # sends answered 200 to the victim's recipients after it recovered
ROUND_TIMEOUT = 60.0   # bound of each phase of the fault tests
SEND_PAUSE = 0.02      # between two sends of a sender: the load is steady, not the most
# the senders send more than a mailbox holds by default before a test is through
MAIL_LIMITS = ["mailbox_max 1000000", "mailbox_per_sender 1000000"]


# ---- the chat tests written for one redis-server, on the cluster with two brokers ----

class TwoBrokersOnRedisCluster(OnRedisCluster):
    """A BrokerTest class on the Redis Cluster with a second broker beside the class's own:
    connections alternate between the two, so a test's users are on different brokers."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        second_dir = tempfile.mkdtemp(prefix="second-", dir=cls.tmp)
        cls.second = Broker(second_dir, cls.redis.port, cls.scripts,
                            cls.redis_conf() + list(cls.extra or []))
        try:
            cls.second.start()
        except BaseException:
            super().tearDownClass()
            raise
        cls.turn = itertools.count()

    @classmethod
    def tearDownClass(cls):
        try:
            rc = cls.second.stop()
            if rc != 0:
                raise AssertionError("the second broker exited with %s; log tail:\n%s"
                                     % (rc, cls.second.log_text()[-4000:]))
        finally:
            super().tearDownClass()

    def connect(self, **kw):
        b = (self.broker, self.second)[next(self.turn) % 2]
        c = Client(b.port, **kw)
        self.clients.append(c)
        return c


def on_cluster(base, tests, mixin=TwoBrokersOnRedisCluster):
    """BASE, a test class written for one redis-server, on the Redis Cluster (MIXIN) with only
    its TESTS (test_redis_cluster_keys.py runs them all on a one-master cluster; here the run
    stays short)."""
    missing = [t for t in tests if not callable(getattr(base, t, None))]
    if missing:
        raise AttributeError("%s has no %s" % (base.__name__, missing))
    attrs = {name: None for name in dir(base) if name.startswith("test") and name not in tests}
    name = base.__name__ + "OnRedisCluster"
    attrs.update(__module__=__name__, __qualname__=name)
    return type(name, (mixin, base), attrs)


RegisterTestOnRedisCluster = on_cluster(test_chat_register.RegisterTest, [
    "test_409_exists_and_keeps_the_first_password",
    "test_user_case_sensitive",
    "test_user_length_1_and_32",
    "test_register_ok_carries_nothing_more",
])

LoginTestOnRedisCluster = on_cluster(test_chat_login.LoginTest, [
    "test_login_ok_token_and_users",
    "test_login_users_lists_the_others_online",
    "test_resume_with_token",
    "test_logout_revokes_token_and_closes",
    "test_second_login_kicks_the_older_connection",
    "test_429_per_user_and_address",
])

SendTestOnRedisCluster = on_cluster(test_chat_messaging.SendTest, [
    "test_send_to_online_user",
    "test_send_to_offline_user_is_stored",
    "test_send_online_is_stored_too_until_acked",
    "test_send_unknown_user_404",
    "test_ack",
    "test_unacked_mail_comes_again_acked_does_not",
    "test_unacked_mail_comes_again_at_resume",
    "test_mids_strictly_increasing_per_recipient",
    "test_sender_order_kept_with_two_senders",
    "test_1000_messages_in_order_while_online",
])

UsersTestOnRedisCluster = on_cluster(test_chat_messaging.UsersTest, [
    "test_users_limits_and_count",
])

BroadcastTestOnRedisCluster = on_cluster(test_chat_broadcast.BroadcastTest, [
    "test_broadcast_reaches_every_other_session_not_the_sender",
    "test_broadcast_is_not_stored",
    "test_broadcast_mids_increase",
    "test_pipelined_broadcasts_keep_order",
])

RoomsTestOnRedisCluster = on_cluster(test_rooms.RoomsTest, [
    "test_create_makes_the_creator_a_member",
    "test_join_answers_the_last_seq_and_is_idempotent",
    "test_private_room_needs_an_invitation_which_one_join_uses",
    "test_leave_ends_membership_and_pushes",
    "test_send_pushes_room_msg_to_every_other_member",
    "test_history_pages_backwards",
    "test_read_cursor_never_moves_back",
    "test_offline_member_catches_up_with_list_and_history",
])

LoginErrorsTestOnRedisCluster = on_cluster(test_chat_login.LoginErrorsTest, [
    "test_401_identical_for_unknown_malformed_and_wrong_password",
    "test_resume_wrong_token_401",
])

# (not test_presence_after_a_second_login_says_online: it counts the connections of one broker)
PresenceTestOnRedisCluster = on_cluster(test_chat_broadcast.PresenceTest, [
    "test_presence_online_at_login_offline_at_disconnect",
    "test_presence_offline_at_logout",
    "test_presence_online_at_resume",
])


def every_test(base):
    return [name for name in dir(base) if name.startswith("test")]


# several nodes (node_id, presence_ttl) as in test_cluster.py and test_rooms.py, each on the
# Redis Cluster: every test of their chat and rooms
ClusterChatTestOnRedisCluster = on_cluster(
    test_cluster.ClusterChatTest, every_test(test_cluster.ClusterChatTest), mixin=OnRedisCluster)
RoomsClusterTestOnRedisCluster = on_cluster(
    test_rooms.RoomsClusterTest, every_test(test_rooms.RoomsClusterTest), mixin=OnRedisCluster)


# ---- faults and changes of the cluster under chat ----

class ChatLoad:
    """SENDERS clients (alternately on the brokers given) send private messages to RECIPIENTS
    in a loop, each on a thread of its own, until stop(); a sender whose connection closes
    logs in again. Every reply is kept with the phase its send started in (the test moves
    .phase on as it changes the cluster): replies = [(recipient, body, code, phase)]. The
    recipients stay offline: their mail waits in their mailboxes."""

    def __init__(self, test, brokers, senders, recipients):
        self.test, self.brokers = test, brokers
        self.senders, self.recipients = senders, recipients
        self.replies = []
        self.phase = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.errors = []
        self.threads = [threading.Thread(target=self.run, args=(i, s), daemon=True)
                        for i, s in enumerate(senders)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(60)
        alive = [t for t in self.threads if t.is_alive()]
        if alive or self.errors:
            raise AssertionError("senders: %d still running, errors: %r" % (len(alive),
                                                                              self.errors[:5]))

    def codes(self, recipients=None, phase=0):
        """[code] of the replies to sends to RECIPIENTS (default: all) started in PHASE or
        later."""
        with self.lock:
            return [code for rcpt, _, code, p in self.replies
                    if (recipients is None or rcpt in recipients) and p >= phase]

    def delivered_bodies(self):
        """{recipient: [body answered 200]}."""
        with self.lock:
            out = {r: [] for r in self.recipients}
            for rcpt, body, code, _ in self.replies:
                if code == 200:
                    out[rcpt].append(body)
            return out

    def session(self, broker, user):
        while not self.stopping.is_set():
            c = Client(broker.port, timeout=30)
            try:
                r = c.call(dict(type="login", user=user, password=PASSWORD), 30)
            except (OSError, EOFError):
                c.close()
                continue
            if r["code"] == 200:
                return c
            c.close()
            if r["code"] != 503:
                raise AssertionError("login of %s answered %r" % (user, r))
            time.sleep(0.1)
        return None

    def run(self, i, user):
        broker = self.brokers[i % len(self.brokers)]
        try:
            c = self.session(broker, user)
            for n in itertools.count():
                if c is None or self.stopping.is_set():
                    break
                rcpt = self.recipients[n % len(self.recipients)]
                body = "%s>%s#%d" % (user, rcpt, n)
                phase = self.phase
                try:
                    r = c.call(dict(type="send", to=rcpt, body=body), 30)
                except (OSError, EOFError):  # closed with bye 503: log in again
                    c.close()
                    c = self.session(broker, user)
                    continue
                if r["code"] not in (200, 503):
                    raise AssertionError("send %s answered %r" % (body, r))
                with self.lock:
                    self.replies.append((rcpt, body, r["code"], phase))
                time.sleep(SEND_PAUSE)
            if c is not None:
                c.close()
        except Exception as e:  # the test's thread reports it at stop()
            self.errors.append(repr(e))


class LiveViewer(ChatUser):
    """A ChatUser (cluster_harness) that also keeps the `offline` flag of each mid pushed:
    .offline = {mid: flag of its first push}."""

    def __init__(self, name):
        super().__init__(name, PASSWORD)
        self.offline = {}

    def on_msg(self, m):
        self.offline.setdefault(m["mid"], m["offline"])
        super().on_msg(m)


class RedisClusterFaultsTest(RedisClusterTest):

    def register(self, b, user):
        c = Client(b.port, timeout=30)
        try:
            r = c.call(dict(type="register", user=user, password=PASSWORD), 30)
        finally:
            c.close()
        self.assertEqual(r["code"], 200, "register %s: %r" % (user, r))
        return user

    def users_on(self, b, n, prefix, master=None, not_master=None):
        """N fresh users registered on broker B, with their mailbox on MASTER (a port) or not
        on NOT_MASTER when given."""
        users = []
        while len(users) < n:
            u = uname(prefix)
            where = self.cluster.master_of(self.user_key("mbox", u))
            if master is not None and where != master:
                continue
            if not_master is not None and where == not_master:
                continue
            users.append(self.register(b, u))
        return users

    def assert_mail_delivered(self, brokers, load):
        """Each recipient logs in (on the brokers in turn) and reads its mailbox replay: every
        body answered 200 is in it."""
        for i, (rcpt, bodies) in enumerate(sorted(load.delivered_bodies().items())):
            b = brokers[i % len(brokers)]
            c = Client(b.port, timeout=30)
            self.clients.append(c)
            r = c.call(dict(type="login", user=rcpt, password=PASSWORD), 30)
            self.assertEqual(r["code"], 200, r)
            want, got = set(bodies), set()
            deadline = time.monotonic() + ROUND_TIMEOUT
            while not want <= got and time.monotonic() < deadline:
                try:
                    got.add(c.read_msgs(1, timeout=max(0.1, deadline - time.monotonic()))[0]
                            ["body"])
                except TimeoutError:
                    break
            lost = sorted(want - got)
            self.assertEqual(lost, [], "%s: %d of %d messages answered 200 never came, e.g. %s"
                             % (rcpt, len(lost), len(want), lost[:5]))

    def assert_running(self, brokers):
        """Every one of BROKERS still runs and logged no error (a 503 is a warning)."""
        for b in brokers:
            log = b.log_text()
            self.assertIsNone(b.proc.poll(), "broker %s exited; log tail:\n%s"
                              % (b.node_id, log[-4000:]))
            errors = [line for line in log.splitlines() if " ERROR " in line]
            self.assertEqual(errors, [], "broker %s logged errors" % b.node_id)

    def wait_codes(self, load, recipients, pred, what):
        """Until PRED accepts the codes of the replies to sends to RECIPIENTS started in the
        load's current phase or later."""
        phase = load.phase
        return poll(lambda: pred(load.codes(recipients, phase)), ROUND_TIMEOUT, interval=0.1,
                    what=lambda: "%s (codes so far: %d x 200, %d x 503; sender errors: %r)"
                    % (what, load.codes(recipients, phase).count(200),
                       load.codes(recipients, phase).count(503), load.errors[:3]))

    def test_master_killed_under_chat_with_wait_replicas(self):
        """The master of two recipients' mailboxes is SIGKILLed while four senders on two
        brokers (redis_wait_replicas 1) write to them: their sends answer 503 while its replica
        takes over, and still 503 while that new master has no replica to confirm a write;
        once the killed node is back as its replica, 200 again, the brokers untouched. Every
        message answered 200, before or after, reaches its recipient, and no broker exits."""
        brokers = [self.broker(["redis_wait_replicas 1", "redis_timeout 2"] + MAIL_LIMITS,
                               node_id="r%d" % i) for i in (1, 2)]
        victim = self.cluster.master_ports()[0]
        self.addCleanup(self.restore, victim)
        half = RECIPIENTS // 2
        on_victim = self.users_on(brokers[0], half, "v", master=victim)
        elsewhere = self.users_on(brokers[1], RECIPIENTS - half, "w", not_master=victim)
        senders = [self.register(brokers[i % 2], uname("s")) for i in range(SENDERS)]
        load = ChatLoad(self, brokers, senders, on_victim + elsewhere).start()
        try:
            self.wait_codes(load, on_victim, lambda codes: codes.count(200) >= 2 * SENDERS,
                            "sends to the victim's recipients answered 200 before the kill")
            for u in on_victim:  # the mailbox names the test chose by are the broker's
                mbox = self.user_key("mbox", u)
                self.assertEqual(self.cluster.cmd(victim, "EXISTS", mbox), 1,
                                 "no %s on the victim master" % mbox)
            load.phase = 1
            self.cluster.kill_master(victim)
            self.wait_codes(load, on_victim, lambda codes: 503 in codes,
                            "a 503 to a send to the killed master's recipients")
            self.cluster.wait_failover()
            load.phase = 2  # the promoted master has no replica: no write can be confirmed
            self.wait_codes(load, on_victim, lambda codes: len(codes) >= SENDERS,
                            "replies to sends to the promoted master's recipients")
            self.assertNotIn(200, load.codes(on_victim, 2), "a send answered 200 while the "
                             "master of its mailbox had no replica (redis_wait_replicas 1)")
            load.phase = 3
            self.cluster.restart(victim)  # its replica: WAIT 1 can be confirmed again
            self.wait_codes(load, on_victim, lambda codes: codes.count(200) >= AFTER_RECOVERY,
                            "sends to the killed master's recipients answered 200 again")
            self.wait_codes(load, elsewhere, lambda codes: codes.count(200) >= AFTER_RECOVERY,
                            "sends to the other recipients answered 200")
        finally:
            load.stop()
        self.assert_running(brokers)
        self.assert_mail_delivered(brokers[::-1], load)

    def restore(self, port):
        """The killed node back in the cluster (for the next tests of the class)."""
        if not self.cluster.node(port).alive:
            self.cluster.restart(port)

    def redirects(self, brokers, kind):
        return sum(metrics(b).get('moonpost_redis_redirects_total{kind="%s"}' % kind, 0)
                   for b in brokers)

    def test_slots_of_active_mailboxes_moved_while_chatting(self):
        """The slots of four recipients' mailboxes move to another master, a key at a time
        with pauses (ASK while a slot is half-moved, MOVED after), while four senders on two
        brokers write to them: every message answered 200 reaches its recipient, and the
        brokers counted the redirects they followed, and the TRYAGAIN answers of a function
        whose keys were split between the two masters, which they sent again."""
        brokers = [self.broker(MAIL_LIMITS, node_id="m%d" % i) for i in (1, 2)]
        recipients = self.users_on(brokers[0], RECIPIENTS, "t")
        senders = [self.register(brokers[i % 2], uname("s")) for i in range(SENDERS)]
        for b in brokers:
            for kind in ("moved", "ask", "tryagain"):
                self.assertIn('moonpost_redis_redirects_total{kind="%s"}' % kind, metrics(b),
                              "no %s redirect counter on /metrics" % kind)
        kinds = ("moved", "ask", "tryagain")
        before = {kind: self.redirects(brokers, kind) for kind in kinds}
        load = ChatLoad(self, brokers, senders, recipients).start()
        try:
            self.wait_codes(load, None, lambda codes: codes.count(200) >= 4 * SENDERS,
                            "sends answered 200 before the move")
            masters = self.cluster.master_ports()
            for u in recipients:
                slot = key_slot(self.user_key("mbox", u))
                source = self.cluster.master_of_slot(slot)
                target = masters[(masters.index(source) + 1) % len(masters)]
                moved = self.cluster.move_slot(slot, target, batch=1, pause_between_keys=0.3)
                self.assertGreater(moved, 0, "slot %d of %s held no key" % (slot, u))
            load.phase = 1
            self.wait_codes(load, None, lambda codes: codes.count(200) >= 4 * SENDERS,
                            "sends answered 200 after the move")
        finally:
            load.stop()
        self.assert_running(brokers)
        self.assert_mail_delivered(brokers, load)
        after = {kind: self.redirects(brokers, kind) for kind in kinds}
        for kind in kinds:
            self.assertGreater(after[kind], before[kind], "%s redirects followed: %s -> %s"
                               % (kind, before[kind], after[kind]))

    # ---- the node channels: sharded, on the master of their slot ----

    @staticmethod
    def node_channel(node_id):
        return "mp:node:%s" % node_id

    def shard_subscribers(self, port, channel):
        """PUBSUB SHARDNUMSUB of CHANNEL on the master at PORT (it counts only the
        subscriptions made there)."""
        return self.cluster.cmd(port, "PUBSUB", "SHARDNUMSUB", channel)[1]

    def shard_counts(self, channel):
        """{master port: SHARDNUMSUB of CHANNEL there}."""
        return {p: self.shard_subscribers(p, channel) for p in self.cluster.master_ports()}

    def node_ids_on_masters(self, prefix, masters):
        """One node id (PREFIX1, PREFIX2, ...) per port of MASTERS, whose node channel's slot
        that master serves, in their order."""
        ids = {}
        for i in itertools.count(1):
            node_id = "%s%d" % (prefix, i)
            port = self.cluster.master_of(self.node_channel(node_id))
            if port in masters and port not in ids:
                ids[port] = node_id
            if len(ids) == len(masters):
                return [ids[p] for p in masters]

    def wait_subscribed_on(self, node_id, master, timeout=ROUND_TIMEOUT):
        """Until NODE_ID's channel is subscribed once, on MASTER only."""
        channel = self.node_channel(node_id)
        want = {p: int(p == master) for p in self.cluster.master_ports()}
        poll(lambda: self.shard_counts(channel) == want, timeout, interval=0.1,
             what=lambda: "SHARDNUMSUB of %s 1 on %d, 0 elsewhere (got %r)"
             % (channel, master, self.shard_counts(channel)), retry_on=(OSError, RuntimeError))

    def test_node_channels_are_subscribed_on_the_master_of_their_slot(self):
        """Each node SSUBSCRIBEs its own channel on the master that serves the channel's slot
        (where the other nodes' SPUBLISH of its users' messages goes, and stays): there
        SHARDNUMSUB is 1, on every other master 0. The node ids are chosen so that the three
        nodes' channels are on three different masters; a private message across each pair of
        nodes is pushed live."""
        masters = self.cluster.master_ports()
        ids = self.node_ids_on_masters("sh", masters)
        brokers = [self.broker(node_id=node_id) for node_id in ids]
        for node_id, master in zip(ids, masters):
            self.wait_subscribed_on(node_id, master)
        users = [self.users_on(b, 1, "p")[0] for b in brokers]
        clients = []
        for b, u in zip(brokers, users):
            c = Client(b.port, timeout=30)
            self.clients.append(c)
            self.assertEqual(c.call(dict(type="login", user=u, password=PASSWORD), 30)["code"],
                             200)
            clients.append(c)
        for i, sender in enumerate(clients):
            rcpt = (i + 1) % len(clients)
            poll(lambda: users[rcpt] in sender.call(dict(type="users", limit=100), 30)["users"],
                 30, what="%s listed on %s" % (users[rcpt], ids[i]))
            body = "%s to %s" % (ids[i], ids[rcpt])
            r = sender.call(dict(type="send", to=users[rcpt], body=body), 30)
            self.assertEqual((r["code"], r.get("online")), (200, True), r)
            m = clients[rcpt].read_msgs(1, timeout=30)[0]
            self.assertEqual((m["mid"], m["body"], m["offline"]), (r["mid"], body, False), m)
        self.assert_running(brokers)

    def test_node_channel_slot_moved_while_a_sender_writes_to_its_user(self):
        """The slot of a node's channel moves to another master while a sender on another
        node keeps writing to a user of that node: the old master drops the subscription
        (sunsubscribe), the node subscribes again on the new master (SHARDNUMSUB 1 there, 0 on
        the old one). Every message answered 200 is shown to the recipient exactly once, in
        the order sent, in its one session (what was SPUBLISHed while the node was not
        subscribed comes from the mailbox), and once the node is subscribed again the
        messages are pushed live (offline false)."""
        masters = self.cluster.master_ports()
        rcpt_id, send_id = self.node_ids_on_masters("mv", masters[:2])
        source = masters[0]
        target = masters[2]
        brokers = [self.broker(MAIL_LIMITS, node_id=node_id) for node_id in (rcpt_id, send_id)]
        self.wait_subscribed_on(rcpt_id, source)
        rcpt = LiveViewer(self.users_on(brokers[0], 1, "r")[0])
        sender = LiveViewer(self.users_on(brokers[1], 1, "s")[0])
        slot = key_slot(self.node_channel(rcpt_id))
        answered, live = asyncio.run(self.send_while_moving(
            sender, rcpt, brokers, lambda: self.cluster.move_slot(slot, target),
            lambda: self.wait_subscribed_on(rcpt_id, target)))
        self.assertEqual(self.cluster.master_of_slot(slot), target)
        self.assertEqual(len(rcpt.sessions), 1, "the recipient had to log in again")
        self.assertEqual(rcpt.disordered_sessions(), [],
                         "pushes out of mid order, or a mid pushed twice")
        self.assertEqual(rcpt.reused, [])
        shown = {mid: body for mid, (_, body) in rcpt.shown.items()}
        self.assertEqual(shown, {mid: body for body, mid in answered.items()},
                         "shown is not what was answered 200")
        self.assertEqual(rcpt.bodies_shown(), sorted(answered), "the sender's order")
        offline = [body for body in live if rcpt.offline[answered[body]]]
        self.assertEqual(offline, [], "sent once the node had subscribed again, and not "
                         "pushed live")
        self.assertIn("subscribing again", brokers[0].log_text())
        self.assert_running(brokers)

    async def send_while_moving(self, sender, rcpt, brokers, move, resubscribed):
        """SENDER (on brokers[1]) sends to RCPT (on brokers[0]) one message after another
        while MOVE runs (on a thread), then until RESUBSCRIBED returns, then until one is
        pushed live, then AFTER_RECOVERY more. Returns ({body: mid} answered 200, [bodies of
        the last AFTER_RECOVERY])."""
        self.assertEqual((await rcpt.log_in(brokers[0].port))["code"], 200)
        self.assertEqual((await sender.log_in(brokers[1].port))["code"], 200)
        answered, count = {}, itertools.count()

        async def send_one():
            body = "c%05d" % next(count)
            r = await sender.conn.call(dict(type="send", to=rcpt.name, body=body), 30)
            self.assertEqual(r["code"], 200, r)
            answered[body] = r["mid"]
            await asyncio.sleep(SEND_PAUSE)
            return body, r

        async def sent_while(task):
            while not task.done():
                await send_one()
            task.result()  # (raises what the thread raised)

        try:
            await apoll(lambda: self.listed_by(sender, rcpt.name), 30, what="recipient listed")
            for _ in range(20):  # before the move: live
                await send_one()
            loop = asyncio.get_running_loop()
            await sent_while(loop.run_in_executor(None, move))
            await sent_while(loop.run_in_executor(None, resubscribed))

            async def pushed_live():
                body, r = await send_one()
                await apoll(lambda: r["mid"] in rcpt.offline, 30,
                            what="%s pushed" % body)
                return not rcpt.offline[r["mid"]]
            await apoll(pushed_live, ROUND_TIMEOUT, interval=0,
                        what="a message pushed live after the node subscribed again")
            live = [(await send_one())[0] for _ in range(AFTER_RECOVERY)]
            await apoll(lambda: len(rcpt.shown) >= len(answered), ROUND_TIMEOUT,
                        what=lambda: "all %d shown (%d are)" % (len(answered), len(rcpt.shown)))
        finally:
            sender.drop()
            rcpt.drop()
        return answered, live

    @staticmethod
    async def listed_by(user, name):
        r = await user.conn.call(dict(type="users", limit=10000))
        return name in r.get("users", ())

    def test_first_seed_down_second_up(self):
        """A broker whose first seed does not answer starts from the second and serves."""
        dead = "127.0.0.1:%d" % free_port()
        live = "127.0.0.1:%d" % self.cluster.master_ports()[1]
        b = self.broker(seeds="%s %s" % (dead, live), node_id="seed")
        a, r = self.register(b, uname("a")), self.register(b, uname("b"))
        ca = Client(b.port, timeout=30)
        self.clients.append(ca)
        self.assertEqual(ca.call(dict(type="login", user=a, password=PASSWORD), 30)["code"], 200)
        sent = ca.call(dict(type="send", to=r, body="hello"), 30)
        self.assertEqual(sent["code"], 200, sent)
        cr = Client(b.port, timeout=30)
        self.clients.append(cr)
        self.assertEqual(cr.call(dict(type="login", user=r, password=PASSWORD), 30)["code"], 200)
        m = cr.read_msgs(1)[0]
        self.assertEqual((m["mid"], m["from"], m["body"]), (sent["mid"], a, "hello"), m)


class RedisClusterConfigTest(unittest.TestCase):
    """What a Redis Cluster cannot have is refused when the config is read: `-t` and a start
    exit 2 with the file and line of the key at fault."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="moonpost-rcluster-conf-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)

    def assert_refused(self, lines, message):
        """A config ending with LINES fails `-t` and the start with MESSAGE at its last line."""
        b = Broker(tempfile.mkdtemp(dir=self.dir), free_port(), ["ping"], lines)
        with open(b.conf) as f:
            line = len(f.read().splitlines())
        for args in (["-t", "-c", b.conf], ["-c", b.conf]):
            r = subprocess.run([BROKER] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, timeout=30)
            self.assertEqual(r.returncode, 2, r)
            self.assertIn("%s:%d: %s" % (b.conf, line, message), r.stderr)

    def test_redis_db_other_than_0(self):
        self.assert_refused(["redis_cluster on", "redis_db 1"],
                            "a Redis Cluster has only database 0")

    def test_redis_db_with_several_seeds(self):
        self.assert_refused(["redis 127.0.0.1:%d,127.0.0.1:%d" % (free_port(), free_port()),
                             "redis_db 3"], "a Redis Cluster has only database 0")

    def test_prefix_with_a_hash_tag(self):
        self.assert_refused(["redis_cluster on", "redis_prefix {mp}:"],
                            "redis_prefix must not contain { or }")

    def test_prefix_with_a_closing_brace(self):
        self.assert_refused(["redis_cluster on", "redis_prefix mp}:"],
                            "redis_prefix must not contain { or }")


if __name__ == "__main__":
    unittest.main()
