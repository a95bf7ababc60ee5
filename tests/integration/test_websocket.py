"""Integration tests of the WebSocket transport (PROTOCOL.md "Transports"): the handshake on
the HTTP listener's /ws with subprotocol `moonpost`, one binary message per frame body, the
framing rules (text 1003, too big 1009, fragments, ping/pong, close) and the chat over it,
against a real broker and a real redis-server."""
import os
import socket
import subprocess
import time
import unittest

from harness import BROKER, BrokerTest, BrokersTest, http_get, http_raw
from helpers import is_int, poll, uname
from mpwire import packb
from wsclient import (BINARY, CONT, PING, TEXT, HandshakeRefused, WsClient, encode,
                      request_head)

MAX_FRAME = 65536


class WsBase(BrokerTest):

    def ws(self, **kw):
        c = WsClient(self.broker.http_port, **kw)
        self.clients.append(c)
        return c

    def ws_login(self, user=None, password="secret1"):
        user = user or uname("w")
        self.assertEqual(self.register(user, password)["code"], 200)
        c = self.ws()
        r = c.call(dict(type="login", user=user, password=password))
        self.assertEqual(r["code"], 200, r)
        c.user, c.token = user, r["token"]
        return c

    def assert_bye_then_close(self, c, code, close_code):
        seen = c.expect_closed()
        byes = [f for f in seen if f.get("type") == "bye"]
        self.assertEqual(len(byes), 1, seen)
        self.assertEqual(byes[0]["code"], code, byes)
        self.assertEqual(seen[-1], byes[0], "nothing follows the bye: %r" % seen)
        self.assertEqual(c.close_code, close_code)


class HandshakeTest(WsBase):

    def test_upgrade_answers_101_with_the_subprotocol(self):
        c = self.ws()
        self.assertEqual(c.headers.get("sec-websocket-protocol"), "moonpost")
        self.assertEqual(c.headers.get("upgrade", "").lower(), "websocket")
        r = c.call(dict(type="ping"))
        self.assertEqual(r["code"], 200, r)
        self.assertTrue(is_int(r["ts"]), r)

    def test_subprotocol_among_others_is_chosen(self):
        c = self.ws(protocol="chat, moonpost")
        self.assertEqual(c.headers.get("sec-websocket-protocol"), "moonpost")

    def test_missing_or_wrong_subprotocol_is_refused(self):
        for protocol in (None, "mqtt", "moonpost2"):
            with self.assertRaises(HandshakeRefused) as e:
                self.ws(protocol=protocol)
            self.assertEqual(e.exception.status, 400, protocol)
            self.assertIn("moonpost", e.exception.head)

    def test_plain_get_of_ws_answers_426(self):
        status, body = http_get(self.broker.http_port, "/ws")
        self.assertEqual(status, 426)

    def test_wrong_version_or_key_is_refused(self):
        port = self.broker.http_port
        out = http_raw(port, request_head(port, "dGhlIHNhbXBsZSBub25jZQ==", version="8"))
        self.assertTrue(out.startswith(b"HTTP/1.1 400 "), out)
        out = http_raw(port, request_head(port, "short"))
        self.assertTrue(out.startswith(b"HTTP/1.1 400 "), out)

    def test_a_frame_sent_with_the_request_is_served(self):
        c = self.ws(pipelined=encode(BINARY, packb(dict(type="ping", id=7))))
        r = c.wait_res(7)
        self.assertEqual(r["code"], 200, r)

    def test_other_http_paths_still_work(self):
        self.ws()
        status, body = http_get(self.broker.http_port, "/healthz")
        self.assertEqual(status, 200, body)
        status, body = http_get(self.broker.http_port, "/metrics")
        self.assertEqual(status, 200)
        self.assertIn("moonpost_connections", body)


