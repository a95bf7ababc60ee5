"""A cluster of three brokers (nodes n1, n2, n3) on one redis-server under faults:

- n3 is SIGKILLed while 100 users spread over the nodes chat (each user a coroutine that follows
  libmoonpost: it shows each mid once, in increasing order, acks what it has shown, and after a
  lost connection logs in again, on another node when its own does not answer). A send that got
  no 200 (lost with the node) is not sent again, so every body is unique: after the client's
  dedup by mid, every message answered 200 must be shown to its recipient exactly once (the
  users whose node died log in on another one and get their mail there), and no message at all
  twice. n3's users stop being listed, and n3 leaves admin.nodes, within presence_ttl.
- Redis is stopped for longer than presence_ttl and started again on the same port and data:
  every node rejoins by itself, with its sessions.
- Redis closes the nodes' channel connections while a stream of messages flows: nothing is
  lost, nothing comes out of order, the recipient's session goes on.
- Redis comes back with an older copy of its data (a snapshot taken before the last logins: the
  chaos test's rollback, on a cluster): one user still has one session, the registry lists
  exactly the users that have a session, a user's only session is not closed for a claim
  that is older than its own, and a node restarted since the snapshot goes on.
- A kick lost with the channel connections is applied when they are back.
- Logins racing a channels reconnect: 40 users log in on n2 in waves around cuts of the
  channel connections; a claim in flight when the renew begins is claimed again, so every one
  stays listed on n1 and online for its messages.
- processes N: the workers of one command are one cluster; a killed one comes back.

Timings vary from run to run; what is asserted does not depend on them, beyond the bounds of
the contract (presence_ttl) plus SLACK. Random choices use fixed seeds."""
import asyncio
import os
import random
import signal
import tempfile
import time
from collections import Counter

from cluster_harness import (PRESENCE_TTL, SLACK, ChatUser, ClusterTest, admin_async,
                             apoll, register_async)
from harness import ALL_SCRIPTS, REDIS_LUA, metrics
from helpers import poll, uname
from test_plugins import plugin
from test_processes import N as PROCESSES, NODE, Supervisor

SEED = 12
USERS = 100
LOAD_BEFORE_KILL = 4.0   # seconds of chat before n3 is killed
LOAD_AFTER_KILL = 3.0    # ... and after its users are back on the other nodes
SETTLE_TIMEOUT = 120.0   # for every message answered 200 to be shown (a bound, not a goal)
PROCESS_USERS = 24       # logged in on the one port of a command with processes N
CUT_MESSAGES = 600       # sent while the nodes' channel connections are cut every CUT_EVERY
CUT_EVERY = 100
RACE_USERS = 40          # log in on n2 in RACE_CUTS waves, each around a cut of the channels
RACE_CUTS = 4
RACE_START = 60          # ms after the cut, the first login of a wave (the channels come back
RACE_STEP = 8            # ~100 ms after a cut); then one every RACE_STEP ms


def now():
    return time.monotonic()


