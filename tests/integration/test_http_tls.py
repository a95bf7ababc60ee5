"""HTTPS and WSS on the HTTP listener (http_tls on, with tls_cert and tls_key): /metrics and
/healthz over HTTPS verified against the test CA, a clear request to the HTTPS port fails
without harming the broker, a WSS client chats with a plain TCP one, and http_tls without a
certificate is a configuration error."""
import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile

from harness import BROKER, BrokerTest, BrokersTest
from helpers import poll, uname
from tls_certs import Certs, make_server_cert
from mpwire import packb
from wsclient import BINARY, WsClient, encode

CERTS = None


def setUpModule():
    global CERTS
    CERTS = Certs(tempfile.mkdtemp(prefix="moonpost-https-"))


def tearDownModule():
    shutil.rmtree(CERTS.dir, ignore_errors=True)


def client_context():
    ctx = ssl.create_default_context(cafile=CERTS.ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def https_get(port, path):
    conn = http.client.HTTPSConnection("localhost", port, timeout=10, context=client_context())
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


class HttpTlsTest(BrokerTest):

    @classmethod
    def setUpClass(cls):
        cls.extra = ["http_tls on", "tls_cert %s" % CERTS.cert, "tls_key %s" % CERTS.key]
        super().setUpClass()

    def wss(self, **kw):
        c = WsClient(self.broker.http_port, ssl_context=client_context(), **kw)
        self.clients.append(c)
        return c

    def test_metrics_and_healthz_over_https(self):
        status, body = https_get(self.broker.http_port, "/healthz")
        self.assertEqual(status, 200, body)
        status, body = https_get(self.broker.http_port, "/metrics")
        self.assertEqual(status, 200, body)
        self.assertIn("moonpost_", body)

    def test_keep_alive_serves_two_requests_on_one_connection(self):
        conn = http.client.HTTPSConnection("localhost", self.broker.http_port, timeout=10,
                                           context=client_context())
        try:
            for path in ("/healthz", "/metrics"):
                conn.request("GET", path)
                r = conn.getresponse()
                self.assertEqual(r.status, 200)
                r.read()
        finally:
            conn.close()

    def test_clear_http_on_the_https_port_fails_and_the_broker_stays_up(self):
        s = socket.create_connection(("127.0.0.1", self.broker.http_port), timeout=10)
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            while True:  # the handshake fails: the connection ends, no HTTP answer comes
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            self.assertNotIn(b"HTTP/1.1 200", got)
        except ConnectionResetError:
            pass
        finally:
            s.close()
        self.assertEqual(https_get(self.broker.http_port, "/healthz")[0], 200)

    def test_wss_client_chats_with_a_tcp_client(self):
        user = uname("w")
        w = self.wss()
        r = w.call(dict(type="register", user=user, password="secret1"))
        self.assertEqual(r["code"], 200, r)
        r = w.call(dict(type="login", user=user, password="secret1"))
        self.assertEqual(r["code"], 200, r)
        t = self.login(uname("t"))
        r = w.call(dict(type="send", to=t.user, body="over wss"))
        self.assertEqual(r["code"], 200, r)
        self.assertTrue(r["online"])
        m = t.wait_push("msg")
        self.assertEqual((m["from"], m["body"], m["offline"]), (user, "over wss", False))
        r = t.call(dict(type="send", to=user, body=b"\x00bin"))
        self.assertEqual(r["code"], 200, r)
        m = w.wait_push("msg")
        self.assertEqual((m["from"], m["body"]), (t.user, b"\x00bin"))

    def test_a_frame_sent_with_the_upgrade_request_is_served(self):
        # decrypted with the request head, before the WebSocket session takes the connection
        c = self.wss(pipelined=encode(BINARY, packb(dict(type="ping", id=7))))
        r = c.wait_res(7)
        self.assertEqual(r["code"], 200, r)

    def test_many_pushes_to_a_wss_client_keep_order(self):
        user = uname("w")
        self.assertEqual(self.register(user)["code"], 200)
        w = self.wss()
        self.assertEqual(w.call(dict(type="login", user=user, password="secret1"))["code"], 200)
        t = self.login(uname("t"))
        for i in range(200):
            t.send(dict(type="send", to=user, body="m%d" % i, id=i))
        bodies = [w.wait_push("msg")["body"] for _ in range(200)]
        self.assertEqual(bodies, ["m%d" % i for i in range(200)])


def peer_cert(port):
    """The certificate (DER) the HTTPS listener on PORT presents."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with client_context().wrap_socket(s, server_hostname="localhost") as t:
            return t.getpeercert(binary_form=True)


def der(pem_path):
    with open(pem_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


class HttpTlsConfigTest(BrokersTest):

    def test_reload_renews_the_https_certificate(self):
        cert, key = os.path.join(self.dir, "live.pem"), os.path.join(self.dir, "live.key")
        shutil.copy(CERTS.cert, cert)
        shutil.copy(CERTS.key, key)
        b = self.broker(extra=["http_tls on", "tls_cert %s" % cert, "tls_key %s" % key])
        self.assertEqual(peer_cert(b.http_port), der(CERTS.cert))
        new_key, new_pem = make_server_cert(CERTS.dir, "renewed", CERTS.ca_key, CERTS.ca)
        shutil.copy(new_key, key)
        shutil.copy(new_pem, cert)
        b.proc.send_signal(signal.SIGHUP)
        poll(lambda: "reload: TLS certificate" in b.log_text(), 10, what="the reload in the log")
        self.assertEqual(peer_cert(b.http_port), der(new_pem))
        self.assertEqual(https_get(b.http_port, "/healthz")[0], 200)

    def test_supervisor_serves_https_too(self):
        # processes 2: the supervisor holds http_listen for the host's metrics and health
        b = self.broker(extra=["http_tls on", "tls_cert %s" % CERTS.cert,
                               "tls_key %s" % CERTS.key], start=False)
        b.logf = open(b.log, "ab")
        b.proc = subprocess.Popen([BROKER, "-c", b.conf, "--processes", "2"], stdout=b.logf,
                                  stderr=b.logf)
        poll(lambda: b.proc.poll() is None and https_get(b.http_port, "/healthz")[0] == 200, 30,
             what="the supervisor's /healthz over HTTPS", retry_on=(OSError,))
        status, body = https_get(b.http_port, "/metrics")
        self.assertEqual(status, 200, body)
        self.assertIn("moonpost_connections{", body)
        self.assertEqual(b.stop(), 0)

    def test_http_tls_without_certificate(self):
        b = self.broker(extra=["http_tls on"], start=False)
        rc = b.run_until_exit()
        log = b.log_text()
        self.assertEqual(rc, 2, log)
        with open(b.conf) as f:
            line = [i + 1 for i, text in enumerate(f) if text.startswith("http_tls ")][-1]
        self.assertIn("%s:%d: http_tls needs tls_cert and tls_key" % (b.conf, line), log)


if __name__ == "__main__":
    import unittest
    unittest.main()
