"""Integration tests of the broker core: framing, the order of checks, the Lua host and its
sandbox, pushes and closing, output limits, timeouts, connection limits and IPv6.

Each class runs its own redis-server and broker (see harness.py); the Lua handlers used here
are in lua/auth.lua and lua/core_test.lua."""
import socket
import struct
import time
import unittest

from harness import AUTH, CORE_LUA, BrokerTest, Client, admin_call, metrics
from helpers import poll
from mpwire import frame, packb


def wrap(sock, timeout=10.0):
    """A harness Client around an already connected socket."""
    c = Client.__new__(Client)
    c.sock, c.buf, c.next_id, c.pushes, c.replies = sock, b"", 1, [], {}
    sock.settimeout(timeout)
    return c


def nested(depth_of_map):
    """A frame whose deepest container is at DEPTH_OF_MAP (the top-level map is depth 1)."""
    inner = []
    for _ in range(depth_of_map - 2):
        inner = [inner]
    return {"type": "ping", "id": 9, "deep": inner}


def lua_line(path, needle):
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if needle in line:
                return n
    raise AssertionError("%s not in %s" % (needle, path))


class CoreTest(BrokerTest):
    scripts = ["ping", AUTH, CORE_LUA]
    extra = ["output_limit 65536"]

    # ---- helpers ----

    def logged_in(self, user="alice"):
        c = self.connect()
        r = c.call({"type": "t.login", "user": user})
        self.assertEqual(r["code"], 200, r)
        return c

    def assert_alive(self):
        """A new connection still gets a ping answered."""
        c = self.connect()
        r = c.call({"type": "ping"})
        self.assertEqual(r["code"], 200, r)

    def assert_bye_then_closed(self, c, code):
        seen = c.expect_closed()
        self.assertTrue(seen, "closed without a bye")
        self.assertEqual(seen[-1]["type"], "bye", seen)
        self.assertEqual(seen[-1]["code"], code, seen)
        self.assertIsInstance(seen[-1].get("error"), str)
        return seen

    def malformed(self, body, expect_id=None):
        """Sends one malformed body on a fresh connection; returns the res (checked 400)."""
        c = self.connect()
        c.send_raw(frame(body))
        f = c.read_frame(10)
        self.assertEqual(f["type"], "res", f)
        self.assertEqual(f["code"], 400, f)
        self.assertIsInstance(f.get("error"), str)
        if expect_id is None:
            self.assertNotIn("id", f)
        else:
            self.assertEqual(f.get("id"), expect_id)
        # one malformed frame does not close the connection
        r = c.call({"type": "ping"})
        self.assertEqual(r["code"], 200, r)
        return f

    # ---- ping and the order of checks ----

    def test_ping(self):
        c = self.connect()
        before = time.time() * 1000
        r = c.call({"type": "ping"})
        after = time.time() * 1000
        self.assertEqual(r["type"], "res")
        self.assertEqual(r["code"], 200)
        self.assertNotIn("error", r)
        self.assertIsInstance(r["ts"], int)
        self.assertGreaterEqual(r["ts"], before - 2000)
        self.assertLessEqual(r["ts"], after + 2000)

    def test_ping_without_id_is_silent(self):
        c = self.connect()
        c.send({"type": "ping"}, with_id=False)
        rid = c.send({"type": "ping"})
        f = c.read_frame(10)
        self.assertEqual(f.get("id"), rid, "the ping without id was answered: %r" % f)
        self.assertEqual(f["code"], 200)

    def test_reply_carries_any_uint64_id(self):
        c = self.connect()
        for rid in (0, 1, 127, 128, 2 ** 32, 2 ** 63 - 1, 2 ** 63, 2 ** 63 + 5, 2 ** 64 - 1):
            c.send({"type": "ping", "id": rid})
            f = c.read_frame(10)
            self.assertEqual((f["type"], f["code"]), ("res", 200), f)
            self.assertEqual(f.get("id"), rid, "id %d came back as %r" % (rid, f.get("id")))
        # errors (answered by the core) too
        c.send({"type": "admin.stats", "id": 2 ** 64 - 2})
        f = c.read_frame(10)
        self.assertEqual((f["code"], f.get("id")), (403, 2 ** 64 - 2))

    def test_admin_socket_serves_ping_and_admin_types_only(self):
        admin = Client(None, path=self.broker.admin)
        self.clients.append(admin)
        self.assertEqual(admin.call({"type": "ping"})["code"], 200)
        self.assertEqual(admin.call({"type": "t.private"})["code"], 403)
        self.assertEqual(admin.call({"type": "t.login", "user": "x"})["code"], 403)
        r = admin.call({"type": "admin.stats"})
        self.assertEqual(r["code"], 200, r)
        self.assertEqual(r["redis"], "connected")

    def test_error_without_id_is_answered_without_id(self):
        c = self.connect()
        c.send({"type": "no.such.type"}, with_id=False)
        f = c.read_frame(10)
        self.assertEqual(f["type"], "res")
        self.assertEqual(f["code"], 401)
        self.assertNotIn("id", f)

    def test_unknown_type_before_login_401(self):
        c = self.connect()
        r = c.call({"type": "no.such.type"})
        self.assertEqual(r["code"], 401, r)
        self.assertIsInstance(r["error"], str)

    def test_known_type_needing_login_401(self):
        c = self.connect()
        self.assertEqual(c.call({"type": "t.private"})["code"], 401)
        self.assertEqual(c.call({"type": "t.login", "user": "bob"})["code"], 200)
        r = c.call({"type": "t.private"})
        self.assertEqual(r["code"], 200, r)
        self.assertEqual(r["user"], "bob")

    def test_unknown_type_after_login_404(self):
        c = self.logged_in("carol")
        r = c.call({"type": "no.such.type"})
        self.assertEqual(r["code"], 404, r)
        self.assertIsInstance(r["error"], str)
        # still connected
        self.assertEqual(c.call({"type": "ping"})["code"], 200)

    def test_admin_types_on_client_port_403(self):
        c = self.connect()
        for t in ("admin.stats", "admin.shutdown", "admin.nonexistent"):
            self.assertEqual(c.call({"type": t})["code"], 403, t)
        c2 = self.logged_in("dave")
        self.assertEqual(c2.call({"type": "admin.shutdown"})["code"], 403)
        self.assertEqual(c2.call({"type": "admin.reload"})["code"], 403)
        self.assert_alive()

    def test_unknown_keys_ignored(self):
        c = self.connect()
        r = c.call({"type": "ping", "zzz": {"a": [1, 2, {"b": None}]}, "flag": True,
                    "blob": b"\x00\xff", "f": 1.5})
        self.assertEqual(r["code"], 200, r)
        self.assertIn("ts", r)
        r = c.call({"type": "t.echo", "future": "field", "n": -3})
        self.assertEqual(r["code"], 200, r)
        self.assertEqual(r["echo"]["future"], "field")
        self.assertEqual(r["echo"]["n"], -3)

    # ---- framing ----

    def test_length_zero_bye_400(self):
        c = self.connect()
        c.send_raw(struct.pack(">I", 0))
        self.assert_bye_then_closed(c, 400)
        self.assert_alive()

    def test_length_over_max_frame_bye_413(self):
        c = self.connect()
        c.send_raw(struct.pack(">I", 65537))  # the header alone is enough
        self.assert_bye_then_closed(c, 413)
        self.assert_alive()

    def test_max_frame_body_accepted(self):
        c = self.connect()
        msg = {"type": "ping", "id": 1, "pad": ""}
        pad = 65536 - len(packb(msg)) - 2  # str 16 header grows the pad by 2 bytes
        msg["pad"] = "p" * pad
        body = packb(msg)
        self.assertEqual(len(body), 65536)
        c.send_raw(frame(body))
        r = c.wait_res(1)
        self.assertEqual(r["code"], 200, r)

    def test_body_not_a_map(self):
        self.malformed(packb([1, 2, 3]))
        self.malformed(packb("ping"))

    def test_trailing_bytes(self):
        self.malformed(packb({"type": "ping", "id": 7}) + b"\xc0", expect_id=7)

    def test_depth_33_rejected(self):
        self.malformed(packb(nested(33)), expect_id=9)

    def test_depth_32_accepted(self):
        c = self.connect()
        c.send_raw(frame(nested(32)))
        r = c.wait_res(9)
        self.assertEqual(r["code"], 200, r)
        # and the handler sees every level
        msg = nested(32)
        msg.update(type="t.depth", id=10)
        c.send_raw(frame(msg))
        r = c.wait_res(10)
        self.assertEqual(r["code"], 200, r)
        self.assertEqual(r["depth"], 31)  # map (1) > deep (2) ... innermost array (32)

    def test_non_string_key(self):
        body = b"\x83" + packb(1) + packb("x") + packb("type") + packb("ping") + \
            packb("id") + packb(5)
        self.malformed(body, expect_id=5)

    def test_type_missing(self):
        self.malformed(packb({"id": 3, "x": 1}), expect_id=3)

    def test_type_not_a_str(self):
        self.malformed(packb({"type": 5, "id": 4}), expect_id=4)
        self.malformed(packb({"type": b"ping", "id": 6}), expect_id=6)

    def test_id_negative(self):
        self.malformed(packb({"type": "ping", "id": -1}))

    def test_id_not_an_integer(self):
        self.malformed(packb({"type": "ping", "id": "1"}))
        self.malformed(packb({"type": "ping", "id": 1.0}))

    def test_truncated_body(self):
        self.malformed(packb({"type": "ping", "id": 2})[:-1])

    def test_huge_array_in_small_body(self):
        self.malformed(b"\xdd\xff\xff\xff\xff")         # an array of 2^32-1 items in 5 bytes
        self.malformed(b"\xdf\xff\xff\xff\xff")         # a map of 2^32-1 pairs
        body = b"\x83" + packb("type") + packb("ping") + packb("id") + packb(8) + \
            packb("x") + b"\xdd\xff\xff\xff\xff"
        self.malformed(body, expect_id=8)
        self.assert_alive()

    def test_third_malformed_frame_closes(self):
        c = self.connect()
        c.send_raw(frame(packb([1])))
        self.assertEqual(c.read_frame(10)["code"], 400)
        c.send_raw(frame(packb({"type": 1, "id": 11})))
        f = c.read_frame(10)
        self.assertEqual((f["code"], f.get("id")), (400, 11))
        # still served between the malformed frames
        self.assertEqual(c.call({"type": "ping"})["code"], 200)
        c.send_raw(frame(packb({"id": 12})))
        seen = c.expect_closed()
        self.assertEqual(len(seen), 2, seen)
        self.assertEqual((seen[0]["type"], seen[0]["code"], seen[0].get("id")), ("res", 400, 12))
        self.assertEqual((seen[1]["type"], seen[1]["code"]), ("bye", 400))
        self.assert_alive()

    def test_frame_split_byte_by_byte(self):
        c = self.connect()
        data = frame({"type": "ping", "id": 21}) + frame({"type": "ping", "id": 22})
        for i in range(len(data)):
            c.send_raw(data[i:i + 1])
            time.sleep(0.002)  # pacing is the point: each byte comes to the broker on its own
        self.assertEqual(c.wait_res(21)["code"], 200)
        self.assertEqual(c.wait_res(22)["code"], 200)

    def test_many_frames_in_one_send(self):
        c = self.connect()
        n = 400  # request_burst: more at once is answered 429 (see test_attack_net)
        c.send_raw(b"".join(frame({"type": "ping", "id": i}) for i in range(1, n + 1)))
        for i in range(1, n + 1):
            self.assertEqual(c.wait_res(i)["code"], 200, i)
        self.assertEqual(c.pushes, [])

    def test_frames_in_one_send_with_split_tail(self):
        c = self.connect()
        data = b"".join(frame({"type": "ping", "id": i}) for i in range(1, 11))
        c.send_raw(data[:-3])
        self.assertEqual(c.wait_res(9)["code"], 200)
        c.send_raw(data[-3:])
        self.assertEqual(c.wait_res(10)["code"], 200)

    # ---- the Lua host ----

    def test_handler_error_500_and_logged_with_file_line(self):
        c = self.connect()
        r = c.call({"type": "t.error"})
        self.assertEqual(r["code"], 500, r)
        self.assertIsInstance(r["error"], str)
        line = lua_line(CORE_LUA, 'error("boom from t.error")')
        want = "core_test.lua:%d: boom from t.error" % line
        poll(lambda: want in self.broker.log_text(), what="%r in the log" % want)
        self.assertEqual(c.call({"type": "ping"})["code"], 200)

    def test_instruction_budget(self):
        c = self.connect()
        rid = c.send({"type": "t.loop"})
        r = c.wait_res(rid, timeout=30)
        self.assertEqual(r["code"], 500, r)
        self.assertEqual(c.call({"type": "ping"})["code"], 200)
        self.assert_alive()
        self.assertIn("instruction budget", self.broker.log_text())

    def test_sandbox(self):
        c = self.connect()
        r = c.call({"type": "t.sandbox"})
        self.assertEqual(r["code"], 200, r)
        for name in ("io", "debug", "os_execute", "os_exit", "os_getenv", "os_remove",
                     "loadfile", "dofile", "require_io", "require_debug"):
            self.assertIs(r[name], False, "%s is reachable from a handler" % name)
        self.assertIs(r["os_time"], True)

    def test_load_refuses_binary_chunks(self):
        r = self.connect().call({"type": "t.load"})
        self.assertEqual(r["code"], 200, r)
        for name in ("bin_1", "bin_2", "bin_3b", "bin_3bt", "bin_4"):
            self.assertNotEqual(r[name], "function", "%s: a binary chunk was loaded" % name)

    def test_load_of_text_works(self):
        """load() stays usable for text chunks with 1, 2, 3 or 4 arguments."""
        r = self.connect().call({"type": "t.load"})
        self.assertEqual(r["code"], 200, r)
        got = {k: r[k] for k in ("text_1", "text_2", "text_3", "text_4")}
        self.assertEqual(got, dict.fromkeys(got, "function"))

    def test_no_global_function_loads_binary_chunks(self):
        r = self.connect().call({"type": "t.loaders"})
        self.assertEqual(r["code"], 200, r)
        self.assertEqual(r["loaders"], [],
                         "global functions that load binary chunks: %r" % r["loaders"])

    def test_unencodable_reply_answered_500(self):
        c = self.connect()
        for what in ("function", "cycle"):
            rid = c.send({"type": "t.badreply", "what": what})
            r = c.wait_res(rid, timeout=5)
            self.assertEqual(r["code"], 500, r)
        self.assertEqual(c.call({"type": "ping"})["code"], 200)

    def test_log_and_print(self):
        marker = "mark%d" % time.time_ns()
        r = self.connect().call({"type": "t.log", "marker": marker})
        self.assertEqual(r["code"], 200, r)
        line = lua_line(CORE_LUA, "t.log mp.log line")
        poll(lambda: marker + "-print" in self.broker.log_text(), what="the print in the log")
        lines = [l for l in self.broker.log_text().splitlines() if marker in l]
        self.assertEqual(len(lines), 2, lines)
        self.assertIn(" WARN ", lines[0])
        self.assertTrue(lines[0].endswith("core_test.lua:%d: %s 42" % (line, marker)), lines[0])
        self.assertIn(" INFO ", lines[1])
        self.assertTrue(lines[1].endswith("lua: %s-print\t43" % marker), lines[1])

    def test_push_then_reply(self):
        c = self.connect()
        rid = c.send({"type": "t.push", "n": 42})
        first = c.read_frame(10)
        self.assertEqual(first, {"type": "t.note", "n": 42})
        r = c.read_frame(10)
        self.assertEqual((r["type"], r.get("id"), r["code"]), ("res", rid, 200))
        self.assertIs(r["pushed"], True)

    def test_close_with_code(self):
        c = self.connect()
        c.send({"type": "t.close", "code": 403, "msg": "go away"})
        seen = c.expect_closed()
        self.assertEqual(seen, [{"type": "bye", "code": 403, "error": "go away"}])
        self.assert_alive()

    def test_close_without_code(self):
        c = self.connect()
        c.send({"type": "t.close"})
        self.assertEqual(c.expect_closed(), [])

    def test_second_login_of_a_user_closes_the_first(self):
        first = self.logged_in("twice")
        second = self.logged_in("twice")
        seen = first.expect_closed()
        self.assertEqual([(f["type"], f.get("code")) for f in seen], [("bye", 409)], seen)
        r = second.call({"type": "t.private"})
        self.assertEqual((r["code"], r["user"]), (200, "twice"))

    def test_slow_reader_dropped(self):
        before = admin_call(self.broker, {"type": "admin.stats"})["slow_consumers"]
        slow = socket.create_connection(("127.0.0.1", self.broker.port))
        self.addCleanup(slow.close)
        slow.sendall(frame({"type": "t.flood", "id": 1, "count": 2000, "size": 1024}))
        # the broker stays responsive to others meanwhile
        other = self.connect()
        self.assertEqual(other.call({"type": "ping"})["code"], 200)

        def slow_consumer_counted():
            st = admin_call(self.broker, {"type": "admin.stats"})
            return st if st["slow_consumers"] > before else None
        stats = poll(slow_consumer_counted, timeout=30, what="the slow consumer counted")
        self.assertEqual(stats["slow_consumers"], before + 1, stats)
        self.assertGreaterEqual(metrics(self.broker)["moonpost_slow_consumers_dropped_total"],
                                before + 1)
        self.assertEqual(other.call({"type": "ping"})["code"], 200)
        # the slow client, reading at last, finds a cut stream ending in bye 429 and EOF
        seen = wrap(slow).expect_closed()
        self.assertTrue(seen)
        self.assertEqual((seen[-1]["type"], seen[-1]["code"]), ("bye", 429), seen[-1])
        floods = [f for f in seen if f["type"] == "t.flood"]
        self.assertLess(len(floods), 2000)
        self.assertLessEqual(len(floods) * 1024, 65536 + 2048)
        self.assertFalse([f for f in seen if f["type"] == "res"], "reply after the drop")
        self.assert_alive()