class LoadUser(ChatUser):
    """A user of the load: logs in on its home node (on the next one when that fails), sends to
    random others while the test lets it, never sends a body twice."""

    def __init__(self, test, name, index):
        super().__init__(name)
        self.test = test
        self.rng = random.Random(SEED * 1000 + index)
        self.node_index = index % 3  # of test.nodes: where it logs in next
        self.port = None             # of the node of its session, when it has one
        self.hold = False            # the test keeps it offline after its session ends
        self.seq = 0
        self.answered = []           # [(to, body, mid)]
        self.unanswered = []         # [(to, body)]: an error, or no reply (lost connection)

    async def run(self):
        while not self.test.done:
            port = self.test.nodes[self.node_index].port
            try:
                r = await self.log_in(port)
                if r["code"] == 200:
                    self.port = port
                    self.test.logged_in.add(self.name)
                    await self.send_loop()
                else:
                    self.test.count("login %d" % r["code"])
            except (OSError, EOFError, ConnectionError, asyncio.TimeoutError):
                pass
            self.drop()
            self.port = None
            if not self.test.done:  # a session the test did not end: try the next node
                self.node_index = (self.node_index + 1) % 3
            while self.hold and not self.test.done:
                await asyncio.sleep(0.05)
            await asyncio.sleep(self.rng.uniform(0.05, 0.3))

    async def send_loop(self):
        conn = self.conn
        while not conn.closed and not self.test.done:
            if not self.test.sending:
                await asyncio.sleep(0.1)
                continue
            self.seq += 1
            to = self.rng.choice(self.test.names)
            while to == self.name:
                to = self.rng.choice(self.test.names)
            body = "%s>%s#%d" % (self.name, to, self.seq)
            try:
                r = await conn.call(dict(type="send", to=to, body=body))
            except (ConnectionError, asyncio.TimeoutError):
                self.unanswered.append((to, body))
                raise
            if r["code"] == 200:
                self.answered.append((to, body, r["mid"]))
            else:
                self.unanswered.append((to, body))
                self.test.count("send %d" % r["code"])
            await asyncio.sleep(self.rng.uniform(0.1, 0.4))