class FramingTest(WsBase):

    def test_text_message_closes_with_1003(self):
        c = self.ws()
        c.send_frame(TEXT, b'{"type":"ping"}')
        self.assert_bye_then_close(c, 400, 1003)

    def test_message_over_max_frame_closes_with_1009(self):
        c = self.ws()
        body = packb(dict(type="ping", pad="x" * MAX_FRAME))
        whole = encode(BINARY, body)
        c.send_raw(whole[:4096])  # the header says too much: nothing more is read
        self.assert_bye_then_close(c, 413, 1009)

    def test_fragments_over_max_frame_close_with_1009(self):
        c = self.ws()
        piece = b"\x00" * (MAX_FRAME // 2)
        c.send_frame(BINARY, piece, fin=False)
        c.send_frame(CONT, piece, fin=False)
        c.send_frame(CONT, b"\x00" * 10, fin=True)
        self.assert_bye_then_close(c, 413, 1009)

    def test_message_of_exactly_max_frame_is_read(self):
        c = self.ws()
        n = MAX_FRAME - len(packb(dict(type="ping", id=1, pad="")))
        while len(packb(dict(type="ping", id=1, pad="x" * n))) > MAX_FRAME:
            n -= 1  # the str header grows with the length
        body = packb(dict(type="ping", id=1, pad="x" * n))
        self.assertEqual(len(body), MAX_FRAME)
        c.send_frame(BINARY, body)
        self.assertEqual(c.wait_res(1)["code"], 200)

    def test_fragmented_message_with_a_ping_between_is_reassembled(self):
        c = self.ws()
        body = packb(dict(type="ping", id=5))
        c.send_frame(BINARY, body[:2], fin=False)
        c.send_frame(PING, b"between")
        c.send_frame(CONT, body[2:4], fin=False)
        c.send_frame(CONT, body[4:], fin=True)
        self.assertEqual(c.wait_res(5)["code"], 200)
        self.assertEqual(c.pongs, [b"between"])

    def test_frames_arriving_byte_by_byte_are_put_together(self):
        c = self.ws()
        data = (encode(BINARY, packb(dict(type="ping", id=1, pad="p" * 300))) +
                encode(PING, b"x") + encode(BINARY, packb(dict(type="ping", id=2))))
        for i in range(len(data)):
            c.send_raw(data[i:i + 1])
            if i % 7 == 0:
                time.sleep(0.001)  # lets the broker read the pieces apart
        self.assertEqual(c.wait_res(1)["code"], 200)
        self.assertEqual(c.wait_res(2)["code"], 200)
        self.assertEqual(c.pongs, [b"x"])

    def test_ping_is_answered_with_its_payload(self):
        c = self.ws()
        c.send_frame(PING, b"hello")
        c.send_frame(PING, b"")
        c.call(dict(type="ping"))
        self.assertEqual(c.pongs, [b"hello", b""])

    def test_client_close_is_answered_and_the_connection_ends(self):
        c = self.ws()
        c.call(dict(type="ping"))
        self.assertEqual(c.close_and_wait(1000), 1000)

    def test_logout_bye_is_followed_by_close_1000(self):
        c = self.ws_login()
        r = c.call(dict(type="logout"))
        self.assertEqual(r["code"], 200, r)
        seen = c.expect_closed()
        self.assertEqual(c.close_code, 1000, seen)

    def test_empty_message_is_an_empty_frame(self):
        c = self.ws()
        c.send_frame(BINARY, b"")
        self.assert_bye_then_close(c, 400, 1000)

    def test_malformed_bodies_count_like_tcp(self):
        c = self.ws()
        for i in range(2):
            c.send_frame(BINARY, b"\x93\x01\x02\x03")  # an array, not a map
            r = c.next()
            self.assertEqual((r["type"], r["code"]), ("res", 400), r)
        c.send_frame(BINARY, b"\x93\x01\x02\x03")
        seen = c.expect_closed()
        self.assertEqual([f["type"] for f in seen], ["res", "bye"], seen)
        self.assertEqual(seen[-1]["code"], 400)
        self.assertEqual(c.close_code, 1000)

    def test_unmasked_frame_closes_with_1002(self):
        c = self.ws()
        c.send_frame(BINARY, packb(dict(type="ping")), mask=False)
        self.assert_bye_then_close(c, 400, 1002)

    def test_continuation_without_a_start_closes_with_1002(self):
        c = self.ws()
        c.send_frame(CONT, packb(dict(type="ping")))
        self.assert_bye_then_close(c, 400, 1002)

    def test_frames_before_a_bad_one_are_served_first(self):
        c = self.ws()
        c.send_raw(encode(BINARY, packb(dict(type="ping", id=9))) + encode(TEXT, b"x"))
        seen = c.expect_closed()
        self.assertEqual([(f["type"], f.get("id")) for f in seen], [("res", 9), ("bye", None)],
                         seen)
        self.assertEqual(c.close_code, 1003)

    def test_before_login_other_types_answer_401(self):
        c = self.ws()
        r = c.call(dict(type="users"))
        self.assertEqual(r["code"], 401, r)


class ChatOverWebSocketTest(WsBase):

    def test_register_login_and_users(self):
        user = uname("w")
        c = self.ws()
        r = c.call(dict(type="register", user=user, password="secret1"))
        self.assertEqual(r["code"], 200, r)
        r = c.call(dict(type="login", user=user, password="secret1"))
        self.assertEqual(r["code"], 200, r)
        self.assertIsInstance(r["token"], str)
        self.assertIn(user, r["users"])

    def test_resume_with_the_token(self):
        a = self.ws_login()
        a.close()
        c = self.ws()
        r = c.call(dict(type="resume", user=a.user, token=a.token))
        self.assertEqual(r["code"], 200, r)

    def test_send_between_websocket_and_tcp_users(self):
        w = self.ws_login()
        t = self.login(uname("t"))
        r = w.call(dict(type="send", to=t.user, body="to tcp"))
        self.assertEqual(r["code"], 200, r)
        self.assertTrue(r["online"])
        m = t.wait_push("msg")
        self.assertEqual((m["from"], m["body"], m["offline"]), (w.user, "to tcp", False))
        r = t.call(dict(type="send", to=w.user, body=b"\x00bin"))
        self.assertEqual(r["code"], 200, r)
        m = w.wait_push("msg")
        self.assertEqual((m["from"], m["body"]), (t.user, b"\x00bin"))

    def test_offline_mail_is_pushed_after_login_and_acked(self):
        sender = self.ws_login()
        user = uname("off")
        self.assertEqual(self.register(user)["code"], 200)
        mids = []
        for i in range(3):
            r = sender.call(dict(type="send", to=user, body="m%d" % i))
            self.assertEqual(r["code"], 200, r)
            self.assertFalse(r["online"])
            mids.append(r["mid"])
        c = self.ws()
        self.assertEqual(c.call(dict(type="login", user=user, password="secret1"))["code"], 200)
        msgs = c.read_msgs(3)
        self.assertEqual([m["body"] for m in msgs], ["m0", "m1", "m2"])
        self.assertTrue(all(m["offline"] for m in msgs))
        self.assertEqual([m["mid"] for m in msgs], mids)
        self.assertEqual(c.call(dict(type="ack", upto=mids[-1]))["code"], 200)
        poll(lambda: self.mbox_count(user) == 0, what="mailbox emptied by ack")

    def test_broadcast_reaches_websocket_and_tcp_sessions(self):
        w1, w2 = self.ws_login(), self.ws_login()
        t = self.login(uname("t"))
        r = w1.call(dict(type="broadcast", body="hi all"))
        self.assertEqual(r["code"], 200, r)
        for x in (w2, t):
            f = x.wait_push("broadcast")
            self.assertEqual((f["from"], f["body"], f["mid"]), (w1.user, "hi all", r["mid"]))

    def test_login_elsewhere_closes_the_websocket_with_409(self):
        a = self.ws_login()
        c = self.ws()
        self.assertEqual(c.call(dict(type="login", user=a.user, password="secret1"))["code"], 200)
        self.assert_bye_then_close(a, 409, 1000)

    def test_many_pushes_to_a_websocket_keep_order(self):
        w = self.ws_login()
        t = self.login(uname("t"))
        for i in range(200):
            t.send(dict(type="send", to=w.user, body="n%d" % i), with_id=False)
        msgs = w.read_msgs(200)
        self.assertEqual([m["body"] for m in msgs], ["n%d" % i for i in range(200)])


class WebSocketLimitsTest(BrokersTest):

    def ws(self, b, **kw):
        c = WsClient(b.http_port, **kw)
        self.clients.append(c)
        return c

    def test_login_timeout_closes_with_bye_408_and_close_1000(self):
        b = self.broker(extra=["login_timeout 0.3"])
        c = self.ws(b)
        seen = c.expect_closed()
        self.assertEqual([(f["type"], f["code"]) for f in seen], [("bye", 408)])
        self.assertEqual(c.close_code, 1000)

    def test_max_connections_counts_websocket_sessions(self):
        b = self.broker(extra=["max_connections 2"])
        self.ws(b), self.ws(b)
        with self.assertRaises(HandshakeRefused) as e:
            self.ws(b)
        self.assertEqual(e.exception.status, 503)

    def test_slow_websocket_reader_is_dropped(self):
        b = self.broker(extra=["output_limit 65536"])
        c = WsClient(b.http_port)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.clients.append(c)
        r = c.call(dict(type="register", user="slow", password="secret1"))
        self.assertEqual(r["code"], 200)
        self.assertEqual(c.call(dict(type="login", user="slow", password="secret1"))["code"], 200)
        t = self.connect(b)
        t.call(dict(type="register", user="fast", password="secret1"))
        t.call(dict(type="login", user="fast", password="secret1"))
        for i in range(400):  # about 1.6 MB of broadcasts the reader never reads
            t.send(dict(type="broadcast", body="y" * 4000), with_id=False)
        t.call(dict(type="ping"))
        poll(lambda: "slow reader" in b.log_text(), what="slow reader dropped")
        seen = c.expect_closed(timeout=30)
        self.assertEqual(seen[-1]["type"], "bye", seen[-3:])
        self.assertEqual(seen[-1]["code"], 429)
        self.assertEqual(c.close_code, 1000)

    def test_websocket_off_answers_404(self):
        b = self.broker(extra=["websocket off"])
        with self.assertRaises(HandshakeRefused) as e:
            self.ws(b)
        self.assertEqual(e.exception.status, 404)

    def test_web_root_is_served_at_the_root(self):
        root = os.path.join(self.dir, "web")
        os.mkdir(root)
        with open(os.path.join(root, "index.html"), "w") as f:
            f.write("<!doctype html><title>moonpost</title>")
        with open(os.path.join(root, "app.js"), "w") as f:
            f.write("console.log(1)")
        b = self.broker(extra=["web_root %s" % root])
        status, body = http_get(b.http_port, "/")
        self.assertEqual((status, body), (200, "<!doctype html><title>moonpost</title>"))
        out = http_raw(b.http_port, b"GET /app.js?v=2 HTTP/1.0\r\n\r\n")
        self.assertIn(b"Content-Type: text/javascript", out)
        self.assertTrue(out.endswith(b"console.log(1)"), out)
        self.assertEqual(http_get(b.http_port, "/missing.js")[0], 404)
        self.assertEqual(http_get(b.http_port, "/../etc/passwd")[0], 404)

    def test_missing_web_root_is_a_config_error(self):
        b = self.broker(extra=["web_root %s" % os.path.join(self.dir, "nope")], start=False)
        check = subprocess.run([BROKER, "-c", b.conf, "-t"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=30)
        self.assertEqual(check.returncode, 2, check.stdout)
        self.assertIn(b"web_root", check.stdout)
        b.start(wait=False)
        self.assertEqual(b.run_until_exit(), 2)
        self.assertIn("web_root", b.log_text())


if __name__ == "__main__":
    unittest.main()