class InFlight:
    """Handlers in flight on one connection (SESSION_MAX_INFLIGHT = 64). Each test has its own
    class, so a broker crash in one does not fail the others."""
    scripts = ["ping", AUTH, CORE_LUA]

    def assert_alive(self):
        c = self.connect()
        self.assertEqual(c.call({"type": "ping"})["code"], 200)

    def read_replies(self, c, ids, timeout=20.0):
        """Reads until every id in IDS is answered; fails on a duplicate or unknown id."""
        got = {}
        deadline = time.time() + timeout
        while len(got) < len(ids):
            f = c.read_frame(max(0.1, deadline - time.time()))
            self.assertEqual(f["type"], "res", f)
            self.assertIn(f.get("id"), ids, "reply to an id never sent: %r" % f)
            self.assertNotIn(f["id"], got, "second reply for id %s" % f["id"])
            got[f["id"]] = f
        return got


class InFlightAsyncTest(InFlight, BrokerTest):
    def test_150_waiting_handlers(self):
        """Reading pauses at 64 waiting handlers and resumes as they finish."""
        c = self.connect()
        c.send_raw(b"".join(frame({"type": "t.wait", "id": i, "seconds": 0.2})
                            for i in range(1, 151)))
        got = self.read_replies(c, set(range(1, 151)))
        self.assertTrue(all(f["code"] == 200 for f in got.values()), got)
        self.assert_alive()


