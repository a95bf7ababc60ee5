"""Chaos (issue 11): private chat among 100 users while Redis is killed and restarted, paused,
rolled back to an older copy of its data, the broker is SIGKILLed and restarted, and mailbox
replays are cut. At the end every message answered 200 has been shown to its recipient, and no
client has shown one twice.

The clients are coroutines of this file that follow the protocol the way libmoonpost
(clients/c) does:
- one connection per user; after a lost connection (or a `bye`) it connects again and sends
  `resume` with its token, and `login` with its password when the token is refused (401: a
  rolled-back Redis forgot it);
- it remembers the highest mid it has shown, across reconnects, and drops a `msg` push whose
  mid is not above it as a repeat: it shows each mid at most once, in increasing order;
- it acks the highest mid it has shown (batched, every 0.2 s);
- a send that got no 200 (an error code, a timeout, a lost connection) is sent again with the
  same body until one comes. Bodies are unique ("sender>recipient#n"), so delivery is checked
  by content. A retried send whose first try was stored after all is shown twice under two
  mids (the protocol has no idempotent send): counted and printed, not a failure.

Redis runs with appendonly yes and appendfsync always, so a kill loses nothing it answered. The
rollback is the one phase that loses writes on purpose: Redis is paused, its append-only files
are copied aside, and a few seconds later it is killed and restarted from the copy.

Asserted at the end, once the chaos has stopped, every send got its 200 and the recipients
have been shown everything they are owed (waited for, with a generous deadline):
1. every send answered 200 was shown to its recipient, except a send answered between the copy
   and the restart of the rolled-back Redis, which the rollback may have lost;
2. no push came again under a mid already shown with other content (a mid reused for another
   message), and each user was shown strictly increasing mids;
3. the broker never died on its own.
Timings vary from run to run; what is asserted does not depend on them. Random choices use
fixed seeds."""
import asyncio
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from aioclient import Viewer, connect
from harness import Broker, Redis, fresh_addr, wait_port

SEED = 11
USERS = 100
PASSWORD = "chaos-secret"
SETTLE_TIMEOUT = 90.0   # after the chaos: for every retried send and every owed message
STALL = 30.0            # ... or this long without any progress


def now():
    return time.monotonic()


class DurableRedis(Redis):
    """redis-server that fsyncs its append-only file at every write, in a directory of its own,
    and can be paused, killed, copied and restored."""

    def __init__(self, tmp):
        super().__init__(tmp)
        self.dir = os.path.join(tmp, "redis")
        os.makedirs(self.dir)

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--save", "", "--appendonly", "yes", "--appendfsync", "always",
             "--auto-aof-rewrite-percentage", "0", "--daemonize", "no",
             "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, timeout=30, proc=self.proc)

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def aof_dir(self):
        return os.path.join(self.dir, "appendonlydir")

    def copy_data(self, dst):
        """Copies the append-only files aside while Redis is stopped: every write it
        answered before is in the copy (appendfsync always), none after."""
        self.pause()
        try:
            shutil.copytree(self.aof_dir(), dst)
        finally:
            self.resume()

    def restart_from(self, src):
        shutil.rmtree(self.aof_dir())
        shutil.copytree(src, self.aof_dir())
        self.start()