class ClusterKillTest(ClusterTest):

    def count(self, what):
        self.counts[what] = self.counts.get(what, 0) + 1

    def missing(self):
        """[(recipient, sender, body)] answered 200 and not shown."""
        sent = [(to, u.name, body) for u in self.users for to, body, _ in u.answered]
        return [(to, sender, body) for to, sender, body in sent + self.more_answered
                if (sender, body) not in self.by_name[to].shown_content]

    async def timed_check(self, fn, since, what):
        """Polls FN until it is true, for presence_ttl (+ SLACK) after SINCE; a miss is kept in
        self.late (and asserted at the end, after the check of the messages)."""
        try:
            await apoll(fn, max(0.0, since + PRESENCE_TTL + SLACK - now()), what=what)
        except AssertionError as e:
            self.late.append(str(e))
            await apoll(fn, 30, what=what)  # late, but it must come

    async def scenario(self):
        n1, _, n3 = self.nodes
        regs = await asyncio.gather(*(register_async(self.nodes[i % 3].port, name)
                                      for i, name in enumerate(self.names)))
        self.assertEqual([r["code"] for r in regs], [200] * USERS, regs)
        watcher = ChatUser(await self.register_one(n1))
        self.assertEqual((await watcher.log_in(n1.port))["code"], 200)
        tasks = [asyncio.ensure_future(u.run()) for u in self.users]
        try:
            await apoll(lambda: len(self.logged_in) == USERS, 120,
                        what=lambda: "every user logged in (%d are)" % len(self.logged_in))
            self.sending = True
            await asyncio.sleep(LOAD_BEFORE_KILL)  # the load runs meanwhile
            victims = [u for u in self.users if u.port == n3.port]
            self.victims = len(victims)
            self.assertTrue(victims, "users on n3 when it is killed")
            for u in victims:
                u.hold = True
            killed = now()
            self.kill(n3)
            names = {u.name for u in victims}

            async def victims_unlisted():
                r = await watcher.conn.call(dict(type="users", limit=10000))
                return r["code"] == 200 and not names & set(r["users"])

            async def n3_gone():
                r = await admin_async(n1, {"type": "admin.nodes"})
                return r["code"] == 200 and {n["node"] for n in r["nodes"]} == {"n1", "n2"}

            await self.timed_check(victims_unlisted, killed,
                                   "the %d users of the killed n3 unlisted on n1" % len(names))
            await self.timed_check(n3_gone, killed, "n3 gone from admin.nodes on n1")
            # a dead node's users are no longer routed to: a send to one finds it offline
            to = victims[0].name
            r = await watcher.conn.call(dict(type="send", to=to, body="while your node is dead"))
            self.assertEqual((r["code"], r.get("online")), (200, False), r)
            self.more_answered.append((to, watcher.name, "while your node is dead"))
            for u in victims:
                u.hold = False
            await apoll(lambda: all(u.port for u in victims), 60,
                        what="n3's users logged in on n1 or n2")
            await asyncio.sleep(LOAD_AFTER_KILL)
            self.sending = False
            await apoll(lambda: not self.missing(), SETTLE_TIMEOUT,
                        what=lambda: "every message answered 200 shown (%d are not)"
                        % len(self.missing()))
            # the live nodes' beats reap the dead one's entries (docs/cluster.md)
            await apoll(lambda: self.redis.cmd("ZSCORE", "mp:nodes", "n3") is None and
                        self.redis.cmd("EXISTS", "mp:nodeusers:n3") == 0, 30,
                        what="n3 and its users reaped from Redis")
        finally:
            self.done = True
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for u in self.users + [watcher]:
                u.drop()

    async def register_one(self, b):
        name = uname("w")
        r = await register_async(b.port, name)
        self.assertEqual(r["code"], 200, r)
        return name

    def test_killed_node_loses_no_answered_message_and_leaves_the_lists(self):
        self.nodes = self.cluster(extra=["log_level info"])
        self.names = ["k%03d" % i for i in range(USERS)]
        self.users = [LoadUser(self, name, i) for i, name in enumerate(self.names)]
        self.by_name = {u.name: u for u in self.users}
        self.done, self.sending = False, False
        self.logged_in, self.counts, self.late, self.victims = set(), {}, [], 0
        self.more_answered = []  # [(recipient, sender, body)] answered 200, from the watcher
        started = now()
        failure = None
        try:
            asyncio.run(self.scenario())
        except AssertionError as e:
            failure = e  # reported with the counts below
        answered = sum(len(u.answered) for u in self.users)
        unanswered = sum(len(u.unanswered) for u in self.users)
        shown = sum(len(u.shown_order) for u in self.users)
        counts = ", ".join("%s: %d" % kv for kv in sorted(self.counts.items()))
        print("\n  [%.0f s: %d sends answered 200, %d not, %d shown, %d users on the killed "
              "node; %s]" % (now() - started, answered, unanswered, shown, self.victims, counts),
              end=" ")
        if failure is not None:
            raise failure
        missing = self.missing()
        self.assertEqual(missing[:10], [], "%d messages answered 200 never shown" % len(missing))
        twice = [(u.name, c, n) for u in self.users
                 for c, n in Counter(u.shown[m] for m in u.shown_order).items() if n > 1]
        self.assertEqual(twice[:10], [], "%d messages shown twice (under two mids)" % len(twice))
        disordered = [(u.name,) + d for u in self.users for d in u.disordered_sessions()]
        self.assertEqual(disordered[:3], [], "sessions whose pushes were not in mid order")
        reused = [(u.name,) + r for u in self.users for r in u.reused]
        self.assertEqual(reused[:10], [], "mids pushed again with another message")
        self.assertEqual(self.late, [], "past presence_ttl + %g s after the kill" % SLACK)
        self.assertGreater(answered, 500)


class ClusterKillSendPluginTest(ClusterKillTest):
    """The same with `send` served by the C plugin (plugins/send) on every node."""

    @classmethod
    def setUpClass(cls):
        cls.node_extra = ["plugin %s" % plugin("send")]
        super().setUpClass()