class InFlightSyncTest(InFlight, BrokerTest):
    def test_sync_handler_with_63_in_flight(self):
        """A handler that finishes at once while 63 others wait: each frame runs once."""
        c = self.connect()
        waits = [frame({"type": "t.wait", "id": i, "seconds": 0.5}) for i in range(1, 64)]
        pings = [frame({"type": "ping", "id": i}) for i in (100, 101, 102)]
        c.send_raw(b"".join(waits + pings))
        got = self.read_replies(c, set(range(1, 64)) | {100, 101, 102})
        self.assertTrue(all(f["code"] == 200 for f in got.values()), got)
        self.assert_alive()


class InFlightPauseTest(InFlight, BrokerTest):
    def test_more_than_64_in_flight(self):
        """Reading pauses at 64 handlers in flight and resumes; nothing is lost or repeated."""
        c = self.connect()
        data = []
        ids = set()
        for i in range(1, 151):
            ids.add(i)
            if i % 3 == 0:
                data.append(frame({"type": "ping", "id": i}))
            else:
                data.append(frame({"type": "t.wait", "id": i, "seconds": 0.2}))
        c.send_raw(b"".join(data))
        got = self.read_replies(c, ids)
        self.assertTrue(all(f["code"] == 200 for f in got.values()), got)
        self.assert_alive()


