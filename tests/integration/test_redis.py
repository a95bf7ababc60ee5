"""Integration tests of the Redis, worker and timer layer: mp.redis / mp.redis_batch reply
types, load, Redis outages and restarts, sessions that leave while their handler waits,
mp.pwhash / mp.pwverify on the worker pool, mp.sleep and mp.every.

The handlers are in lua/redis_test.lua (and lua/auth.lua for a logged-in session)."""
import os
import signal
import statistics
import threading
import time
import unittest

from harness import AUTH, REDIS_LUA, BrokerTest, admin_call, healthz, metrics
from helpers import poll
from mpwire import frame

SCRIPTS = ["ping", AUTH, REDIS_LUA]


def unique(prefix):
    return "%s:%d" % (prefix, time.time_ns())


def blocked_clients(redis):
    info = redis.cmd("INFO", "clients").decode()
    for line in info.splitlines():
        if line.startswith("blocked_clients:"):
            return int(line.split(":")[1])
    return 0


class RedisCase(BrokerTest):
    scripts = SCRIPTS

    def rcmd(self, c, *args, bin=False, timeout=10.0):
        msg = {"type": "t.redis", "args": list(args)}
        if bin:
            msg["bin"] = True
        return c.call(msg, timeout)

    def ok(self, c, *args, **kw):
        r = self.rcmd(c, *args, **kw)
        self.assertEqual(r["code"], 200, r)
        return r