class ClusterRedisFaultsTest(ClusterTest):

    def test_every_node_rejoins_after_a_redis_restart(self):
        nodes = self.cluster()
        users = [self.login(b) for b in nodes]  # one on each node
        names = [u.user for u in users]
        self.wait_listed(users, names)
        self.redis.cmd("SAVE")  # the users and their tokens come back with the restart
        self.redis.stop()
        for i, u in enumerate(users):
            to = names[(i + 1) % 3]
            poll(lambda: u.call(dict(type="send", to=to, body="while away"), 30)["code"] == 503,
                 30, what="a send on %s answered 503 without Redis" % u.node.node_id)
        # away for longer than presence_ttl: every node's deadline passes, each must register
        # itself and its sessions again
        time.sleep(PRESENCE_TTL + 1)
        self.redis.start()
        for u in users:
            self.assertEqual(u.call(dict(type="ping"), 30)["code"], 200)
        self.wait_listed(users, names, timeout=60)
        for b in nodes:
            poll(lambda: self.node_ids(b) == {"n1", "n2", "n3"}, 60,
                 what=lambda: "admin.nodes on %s lists n1, n2, n3 (got %r)"
                 % (b.node_id, self.node_ids(b)))
        for i, u in enumerate(users):
            rcpt = users[(i + 1) % 3]
            body = "back %d" % i
            r = self.send(u, rcpt.user, body, online=True)
            m = rcpt.read_msgs(1, timeout=30)[0]
            self.assertEqual((m["mid"], m["from"], m["body"]), (r["mid"], u.user, body), m)
        fresh = self.login(nodes[2])
        self.wait_listed(users[:1], [fresh.user])
        self.assertLessEqual(set(names), set(fresh.login["users"]), fresh.login)
        r = self.send(users[0], fresh.user, "welcome", online=True)
        self.assertEqual(fresh.read_msgs(1, timeout=30)[0]["mid"], r["mid"])

    def test_one_session_per_user_after_redis_went_back_to_an_older_snapshot(self):
        """The claim counter goes back with the data; the sessions the nodes put back keep
        their later claims. A login after that must still close the older session."""
        n1, n2, n3 = self.cluster()
        user = self.register(n1)
        self.login(n1, user, register=False)
        self.redis.cmd("SAVE")
        probe = self.login(n3)
        for _ in range(5):  # claims after the snapshot
            self.login(n3)
        old = self.login(n1, user, register=False)  # its claim is newer than the snapshot
        self.restart_redis()
        self.wait_listed([probe], [user], timeout=60)
        new = self.login(n2, user, register=False)
        try:
            seen = old.expect_closed(timeout=30)
        except TimeoutError:
            self.fail("%s has two sessions: the one on n1 stays open after a login on n2 "
                      "(registry entry %r, claim counter %r)"
                      % (user, self.redis.cmd("HGET", "mp:online", user),
                         self.redis.cmd("GET", "mp:claimseq")))
        self.assertEqual([f.get("code") for f in seen if f.get("type") == "bye"], [409], seen)
        self.send(probe, user, "to the newest session", online=True)
        self.assertEqual(new.read_msgs(1, timeout=30)[0]["body"], "to the newest session")

    def test_registry_matches_the_sessions_after_redis_went_back_to_an_older_snapshot(self):
        """The snapshot has USER on n1; since then USER logged in on n2 (n1's session got bye
        409). When Redis comes back with the snapshot, the session on n2, the only one, must
        stay (its claim is newer than the snapshot's), and `users` must list exactly the users
        that have a session (n1 has none of USER)."""
        n1, n2, n3 = self.cluster()
        probe = self.login(n3)
        user = self.register(n1)
        first = self.login(n1, user, register=False)
        self.wait_listed([probe], [user])
        self.redis.cmd("SAVE")
        only = self.login(n2, user, register=False)
        seen = first.expect_closed(timeout=30)
        self.assertEqual([f.get("code") for f in seen if f.get("type") == "bye"], [409], seen)
        self.restart_redis()
        frames = []
        try:
            r = self.send(probe, user, "still yours", online=True)
            while not frames or frames[-1].get("type") != "msg":
                frames.append(only.next(30))
        except (EOFError, OSError):
            self.fail("the only session of %s (n2, claimed after the snapshot) was closed: %r; "
                      "`users` on n3 now: %r, registry entry %r"
                      % (user, frames, self.listed_with_count(probe),
                         self.redis.cmd("HGET", "mp:online", user)))
        self.assertEqual((frames[-1]["mid"], frames[-1]["body"]), (r["mid"], "still yours"))
        expected = ({probe.user, user}, 2)
        poll(lambda: all(self.listed_with_count(c) == expected for c in (probe, only)), 60,
             what=lambda: "users and count %r on n3 and n2 (got %r and %r)"
             % (expected, self.listed_with_count(probe), self.listed_with_count(only)))

    def test_node_restarted_before_redis_went_back_to_an_older_snapshot_goes_on(self):
        """n1 restarts (a new instance of the id) after a snapshot; Redis then comes back
        with that snapshot, in which the old instance holds the id until its deadline. That
        instance is gone: the new n1 must go on serving (as a starting node waits for a dead
        holder's deadline), not exit as if another live process had taken its id."""
        ttl = ["presence_ttl 10"]  # the old instance's deadline is still ahead at the restore
        n1, n2 = self.node("n1", ttl), self.node("n2", ttl)
        self.wait_nodes([n2], {"n1", "n2"})
        user = self.register(n2)  # before the snapshot: the account survives the restore
        self.redis.cmd("SAVE")
        self.assertEqual(n1.stop(), 0)
        n1.start()
        poll(lambda: self.node_ids(n2) == {"n1", "n2"}, 30, what="the new n1 listed")
        a = self.login(n1, user, register=False)
        self.redis.stop()
        self.redis.start()
        poll(lambda: "n2" in (self.node_ids(n2) or ()), 60, what="n2 back")
        b = self.login(n2)
        self.assert_running(n1)
        self.wait_listed([b], [a.user], timeout=60)
        self.assert_running(n1)
        self.send(b, a.user, "still here", online=True)
        self.assertEqual(a.read_msgs(1, timeout=30)[0]["body"], "still here")

    def assert_running(self, b):
        """Node B has not exited (if it has, it is reaped and the test fails with its log)."""
        if b.proc.poll() is not None:
            rc, log = b.stop(), b.log_text()
            self.fail("%s exited with %s: %s" % (b.node_id, rc, log[-1200:]))

    def wait_nodes(self, brokers, ids):
        for b in brokers:
            poll(lambda: self.node_ids(b) == ids, 60,
                 what=lambda: "admin.nodes on %s lists %s (got %r)"
                 % (b.node_id, sorted(ids), self.node_ids(b)))

    def test_lost_channel_connections_cost_a_delay_never_a_message(self):
        """The nodes' channel connections are cut (CLIENT KILL) while a sender on n1 writes to
        a recipient on n2: what was published meanwhile is lost, and must come from the
        mailbox, in order, in the same session."""
        n1, n2, _ = self.cluster()
        sender, rcpt = ChatUser(self.register(n1)), ChatUser(self.register(n2))
        poll(lambda: self.subscribers() == 3, 30, what="3 subscribed nodes")
        answered = asyncio.run(self.stream_with_cuts(sender, rcpt, n1, n2))
        self.assertEqual(len(rcpt.sessions), 1, "the recipient never had to log in again")
        self.assertEqual(rcpt.disordered_sessions(), [], "pushes out of order")
        shown = {mid: body for mid, (_, body) in rcpt.shown.items()}
        self.assertEqual(shown, {mid: body for body, mid in answered.items()})
        self.assertEqual(rcpt.bodies_shown(), sorted(answered), "the sender's order")
        m = metrics(n2)  # each cut was followed by a resync of the session (docs/cluster.md)
        self.assertGreaterEqual(m["moonpost_resyncs_total"], CUT_MESSAGES // CUT_EVERY, m)
        self.assertEqual(m["moonpost_mid_regressions_total"], 0, m)

    async def stream_with_cuts(self, sender, rcpt, n1, n2):
        """SENDER (on N1) sends CUT_MESSAGES to RCPT (on N2) one after another; every
        CUT_EVERY of them Redis closes every subscriber connection. Returns {body: mid}."""
        self.assertEqual((await rcpt.log_in(n2.port))["code"], 200)
        self.assertEqual((await sender.log_in(n1.port))["code"], 200)
        answered = {}
        try:
            await apoll(lambda: self.listed_by(sender, rcpt.name), 30, what="recipient listed")
            for i in range(CUT_MESSAGES):
                if i % CUT_EVERY == CUT_EVERY // 2:  # once every node has subscribed again
                    await apoll(lambda: self.subscribers() == 3, 60,
                                what=lambda: "3 subscribed nodes (%d)" % self.subscribers())
                    self.assertEqual(self.redis.cmd("CLIENT", "KILL", "TYPE", "pubsub"), 3)
                body = "c%04d" % i
                r = await sender.conn.call(dict(type="send", to=rcpt.name, body=body))
                self.assertEqual(r["code"], 200, r)
                answered[body] = r["mid"]
            await apoll(lambda: len(rcpt.shown) >= CUT_MESSAGES, 60,
                        what=lambda: "all %d shown (%d are)" % (CUT_MESSAGES, len(rcpt.shown)))
        finally:
            sender.drop()
            rcpt.drop()
        return answered

    def test_kick_lost_with_the_channel_connection_closes_the_older_session_later(self):
        """Redis closes the nodes' channel connections, and USER logs in on n2 at once: the
        kick to n1 is most likely published while n1 is not subscribed (it reconnects after
        100 ms at the soonest), and is lost. When n1 is back, it puts its sessions back in the
        registry, finds USER claimed by a newer login, and closes its session with bye 409."""
        n1, n2, n3 = self.cluster()
        probe = self.login(n3)
        user = self.register(n1)
        old = self.login(n1, user, register=False)
        self.wait_listed([probe], [user])
        poll(lambda: self.subscribers() == 3, 30, what="3 subscribed nodes")
        self.assertEqual(self.redis.cmd("CLIENT", "KILL", "TYPE", "pubsub"), 3)
        new = self.login(n2, user, register=False)
        seen = old.expect_closed(timeout=30)
        self.assertEqual([f.get("code") for f in seen if f.get("type") == "bye"], [409], seen)
        poll(lambda: self.subscribers() == 3, 30, what="3 subscribed nodes again")
        r = self.send(probe, user, "to the newer session", online=True)
        m = new.read_msgs(1, timeout=30)[0]
        self.assertEqual((m["mid"], m["body"]), (r["mid"], "to the newer session"), m)

    def test_logins_racing_a_channels_reconnect_stay_registered(self):
        """RACE_USERS users log in on n2 in RACE_CUTS waves, each wave around a moment Redis
        closes the nodes' channel connections (CLIENT KILL TYPE pubsub): when the channels are
        back, n2 puts its sessions back in the registry (renew: begin, its sessions, end)
        while claims of the wave's logins are still in flight. A claim that ran just before
        the renew's first step must be claimed again by the renew, or its last step takes the
        user out of the registry while its session goes on. After each wave every user logged
        in so far is listed by `users` on n1, and at the end a message from n1 to each is
        answered online true and pushed."""
        n1, n2, _ = self.cluster()
        observer = self.login(n1)
        names = [self.register(n2) for _ in range(RACE_USERS)]
        asyncio.run(self.logins_with_cuts(n2, names, observer))

    async def logins_with_cuts(self, node, names, observer):
        """NAMES log in on NODE, RACE_CUTS waves of them, each wave's logins started at once
        from RACE_START ms after a CLIENT KILL TYPE pubsub, RACE_STEP ms apart; after each
        wave, `users` on OBSERVER's node lists every user logged in so far; at the end
        OBSERVER sends to each, online and pushed."""
        users = [ChatUser(name) for name in names]
        per_wave = -(-len(users) // RACE_CUTS)
        done = []
        try:
            for first in range(0, len(users), per_wave):
                wave = users[first:first + per_wave]
                await apoll(lambda: self.subscribers() == 3, 60,
                            what=lambda: "3 subscribed nodes (%d)" % self.subscribers())

                async def log_in(i, u):
                    await asyncio.sleep((RACE_START + i * RACE_STEP) / 1000)
                    return await u.log_in(node.port)

                logins = asyncio.gather(*(log_in(i, u) for i, u in enumerate(wave)))
                self.assertEqual(self.redis.cmd("CLIENT", "KILL", "TYPE", "pubsub"), 3)
                replies = await logins
                self.assertEqual([r["code"] for r in replies], [200] * len(wave), replies)
                done += wave
                await apoll(lambda: self.subscribers() == 3, 60,
                            what=lambda: "3 subscribed nodes again (%d)" % self.subscribers())
                await apoll(lambda: not self.unlisted(observer, done), 30,
                            what=lambda: "every user logged in on n2 listed on n1; not "
                            "listed, with their registry entries: %r"
                            % self.unlisted(observer, done))
            closed = [u.name for u in users if u.conn is None or u.conn.closed]
            self.assertEqual(closed, [], "sessions closed during the race")
            for u in users:
                body = "after the race to %s" % u.name
                r = self.send(observer, u.name, body)
                self.assertIs(r["online"], True, "%s, logged in on n2, is offline for n1: %r "
                              "(registry entry %r)" % (u.name, r, self.redis.cmd(
                                  "HGET", "mp:online", u.name)))
                await apoll(lambda: r["mid"] in u.shown, 30,
                            what="%s pushed to %s" % (body, u.name))
                self.assertEqual(u.shown[r["mid"]], (observer.user, body))
        finally:
            for u in users:
                u.drop()

    def unlisted(self, observer, users):
        """{name: registry entry} of the ChatUsers USERS that `users` on OBSERVER's node does
        not list."""
        listed = self.listed_now(observer) or set()
        return {u.name: self.redis.cmd("HGET", "mp:online", u.name) for u in users
                if u.name not in listed}

    def subscribers(self):
        """How many connections to Redis are subscribed to channels."""
        return sum(1 for line in self.redis.cmd("CLIENT", "LIST").decode().splitlines()
                   if " sub=0 " not in line)

    @staticmethod
    async def listed_by(user, name):
        r = await user.conn.call(dict(type="users", limit=10000))
        return name in r.get("users", ())

    def restart_redis(self):
        """Stops Redis and starts it again on the same port and directory (with the last SAVE's
        data); returns once every node lists the three nodes again."""
        self.redis.stop()
        self.redis.start()
        self.wait_nodes(self.brokers, {"n1", "n2", "n3"})

    def listed_with_count(self, c):
        """(set of users, count) `users` answers on C's node, or None."""
        try:
            r = c.call(dict(type="users", limit=10000), 30)
        except (OSError, EOFError) as e:
            return e
        return (set(r["users"]), r["count"]) if r["code"] == 200 else r


class ClusterBusyStoreTest(ClusterTest):

    def test_node_whose_store_waits_on_a_slow_command_stays_alive(self):
        """A command that keeps the node's store connection busy (here a script's BLPOP) for
        three times presence_ttl does not stop its heartbeat, which has a connection of its own:
        the node stays listed, and so do its users."""
        n1 = self.node("n1")
        n2 = self.node("n2", ["redis_timeout 60"], scripts=list(ALL_SCRIPTS) + [REDIS_LUA])
        observer, busy = self.login(n1), self.login(n2)
        self.wait_listed([observer], [busy.user])
        wait = 3 * PRESENCE_TTL
        busy.send(dict(type="t.slowredis", id=7, key="slow:" + busy.user, timeout=wait))
        poll(lambda: b"blocked_clients:1" in self.redis.cmd("INFO", "clients"),
             what="the BLPOP blocked in Redis")
        deadline = time.monotonic() + wait - 1
        checks = 0
        while time.monotonic() < deadline:
            self.assertIn("n2", self.nodes_of(n1), "n2 taken for dead while its store waited")
            self.assertIn(busy.user, self.listed(observer)[0])
            checks += 1
            time.sleep(0.25)
        self.assertGreater(checks, 4 * PRESENCE_TTL)
        self.assertEqual(busy.wait_res(7, timeout=wait + 30)["code"], 200)
        self.assertNotIn("rejoined", n2.log_text())


class ClusterProcessesTest(ClusterTest):
    """processes N (docs/cluster.md): the workers of one command are the nodes of one cluster,
    on one client port, and the supervisor restarts a killed one at once."""

    def test_workers_of_one_command_are_one_cluster_and_a_killed_one_comes_back(self):
        sup = Supervisor(tempfile.mkdtemp(dir=self.dir), self.redis.port, None,
                         ["node_id %s" % NODE, "presence_ttl %d" % PRESENCE_TTL,
                          "request_rate 0"])
        sup.node_id = NODE
        self.brokers.append(sup)
        sup.start()
        ids = {"%s-%d" % (NODE, i) for i in range(1, PROCESSES + 1)}
        poll(lambda: self.node_ids(sup) == ids, 30,
             what=lambda: "admin.nodes lists %s (got %r)" % (sorted(ids), self.node_ids(sup)))
        clients = [self.login(sup) for _ in range(PROCESS_USERS)]
        names = {c.user for c in clients}
        poll(lambda: self.listed(clients[0]) == (names, PROCESS_USERS), 30,
             what=lambda: "every user listed (got %r)" % (self.listed(clients[0]),))
        sessions = poll(lambda: self.sessions_if_all(sup, PROCESS_USERS), 30,
                        what=lambda: "%d sessions in admin.nodes (got %r)"
                        % (PROCESS_USERS, self.nodes_of(sup)))
        self.chat_ring(clients, "before")
        body = uname("to-all-")
        self.assertEqual(clients[0].call(dict(type="broadcast", body=body))["code"], 200)
        for c in clients[1:]:
            c.wait_push("broadcast", timeout=30, pred=lambda f: f.get("body") == body)
        # the busiest worker is killed; the supervisor starts it again at once
        busiest = max(sessions, key=sessions.get)
        pid = sup.workers()[int(busiest.rsplit("-", 1)[1])]
        started = self.nodes_of(sup)[busiest]["started"]
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        lost = [c for c in clients if self.closed_by_kill(c)]
        self.assertEqual(len(lost), sessions[busiest], "the killed worker's sessions closed")
        gone = {c.user for c in lost}
        observer = next(c for c in clients if c not in lost)
        poll(lambda: not gone & self.listed(observer)[0],
             max(0.0, killed + PRESENCE_TTL + SLACK - time.monotonic()),
             what="the killed worker's users unlisted")
        poll(lambda: self.nodes_of(sup).get(busiest, {}).get("started", 0) > started, 30,
             what=lambda: "%s back in admin.nodes (got %r)" % (busiest, self.nodes_of(sup)))
        back = [c for c in clients if c not in lost] + [
            self.login(sup, c.user, register=False) for c in lost]
        poll(lambda: self.listed(back[0]) == (names, PROCESS_USERS), 30,
             what=lambda: "every user listed again (got %r)" % (self.listed(back[0]),))
        self.chat_ring(back, "after")

    def sessions_if_all(self, sup, n):
        """{node: sessions} of admin.nodes when they add up to N, else None."""
        sessions = {node: e["sessions"] for node, e in self.nodes_of(sup).items()}
        return sessions if sum(sessions.values()) == n else None

    def chat_ring(self, clients, tag):
        """Each of CLIENTS sends to the next one: online, and pushed (and acked)."""
        for i, c in enumerate(clients):
            rcpt = clients[(i + 1) % len(clients)]
            r = self.send(c, rcpt.user, "%s %d" % (tag, i), online=True)
            m = rcpt.read_msgs(1, timeout=30)[0]
            self.assertEqual((m["mid"], m["body"]), (r["mid"], "%s %d" % (tag, i)), m)
            self.assertEqual(rcpt.call(dict(type="ack", upto=m["mid"]), 30)["code"], 200)

    @staticmethod
    def closed_by_kill(c):
        """True when C's connection was closed (its worker was killed), after a ping."""
        try:
            return c.call(dict(type="ping"), 30)["code"] != 200
        except (EOFError, OSError):
            return True