class TimeoutTest(BrokerTest):
    scripts = ["ping", AUTH, CORE_LUA]
    extra = ["idle_timeout 1", "login_timeout 1"]

    def test_idle_timeout_408(self):
        c = self.connect()
        self.assertEqual(c.call({"type": "t.login", "user": "idler"})["code"], 200)
        start = time.time()
        seen = c.expect_closed(timeout=6)
        self.assertEqual([(f["type"], f.get("code")) for f in seen], [("bye", 408)], seen)
        self.assertIn("idle", seen[0]["error"])
        self.assertLess(time.time() - start, 6)

    def keep_sending(self, c, data, seconds=6.0, every=0.3):
        """Sends DATA every EVERY seconds while reading; returns (first non-res frame or None,
        replies seen, seconds until it came)."""
        start = time.time()
        replies = []
        while time.time() - start < seconds:
            try:
                c.send_raw(data)
            except OSError:
                pass  # closed meanwhile: what it sent before is still to be read
            end = time.time() + every
            while time.time() < end:
                try:
                    f = c.read_frame(max(0.01, end - time.time()))
                except socket.timeout:
                    break
                except (EOFError, ConnectionResetError):
                    return None, replies, time.time() - start
                if f["type"] != "res":
                    return f, replies, time.time() - start
                replies.append(f)
        return None, replies, time.time() - start

    def test_login_timeout_408_despite_pings(self):
        c = self.connect()
        bye, replies, took = self.keep_sending(c, frame({"type": "ping", "id": 1}))
        self.assertIsNotNone(bye, "no bye within %.1f s of pings (%d answered)"
                             % (took, len(replies)))
        self.assertEqual((bye["type"], bye["code"]), ("bye", 408), bye)
        self.assertIn("login", bye["error"])
        self.assertTrue(replies)
        self.assertTrue(all(f["code"] == 200 for f in replies), replies)
        self.assertLessEqual(len(replies), 10, "the pings moved the login deadline")

    def test_login_timeout_while_trickling_a_frame(self):
        """An anonymous client that sends a big frame one byte at a time is still held to
        the login deadline."""
        c = self.connect()
        c.send_raw(struct.pack(">I", 1000))
        bye, _, took = self.keep_sending(c, b"\x00")
        self.assertIsNotNone(bye, "no bye %.1f s after a 1 s login timeout" % took)
        self.assertEqual((bye["type"], bye["code"]), ("bye", 408), bye)

    def test_logged_in_session_with_traffic_stays(self):
        c = self.connect()
        self.assertEqual(c.call({"type": "t.login", "user": "chatty"})["code"], 200)
        start = time.time()
        while time.time() - start < 2.5:  # past both the login and the idle timeout
            self.assertEqual(c.call({"type": "ping"})["code"], 200)
            time.sleep(0.3)  # pacing is the point: traffic spread past both timeouts