class RedisTest(RedisCase):
    # the broker's default password hashing cost, heavier than the harness default; frames
    # with more than 1024 command words must reach the script; 100 hashes at once from one
    # address: no per-address share, and a queue of 30 s
    extra = ["pwhash_memory 19456", "pwhash_ops 2", "max_frame_values 4096",
             "pwhash_queue_per_addr 1000", "login_timeout 60"]

    # ---- reply types ----

    def test_status_reply(self):
        c = self.connect()
        r = self.ok(c, "SET", unique("st"), "v")
        self.assertEqual(r["r"], "OK")
        self.assertIs(r["isnil"], False)
        self.assertNotIn("err", r)
        self.assertEqual(self.ok(c, "PING")["r"], "PONG")

    def test_error_reply(self):
        c = self.connect()
        r = self.ok(c, "NOSUCHCOMMAND", "x")
        self.assertIs(r["isnil"], True)
        self.assertNotIn("r", r)
        self.assertEqual(set(r["err"]), {"code", "msg"})
        self.assertEqual(r["err"]["code"], 500)
        self.assertTrue(r["err"]["msg"].startswith("ERR unknown command"), r)
        key = unique("wt")
        self.ok(c, "SET", key, "string")
        r = self.ok(c, "LPUSH", key, "x")
        self.assertEqual(r["err"]["code"], 500)
        self.assertTrue(r["err"]["msg"].startswith("WRONGTYPE"), r)

    def test_integer_reply(self):
        c = self.connect()
        key = unique("int")
        self.assertEqual(self.ok(c, "INCR", key)["r"], 1)
        self.assertEqual(self.ok(c, "INCRBY", key, 41)["r"], 42)
        self.assertEqual(self.ok(c, "DECRBY", key, "100")["r"], -58)
        self.ok(c, "SET", key, str(2 ** 53 + 1))
        self.assertEqual(self.ok(c, "INCR", key)["r"], 2 ** 53 + 2)  # not through a double
        self.ok(c, "SET", key, str(-2 ** 62))
        self.assertEqual(self.ok(c, "DECR", key)["r"], -2 ** 62 - 1)

    def test_numbers_as_arguments_are_written_as_lua_writes_them(self):
        """Integers are printed by the host itself, floats by Lua: Redis stores the same text
        either way, in one command and in a batch."""
        c = self.connect()
        values = [(0, b"0"), (-7, b"-7"), (1796289531456, b"1796289531456"),
                  (2 ** 63 - 1, b"9223372036854775807"), (-2 ** 63, b"-9223372036854775808"),
                  (1.5, b"1.5"), (-0.25, b"-0.25")]
        for value, text in values:
            key = unique("num")
            self.ok(c, "SET", key, value)
            self.assertEqual(self.redis.cmd("GET", key), text, value)
        keys = [unique("numb") for _ in values]
        r = c.call({"type": "t.batch", "cmds": [["SET", k, v] for k, (v, _) in zip(keys, values)]})
        self.assertEqual(r["code"], 200, r)
        for k, (value, text) in zip(keys, values):
            self.assertEqual(self.redis.cmd("GET", k), text, value)
        # many integer words in one command: each keeps its own text
        key = unique("numl")
        self.ok(c, "RPUSH", key, *range(-500, 500))
        self.assertEqual(self.redis.cmd("LRANGE", key, "0", "-1"),
                         [str(i).encode() for i in range(-500, 500)])

    def test_bulk_string_reply(self):
        c = self.connect()
        key = unique("bulk")
        value = "h\u00e9llo w\u00f6rld \u2603 with a \x00 inside"
        self.ok(c, "SET", key, value)
        self.assertEqual(self.ok(c, "GET", key)["r"], value)
        self.assertEqual(self.redis.cmd("GET", key), value.encode())
        self.ok(c, "SET", key, "")
        r = self.ok(c, "GET", key)
        self.assertEqual(r["r"], "")
        self.assertIs(r["isnil"], False)

    def test_nil_reply(self):
        r = self.ok(self.connect(), "GET", unique("missing"))
        self.assertIs(r["isnil"], True)
        self.assertNotIn("r", r)
        self.assertNotIn("err", r)

    def test_array_replies(self):
        c = self.connect()
        key = unique("list")
        self.assertEqual(self.ok(c, "RPUSH", key, "a", "b", "c")["r"], 3)
        self.assertEqual(self.ok(c, "LRANGE", key, 0, -1)["r"], ["a", "b", "c"])
        self.assertEqual(self.ok(c, "LRANGE", unique("nolist"), 0, -1)["r"], [])  # [] not {}

    def test_nested_array_reply(self):
        script = ("return {1, 'two', {3, {'four', false}}, {}, redis.status_reply('FINE'), "
                  "-7}")
        r = self.ok(self.connect(), "EVAL", script, 0)
        self.assertEqual(r["r"], [1, "two", [3, ["four", False]], [], "FINE", -7])

    def test_binary_values_all_bytes(self):
        c = self.connect()
        value = bytes(range(256)) * 4
        key = unique("bin").encode() + b"\x00\xff\x80"
        self.assertEqual(self.ok(c, "SET", key, value)["r"], "OK")
        self.assertEqual(self.redis.cmd("GET", key), value)          # stored as sent
        r = self.ok(c, "GET", key, bin=True)
        self.assertEqual(r["r"], value)                               # read back as sent
        # inside arrays too
        hkey = unique("hbin")
        self.ok(c, "HSET", hkey, b"\xff\xfe", value, "plain", b"\x00")
        r = self.ok(c, "HMGET", hkey, b"\xff\xfe", "plain", "none", bin=True)
        self.assertEqual(r["r"], [value, b"\x00", False])
        # every single byte value alone
        lkey = unique("bytes")
        self.ok(c, "RPUSH", lkey, *[bytes([i]) for i in range(256)])
        r = self.ok(c, "LRANGE", lkey, 0, -1, bin=True)
        self.assertEqual(r["r"], [bytes([i]) for i in range(256)])

    def test_too_many_arguments(self):
        c = self.connect()
        r = self.rcmd(c, *(["RPUSH", unique("many")] + ["x"] * 1100))
        self.assertEqual(r["code"], 500, r)
        r = self.rcmd(c, "SET", unique("badarg"), True)
        self.assertEqual(r["code"], 500, r)
        self.assertEqual(self.ok(c, "PING")["r"], "PONG")

    # ---- batches ----

    def test_batch(self):
        c = self.connect()
        key = unique("batch")
        r = c.call({"type": "t.batch", "cmds": [["SET", key, "1"], ["INCR", key], ["GET", key],
                                                 ["GET", unique("none")], ["NOSUCH"],
                                                 ["RPUSH", key + ":l", "x", "y"],
                                                 ["LRANGE", key + ":l", 0, -1]]})
        self.assertEqual(r["code"], 200, r)
        self.assertNotIn("err", r)
        res = r["r"]
        self.assertEqual(len(res), 7)
        self.assertEqual(res[:4], ["OK", 2, "2", False])
        self.assertTrue(res[4]["err"].startswith("ERR unknown command"), res[4])
        self.assertEqual(res[5:], [2, ["x", "y"]])

    def test_multi_exec(self):
        c = self.connect()
        key = unique("multi")
        r = c.call({"type": "t.batch", "cmds": [["MULTI"], ["SET", key, "1"], ["INCR", key],
                                                 ["LPUSH", key, "x"], ["EXEC"]]})
        self.assertEqual(r["code"], 200, r)
        res = r["r"]
        self.assertEqual(res[:4], ["OK", "QUEUED", "QUEUED", "QUEUED"])
        self.assertEqual(res[4][:2], ["OK", 2])
        self.assertTrue(res[4][2]["err"].startswith("WRONGTYPE"), res)

    def test_concurrent_multi_exec_not_interleaved(self):
        key = unique("atomic")
        conns = [self.connect() for _ in range(5)]
        ids = []
        for c in conns:
            ids.append([c.send({"type": "t.batch", "cmds": [["MULTI"], ["INCR", key],
                                                            ["INCR", key], ["INCR", key],
                                                            ["EXEC"]]})
                        for _ in range(20)])
        seen = []
        for c, cids in zip(conns, ids):
            for rid in cids:
                r = c.wait_res(rid)
                self.assertEqual(r["code"], 200, r)
                execed = r["r"][4]
                self.assertEqual(execed, [execed[0], execed[0] + 1, execed[0] + 2], r)
                seen.extend(execed)
        self.assertEqual(sorted(seen), list(range(1, 301)))

    # ---- load ----

    def test_10000_concurrent_requests(self):
        key = unique("load")
        conns = [self.connect(timeout=60) for _ in range(50)]
        per = 200
        for c in conns:
            c.send_raw(b"".join(
                frame({"type": "t.redis", "id": i, "args": ["INCR", key]})
                for i in range(1, per + 1)))
        values = []
        for c in conns:
            for i in range(1, per + 1):
                r = c.wait_res(i, timeout=60)
                self.assertEqual(r["code"], 200, r)
                values.append(r["r"])
        self.assertEqual(len(values), 10000)
        self.assertEqual(sorted(values), list(range(1, 10001)))
        self.assertEqual(self.redis.cmd("GET", key), b"10000")

    # ---- sessions that leave while their handler waits ----

    def login(self, user):
        c = self.connect()
        self.assertEqual(c.call({"type": "t.login", "user": user})["code"], 200)
        return c

    def wait_offline(self, user):
        poll(lambda: user not in admin_call(self.broker, {"type": "admin.users"})["users"],
             what="%s offline" % user)

    def test_session_closed_while_waiting_on_redis(self):
        user, key = unique("u").replace(":", "_"), unique("wait")
        c = self.login(user)
        rid = c.send({"type": "t.slowredis", "key": key, "timeout": 4})
        poll(lambda: blocked_clients(self.redis) == 1, what="BLPOP blocked in Redis")
        c.close()
        self.clients.remove(c)
        self.wait_offline(user)
        # a new connection, likely in the freed slot, must not see the old request's reply
        d = self.connect()
        self.redis.cmd("LPUSH", key, "value")
        after = poll(lambda: self.redis.cmd("GET", key + ":after"), what="handler finished")
        self.assertEqual(after, b"gone,dropped")
        r = d.call({"type": "ping"})
        self.assertEqual(r["code"], 200)
        self.assertEqual(d.pushes, [])
        self.assertEqual(list(d.replies), [], "stray replies: %r (old id %s)" % (d.replies, rid))
        self.assertEqual(self.ok(d, "PING")["r"], "PONG")

    def test_sessions_closed_right_away_while_blpop_waits(self):
        keys = [unique("blpop%d" % i) for i in range(3)]
        for key in keys:
            c = self.connect()
            c.send({"type": "t.slowredis", "key": key, "timeout": 1})
            c.close()
            self.clients.remove(c)
        d = self.connect()
        self.assertEqual(d.call({"type": "ping"})["code"], 200)
        # queued behind the BLPOPs on the broker's Redis connection
        self.assertEqual(self.ok(d, "PING", timeout=20)["r"], "PONG")
        for key in keys:
            after = poll(lambda: self.redis.cmd("GET", key + ":after"), what="handler finished")
            self.assertTrue(after.endswith(b",dropped"), after)

    def test_session_closed_while_sleeping(self):
        user, key = unique("s").replace(":", "_"), unique("sleepgone")
        c = self.login(user)
        c.send({"type": "t.sleep", "seconds": 1.0, "key": key})
        c.close()
        self.clients.remove(c)
        self.wait_offline(user)
        self.assertEqual(poll(lambda: self.redis.cmd("GET", key), what="sleep finished"), b"gone")
        self.assertEqual(self.connect().call({"type": "ping"})["code"], 200)

    def test_session_closed_while_hashing(self):
        busy = self.connect()
        busy_ids = [busy.send({"type": "t.hash", "password": "occupy-%d" % i})
                    for i in range(4)]  # keeps both workers busy for a while
        user, key = unique("h").replace(":", "_"), unique("hashgone")
        c = self.login(user)
        c.send({"type": "t.hash", "password": "secret-pw", "key": key})
        c.close()
        self.clients.remove(c)
        self.wait_offline(user)
        self.assertIn(poll(lambda: self.redis.cmd("GET", key), what="hash finished", timeout=30),
                      (b"gone", b"connected", b"dropped"))
        for rid in busy_ids:
            self.assertEqual(busy.wait_res(rid, timeout=30)["code"], 200)
        self.assertEqual(self.connect().call({"type": "ping"})["code"], 200)

    # ---- worker pool ----

    def test_pwhash_pwverify(self):
        c = self.connect()
        r = c.call({"type": "t.hash", "password": "correct horse"}, timeout=30)
        self.assertEqual(r["code"], 200, r)
        h = r["hash"]
        self.assertTrue(h.startswith("$argon2id$"), h)
        self.assertIn("m=19456,t=2", h)
        r2 = c.call({"type": "t.hash", "password": "correct horse"}, timeout=30)
        self.assertNotEqual(r2["hash"], h, "no salt?")
        for password, expected in (("correct horse", True), ("correct horsE", False),
                                   ("", False), ("x" * 1024, False)):
            r = c.call({"type": "t.verify", "hash": h, "password": password}, timeout=30)
            self.assertEqual(r["code"], 200, r)
            self.assertIs(r["ok"], expected, password[:20])
        r = c.call({"type": "t.verify", "hash": "$argon2id$garbage", "password": "x"}, timeout=30)
        self.assertEqual((r["code"], r["ok"]), (200, False))
        r = c.call({"type": "t.verify", "hash": "x" * 500, "password": "x"}, timeout=30)
        self.assertEqual((r["code"], r["ok"]), (200, False))

    def test_hashing_does_not_stall_ping(self):
        n_hash = 100
        hashers = [self.connect(timeout=120) for _ in range(4)]
        for i, c in enumerate(hashers):  # logged in: no login timeout, 64 requests in flight
            self.assertEqual(c.call({"type": "t.login", "user": "hasher%d" % i})["code"], 200)
        pending = []
        for i in range(n_hash):
            c = hashers[i % len(hashers)]
            pending.append((c, c.send({"type": "t.hash", "password": "pw-%d" % i})))
        results, errors = [], []

        def collect():
            try:
                for c, rid in pending:
                    results.append(c.wait_res(rid, timeout=120))
            except Exception as e:  # reported below
                errors.append(e)

        reader = threading.Thread(target=collect)
        reader.start()
        pinger = self.connect()
        self.assertEqual(pinger.call({"type": "t.login", "user": "pinger"})["code"], 200)
        latencies = []
        t_start = time.time()
        while reader.is_alive() and time.time() - t_start < 120:
            t0 = time.perf_counter()
            r = pinger.call({"type": "ping"})
            latencies.append((time.perf_counter() - t0) * 1000)
            self.assertEqual(r["code"], 200, r)
            time.sleep(0.01)  # pacing: latency samples while the hashes run, not a flood
        reader.join(5)
        elapsed = time.time() - t_start
        self.assertFalse(errors, errors)
        self.assertEqual(len(results), n_hash)
        for r in results:
            self.assertEqual(r["code"], 200, r)
            self.assertTrue(r["hash"].startswith("$argon2id$"), r)
        self.assertTrue(latencies)
        print("\n  ping during %d argon2id hashes (m=19456 KiB, t=2, 2 workers, %.1f s): "
              "%d pings, median %.2f ms, max %.2f ms"
              % (n_hash, elapsed, len(latencies), statistics.median(latencies), max(latencies)),
              flush=True)

    # ---- timers ----

    def test_sleep_resumes(self):
        c = self.connect()
        t0 = time.time()
        r = c.call({"type": "t.sleep", "seconds": 0.2})
        self.assertEqual(r["code"], 200, r)
        self.assertGreaterEqual(r["after"] - r["before"], 190)
        self.assertGreaterEqual(time.time() - t0, 0.19)
        # a long sleep does not hold the loop: a later ping is answered first
        sid = c.send({"type": "t.sleep", "seconds": 1.5})
        pid = c.send({"type": "ping"})
        first = c.read_frame(10)
        self.assertEqual(first.get("id"), pid, first)
        self.assertEqual(c.wait_res(sid)["code"], 200)
        # zero seconds works too
        self.assertEqual(c.call({"type": "t.sleep", "seconds": 0})["code"], 200)

    def test_waiter_woken_before_its_wait(self):
        r = self.connect().call({"type": "t.waiter"})
        self.assertEqual(r["code"], 200, r)
        self.assertEqual((r["a"], r["b"], r["third_nil"]), (1, "two", True))
        self.assertEqual((r["wake_again"], r["wait_again"]), (False, False), r)

    def test_waiter_woken_by_another_request(self):
        """A request parks on mp.waiter until another wakes it with a value; the other cannot
        wait on it; a parked request whose session closed meanwhile is woken without harm."""
        c, d = self.connect(), self.connect()
        key, ready = unique("park"), unique("parkready")
        pid = c.send({"type": "t.park", "key": key, "ready": ready})
        poll(lambda: self.redis.cmd("GET", ready), what="parked")
        r = d.call({"type": "t.unpark", "key": key, "value": 42})
        self.assertEqual(r["code"], 200, r)
        self.assertIs(r["foreign_wait"], False)
        self.assertEqual(c.wait_res(pid)["value"], 42)
        key, ready, mark = unique("park"), unique("parkready"), unique("parkmark")
        user = unique("p").replace(":", "_")
        e = self.login(user)
        e.send({"type": "t.park", "key": key, "ready": ready, "mark": mark})
        poll(lambda: self.redis.cmd("GET", ready), what="parked")
        e.close()
        self.clients.remove(e)
        self.wait_offline(user)
        self.assertEqual(d.call({"type": "t.unpark", "key": key, "value": 1})["code"], 200)
        self.assertEqual(poll(lambda: self.redis.cmd("GET", mark), what="woken"), b"gone")
        self.assertEqual(self.connect().call({"type": "ping"})["code"], 200)

    def test_every_runs_repeatedly(self):
        c = self.connect()
        t0 = c.call({"type": "t.ticks"})["ticks"]
        poll(lambda: c.call({"type": "t.ticks"})["ticks"] >= t0 + 5, what="5 more ticks")
        r0 = int(self.redis.cmd("GET", "t:every") or 0)
        poll(lambda: int(self.redis.cmd("GET", "t:every") or 0) >= r0 + 5,
             what="5 more Redis increments from mp.every")