class User(Viewer):
    def __init__(self, chaos, name, index):
        super().__init__()
        self.chaos, self.name = chaos, name
        self.rng = random.Random(SEED * 1000 + index)
        self.src = fresh_addr()  # login failures count per address: one address per user
        self.token = None
        self.seq = 0
        self.outbox = []         # [(to, body)] not answered 200 yet, oldest first
        self.answered = []       # [(to, body, mid, time of the 200)]
        self.away = False        # kept offline by the chaos (its mailbox fills)

    # ---- what reaches the client ----

    def on_push(self, f):
        if f.get("type") == "msg":
            self.on_msg(f)
        elif f.get("type") == "bye":
            self.chaos.count("bye %s" % f.get("code"))

    def on_reply(self, f):
        if "token" in f and f.get("code") == 200:
            self.chaos.replay_starts(self)

    # ---- the connection ----

    async def run(self):
        while not self.chaos.done:
            if self.away:
                await asyncio.sleep(0.05)
                continue
            try:
                await self.session()
            except (OSError, EOFError, ConnectionError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(self.rng.uniform(0.05, 0.3))

    async def session(self):
        conn = await connect(self.chaos.broker.port, self.on_push, self.on_reply, src=self.src)
        acks = None
        try:
            if not await self.log_in(conn):
                return
            acks = asyncio.ensure_future(self.ack_loop(conn))
            await self.send_loop(conn)
        finally:
            if acks is not None:
                acks.cancel()
            conn.close()

    async def log_in(self, conn):
        r = None
        if self.token is not None:
            r = await conn.call(dict(type="resume", user=self.name, token=self.token))
            if r["code"] == 401:
                self.chaos.count("resume refused")
        if r is None or r["code"] == 401:
            r = await conn.call(dict(type="login", user=self.name, password=PASSWORD))
        if r["code"] != 200:
            self.chaos.count("login %d" % r["code"])
            return False
        self.token = r["token"]
        self.chaos.logged_in.add(self.name)
        return True

    async def ack_loop(self, conn):
        while not conn.closed:
            await asyncio.sleep(0.2)
            if self.last_mid > conn.acked and not conn.closed:
                conn.post(dict(type="ack", upto=self.last_mid))  # no id: silent when it works
                conn.acked = self.last_mid

    def recipient(self):
        """Anyone but this user; half the time one of those kept away, if any (to fill their
        mailboxes, so that their replays take long enough to be cut)."""
        away = [u.name for u in self.chaos.users if u.away and u is not self]
        if away and self.rng.random() < 0.5:
            return self.rng.choice(away)
        to = self.rng.choice(self.chaos.names)
        while to == self.name:
            to = self.rng.choice(self.chaos.names)
        return to

    async def send_loop(self, conn):
        while not conn.closed and not self.away and not self.chaos.done:
            if not self.outbox and self.chaos.sending:
                self.seq += 1
                to = self.recipient()
                self.outbox.append((to, "%s>%s#%d" % (self.name, to, self.seq)))
            if not self.outbox:
                await asyncio.sleep(0.1)
                continue
            to, body = self.outbox[0]
            r = await conn.call(dict(type="send", to=to, body=body))
            if r["code"] == 200:
                self.outbox.pop(0)
                self.answered.append((to, body, r["mid"], now()))
                self.chaos.answered(self.name, to, body)
                await asyncio.sleep(self.rng.uniform(0.05, 0.4))
            else:
                self.chaos.count("send %d" % r["code"])
                await asyncio.sleep(0.2)


class ChaosTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="moonpost-chaos-")
        self.redis = DurableRedis(self.tmp)
        self.redis.start()
        self.broker = Broker(self.tmp, self.redis.port, extra=[
            "log_level info",
            "redis_timeout 1",     # a paused Redis is given up on (and reconnected) quickly
            "output_limit 65536",  # replays fetch one message per round trip: easy to cut
        ]).start()
        self.done = False
        self.sending = False
        self.counts = {}
        self.owed = {}           # recipient -> {(from, body)} answered 200
        self.rollback = None     # (start, end) of the window the rollback may lose
        self.crashes = 0
        self.crash_logs = []  # the end of the broker's log each time it died
        self.cut = None          # armed: (returning users, event set when a replay is cut, kill)
        self.phases = []         # [(start time, name)] of the chaos, for the report
        self.logged_in = set()   # users that have logged in once

    def tearDown(self):
        self.done = True
        for proc in (self.broker.proc, self.redis.proc):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
        try:
            self.broker.stop()
        finally:
            self.redis.stop()
            shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- bookkeeping the users call ----

    def count(self, what):
        self.counts[what] = self.counts.get(what, 0) + 1

    def answered(self, sender, to, body):
        self.owed.setdefault(to, set()).add((sender, body))

    def replay_starts(self, user):
        """USER's login or resume was answered: its replay starts now. When the chaos waits
        for a replay to cut, and USER is owed at least 5 messages, Redis stops now."""
        if self.cut is None or user not in self.cut[0] or self.cut[1].is_set():
            return
        if len(self.owed.get(user.name, set()) - user.shown_content) >= 5:
            self.stop_redis(self.cut[2])
            self.cut[1].set()

    # ---- the chaos ----

    async def traffic(self, seconds):
        """Lets the users chat for SECONDS; a broker that died on its own is counted and
        started again."""
        end = now() + seconds
        while now() < end:
            await asyncio.sleep(0.1)
            if self.broker.proc.poll() is not None:
                self.crashes += 1
                self.crash_logs.append("exit %s: %s" % (self.broker.proc.returncode,
                                                        self.broker.log_text()[-4000:]))
                self.broker.stop()
                await asyncio.to_thread(self.broker.start)

    def phase(self, name):
        self.phases.append((now(), name))

    def phase_at(self, t):
        return ([name for start, name in self.phases if start <= t] or ["setup"])[-1]

    async def chaos(self, users):
        rng = random.Random(SEED)
        self.phase("warm-up")
        await self.traffic(4)
        self.phase("redis killed")
        self.redis.kill()
        await asyncio.sleep(1.5)
        await asyncio.to_thread(self.redis.start)
        await self.traffic(4)
        self.phase("redis paused")
        self.redis.pause()
        await asyncio.sleep(2.5)
        self.redis.resume()
        await self.traffic(4)
        self.phase("broker killed")
        self.broker.stop(signal.SIGKILL)
        await asyncio.to_thread(self.broker.start)
        await self.traffic(5)
        self.phase("redis rolled back")
        aside = os.path.join(self.tmp, "aof-copy")
        start = now()
        await asyncio.to_thread(self.redis.copy_data, aside)
        await self.traffic(4)
        self.redis.kill()
        # down for a second: every reply the old Redis gave has reached its client by then
        await asyncio.sleep(1.0)
        await asyncio.to_thread(self.redis.restart_from, aside)
        self.rollback = (start, now())
        self.phase("after the rollback")
        await self.traffic(5)
        self.phase("replays cut by a kill")
        await self.cut_replays(rng.sample(users, 30), kill=True)
        await self.traffic(4)
        self.phase("replays cut by a pause")
        await self.cut_replays(rng.sample(users, 30), kill=False)
        await self.traffic(4)
        self.phase("settling")

    async def cut_replays(self, users, kill):
        """USERS stay away while the others write to them, then come back together; when the
        first of them that is owed at least 5 messages has its login answered (its replay
        starts), Redis is killed (KILL) or paused for longer than redis_timeout."""
        for u in users:
            u.away = True
        await self.traffic(5)
        event = asyncio.Event()
        self.cut = (set(users), event, kill)
        for u in users:
            u.away = False
        try:
            await asyncio.wait_for(event.wait(), 20)
            self.count("replays cut")
        except asyncio.TimeoutError:  # no replay was long enough: checked all the same
            self.stop_redis(kill)
        self.cut = None
        await asyncio.sleep(2.0)
        if kill:
            await asyncio.to_thread(self.redis.start)
        else:
            self.redis.resume()

    def stop_redis(self, kill):
        if kill:
            self.redis.kill()
        else:
            self.redis.pause()

    async def settle(self, users):
        """Waits until every send got its 200 and every recipient was shown what it is owed;
        gives up after SETTLE_TIMEOUT, or after STALL seconds without any progress."""
        deadline = now() + SETTLE_TIMEOUT
        last, last_change = None, now()
        while now() < deadline and now() - last_change < STALL:
            state = (sum(len(u.outbox) for u in users), len(self.missing(users)))
            if state == (0, 0):
                return
            if state != last:
                last, last_change = state, now()
            await self.traffic(0.5)

    def missing(self, users):
        """[(phase, recipient, sender, body)] answered 200 in that phase, not shown, and not
        excused by the rollback."""
        start, end = self.rollback or (0, 0)
        out = []
        for u in users:
            for to, body, _, t in u.answered:
                shown = (u.name, body) in self.user(users, to).shown_content
                if not shown and not start <= t <= end:
                    out.append((self.phase_at(t), to, u.name, body))
        return out

    async def scenario(self):
        names = ["c%03d" % i for i in range(USERS)]
        self.names = names
        users = self.users = [User(self, n, i) for i, n in enumerate(names)]
        await asyncio.gather(*(self.register(u) for u in users))
        tasks = [asyncio.ensure_future(u.run()) for u in users]
        try:
            deadline = now() + 120
            while len(self.logged_in) < USERS and now() < deadline:
                await asyncio.sleep(0.1)
            self.assertEqual(len(self.logged_in), USERS, "not every user could log in")
            self.sending = True
            await self.chaos(users)
            self.sending = False
            await self.settle(users)
        finally:
            self.done = True
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return users

    async def register(self, u):
        conn = await connect(self.broker.port, u.on_push, src=u.src, timeout=60)
        try:
            r = await conn.call(dict(type="register", user=u.name, password=PASSWORD), 60)
            self.assertEqual(r["code"], 200, r)
        finally:
            conn.close()

    def test_every_answered_message_is_shown_once(self):
        started = now()
        users = asyncio.run(self.scenario())
        answered = sum(len(u.answered) for u in users)
        shown = sum(len(u.shown_order) for u in users)
        lost_in_rollback = 0
        if self.rollback is not None:
            start, end = self.rollback
            lost_in_rollback = sum(1 for u in users for to, body, _, t in u.answered
                                   if start <= t <= end and (u.name, body) not in
                                   self.user(users, to).shown_content)
        duplicates = shown - len({c for u in users for c in u.shown_content})
        replay_lines = [line for line in self.broker_log().splitlines()
                        if "mailbox replay of" in line]
        print("\n  [%.0f s: %d sends answered 200, %d shown, %d lost in the rollback window, "
              "%d shown twice after a retry, %d repeats unseen dropped, %d replays cut "
              "(broker log); %s]"
              % (now() - started, answered, shown, lost_in_rollback, duplicates,
                 sum(u.dropped_unseen for u in users), len(replay_lines),
                 ", ".join("%s: %d" % kv for kv in sorted(self.counts.items()))), end=" ")
        self.assertEqual(self.crashes, 0, "the broker died on its own:\n" +
                         "\n".join(self.crash_logs))
        self.assertEqual([u.name for u in users if u.outbox], [], "sends never answered 200")
        missing = self.missing(users)
        by_phase = {}
        for m in missing:
            by_phase[m[0]] = by_phase.get(m[0], 0) + 1
        self.assertEqual(missing[:10], [], "%d messages answered 200 never shown, by the phase "
                         "of their 200: %r" % (len(missing), by_phase))
        reused = [(u.name,) + r for u in users for r in u.reused]
        self.assertEqual(reused[:10], [], "%d mids reused for other messages" % len(reused))
        for u in users:
            self.assertEqual(u.shown_order, sorted(set(u.shown_order)), u.name)
        self.assertGreater(answered, 1000)

    def broker_log(self):
        with open(self.broker.log, errors="replace") as f:
            return f.read()

    @staticmethod
    def user(users, name):
        return users[int(name[1:])]


if __name__ == "__main__":
    unittest.main()