class MaxConnectionsTest(BrokerTest):
    scripts = ["ping", AUTH]
    extra = ["max_connections 5"]

    def wait_ping(self, timeout=30.0):
        """The reply to a ping on a new connection kept open, once the broker has a place for
        it (it lets go of a closed connection a little after the client has closed it)."""
        def ping_on_a_new_connection():
            c = Client(self.broker.port)
            try:
                f = c.call({"type": "ping"}, timeout=2)
            except (OSError, EOFError):
                c.close()
                raise
            self.clients.append(c)
            return f
        return poll(ping_on_a_new_connection, timeout, what="a ping served on a new connection",
                    retry_on=(OSError, EOFError))

    def test_sixth_connection_gets_bye_503(self):
        first = [self.wait_ping() for _ in range(5)]
        self.assertTrue(all(f["code"] == 200 for f in first))
        sixth = self.connect()
        seen = sixth.expect_closed()
        self.assertEqual(len(seen), 1, seen)
        self.assertEqual((seen[0]["type"], seen[0]["code"]), ("bye", 503), seen)
        # the five are still served
        for c in self.clients[:5]:
            self.assertEqual(c.call({"type": "ping"})["code"], 200)
        # a freed place is taken again
        self.clients[0].close()
        self.clients.pop(0)
        self.assertEqual(self.wait_ping()["code"], 200)

    def test_admin_connection_is_not_a_client_connection(self):
        admin = Client(None, path=self.broker.admin)
        self.addCleanup(admin.close)
        self.assertEqual(admin.call({"type": "admin.stats"})["code"], 200)
        for _ in range(5):
            self.assertEqual(self.wait_ping()["code"], 200)


class IPv6Test(BrokerTest):
    scripts = ["ping"]
    v6_port = None

    @classmethod
    def setUpClass(cls):
        cls.v6_port = cls.free_v6_port()
        cls.extra = ["listen [::1]:%d" % cls.v6_port]
        super().setUpClass()

    @staticmethod
    def free_v6_port():
        try:
            with socket.socket(socket.AF_INET6) as s:
                s.bind(("::1", 0))
                return s.getsockname()[1]
        except OSError as e:  # reported as a skip, with the reason, by unittest
            raise unittest.SkipTest("this host has no IPv6 loopback: %s" % e)

    def test_ping_over_ipv6(self):
        c = Client(self.v6_port, host="::1")
        self.clients.append(c)
        self.assertEqual(c.sock.family, socket.AF_INET6)
        r = c.call({"type": "ping"})
        self.assertEqual(r["code"], 200, r)
        self.assertIn("ts", r)
        # and the first listen address still works
        self.assertEqual(self.connect().call({"type": "ping"})["code"], 200)


if __name__ == "__main__":
    unittest.main()