class RedisBatchArgumentErrorTest(RedisCase):
    """A batch whose later command has a bad argument, after earlier ones were sent. In its own
    class: a broker crash here must not fail the other tests."""

    def test_bad_argument_after_commands_were_sent(self):
        c = self.connect()
        key = unique("badbatch")
        for bad in (True, {"a": 1}):
            r = c.call({"type": "t.batch", "cmds": [["SET", key, "1"], ["INCR", key],
                                                     ["SET", key, bad]]})
            self.assertEqual(r["code"], 500, r)
            # the replies to the commands already sent arrive meanwhile: the broker lives on
            self.assertEqual(self.ok(c, "PING")["r"], "PONG")
        self.assertEqual(self.connect().call({"type": "ping"})["code"], 200)


class RedisBatchTooManyArgumentsTest(RedisCase):
    """Like RedisBatchArgumentErrorTest, with a command of more than 1024 arguments."""
    extra = ["max_frame_values 4096"]  # the frame carries more than 1024 command words

    def test_too_many_arguments_after_commands_were_sent(self):
        c = self.connect()
        r = c.call({"type": "t.batch", "cmds": [["SET", unique("many"), "1"],
                                                 ["RPUSH", "k"] + ["x"] * 1100]})
        self.assertEqual(r["code"], 500, r)
        self.assertEqual(self.ok(c, "PING")["r"], "PONG")


class RedisHangTest(RedisCase):
    """Redis stops answering (SIGSTOP): the command watchdog fails the waiting requests with 503
    after redis_timeout, and the broker is served again once Redis answers (SIGCONT)."""
    extra = ["redis_timeout 1"]

    def test_hung_redis_answers_503_then_recovers(self):
        c = self.connect()
        self.assertEqual(self.ok(c, "PING")["r"], "PONG")
        os.kill(self.redis.proc.pid, signal.SIGSTOP)
        try:
            ids = [c.send({"type": "t.redis", "args": ["INCR", unique("hang")]})
                   for _ in range(20)]
            for rid in ids:
                r = c.wait_res(rid, timeout=15)
                self.assertEqual(r["code"], 503, r)
            self.assertEqual(c.call({"type": "ping"})["code"], 200)
        finally:
            os.kill(self.redis.proc.pid, signal.SIGCONT)
        poll(lambda: self.rcmd(c, "PING", timeout=15)["code"] == 200, timeout=15,
             interval=0.2, what="Redis served again")
        self.assertIn("redis: no reply", self.broker.log_text())


class RedisOutageTest(RedisCase):
    """Redis killed under load, then restarted on the same port."""
    extra = ["redis_timeout 60"]  # only the kill may fail the commands, not the watchdog

    def test_killed_mid_load_then_restarted(self):
        key = unique("outage")
        # logged in first (a login waits for the cluster registry, which the BLPOP below
        # would hold up): 64 requests in flight each (4 before login)
        conns = [self.connect() for _ in range(10)]
        for i, c in enumerate(conns):
            self.assertEqual(c.call({"type": "t.login", "user": "outage%d" % i})["code"], 200)
        blocker = self.connect()
        bid = blocker.send({"type": "t.slowredis", "key": key, "timeout": 30})
        poll(lambda: blocked_clients(self.redis) == 1, what="BLPOP blocked in Redis")
        sent0 = metrics(self.broker)["moonpost_redis_commands_total"]
        ids = {c: [c.send({"type": "t.redis", "args": ["INCR", key + ":n"]}) for _ in range(50)]
               for c in conns}
        # every request has reached the broker's Redis connection (queued behind the BLPOP)
        poll(lambda: metrics(self.broker)["moonpost_redis_commands_total"] >= sent0 + 500,
             what="500 commands sent to Redis")
        self.redis.stop()
        codes = []
        for c, cids in ids.items():
            for rid in cids:
                codes.append(c.wait_res(rid, timeout=10)["code"])
        self.assertEqual(codes, [503] * 500)
        self.assertEqual(blocker.wait_res(bid, timeout=10)["code"], 503)
        # the loop is fine, and answers 503 while Redis is down
        for c in conns:
            self.assertEqual(c.call({"type": "ping"})["code"], 200)
        r = self.rcmd(conns[0], "PING")
        self.assertEqual(r["code"], 503, r)
        r = conns[0].call({"type": "t.batch", "cmds": [["PING"], ["PING"]]})
        self.assertEqual(r["code"], 503, r)
        self.assertEqual(healthz(self.broker), 503)
        # Redis comes back on the same port: served again, no broker restart
        self.redis.start()
        poll(lambda: self.rcmd(conns[0], "PING")["code"] == 200, timeout=10,
             interval=0.2, what="Redis served again")
        self.assertEqual(self.ok(conns[1], "INCR", key + ":n")["r"], 1)  # a fresh Redis
        self.assertEqual(healthz(self.broker), 200)
        self.assertGreaterEqual(metrics(self.broker)["moonpost_redis_reconnects_total"], 1)


class RedisDownAtStartTest(RedisCase):
    """The broker starts while Redis is down, then Redis appears."""
    start_redis = False

    def test_starts_without_redis_then_serves(self):
        c = self.connect()
        self.assertEqual(c.call({"type": "ping"})["code"], 200)
        r = self.rcmd(c, "PING")
        self.assertEqual(r["code"], 503, r)
        self.assertIsInstance(r["error"], str)
        self.assertEqual(c.call({"type": "t.batch", "cmds": [["PING"]]})["code"], 503)
        self.assertEqual(healthz(self.broker), 503)
        self.redis.start()
        poll(lambda: self.rcmd(c, "PING")["code"] == 200, timeout=10, interval=0.2,
             what="Redis served")
        self.assertEqual(self.ok(c, "SET", unique("up"), "1")["r"], "OK")
        self.assertEqual(healthz(self.broker), 200)


if __name__ == "__main__":
    unittest.main()
