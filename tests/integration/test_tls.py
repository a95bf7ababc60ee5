"""TLS on the client port (tls_listen, tls_cert, tls_key): the chat tests again over TLS with
Python's ssl module; the wrong port for the protocol (clear on the TLS port, TLS on the clear
one) fails cleanly; stalled handshakes cost nothing but their slots and end at login_timeout;
a renewed certificate is taken at reload while open sessions stay; bad certificate files are
configuration errors."""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import unittest

import harness
import test_chat_broadcast as broadcast
import test_chat_login as login
import test_chat_messaging as messaging
import test_chat_register as register
from harness import BrokersTest, Client, admin_call, free_port
from helpers import poll, uname
from mpwire import frame
from tls_certs import Certs, make_server_cert

CERTS = None
CHAT = os.path.join(harness.BUILD, "clients", "c", "moonpost-chat")


def setUpModule():
    global CERTS
    CERTS = Certs(tempfile.mkdtemp(prefix="moonpost-tls-"))


def tearDownModule():
    shutil.rmtree(CERTS.dir, ignore_errors=True)


def tls_lines(port, cert=None, key=None):
    return ["tls_listen 127.0.0.1:%d" % port, "tls_cert %s" % (cert or CERTS.cert),
            "tls_key %s" % (key or CERTS.key)]


def client_context(ca=None):
    ctx = ssl.create_default_context(cafile=ca or CERTS.ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class TlsClient(Client):
    """A harness Client whose socket speaks TLS (the handshake runs in the constructor)."""

    def __init__(self, port, ca=None, **kw):
        super().__init__(port, **kw)
        self.sock = client_context(ca).wrap_socket(self.sock, server_hostname="localhost")


class OverTls:
    """Mixed in before a chat test class: its broker also listens with TLS and every
    connection the tests make goes there."""

    @classmethod
    def setUpClass(cls):
        cls.tls_port = free_port()
        cls.extra = list(cls.extra or []) + tls_lines(cls.tls_port)
        super().setUpClass()

    def connect(self, **kw):
        c = TlsClient(self.tls_port, **kw)
        self.clients.append(c)
        return c


class RegisterOverTlsTest(OverTls, register.RegisterTest):
    pass


class LoginOverTlsTest(OverTls, login.LoginTest):
    pass


class SendOverTlsTest(OverTls, messaging.SendTest):
    pass


class BroadcastOverTlsTest(OverTls, broadcast.BroadcastTest):
    pass


def closed_without_frames(sock, timeout=10.0):
    """Reads SOCK until the broker closes it; returns the bytes seen."""
    sock.settimeout(timeout)
    seen = b""
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return seen
        if not data:
            return seen
        seen += data


class TlsBrokerTest(BrokersTest):
    """Each test starts its own broker with a TLS port (and stops it cleanly at the end)."""

    def tls_broker(self, extra=None, cert=None, key=None):
        port = free_port()
        b = self.broker(extra=tls_lines(port, cert, key) + (extra or []))
        b.tls_port = port
        return b

    def tls_connect(self, b, ca=None):
        c = TlsClient(b.tls_port, ca=ca)
        self.clients.append(c)
        return c

    def chat_login(self, c, user):
        self.assertEqual(c.call(dict(type="register", user=user, password="secret1"))["code"], 200)
        r = c.call(dict(type="login", user=user, password="secret1"))
        self.assertEqual(r["code"], 200, r)
        c.user = user
        return c

    def assert_serves(self, b):
        """A fresh TLS client can log in and message itself through B."""
        c = self.chat_login(self.tls_connect(b), uname("ok"))
        r = c.call(dict(type="send", to=c.user, body="hello"))
        self.assertEqual(r["code"], 200, r)
        self.assertEqual(c.wait_push("msg")["body"], "hello")


class WrongPortTest(TlsBrokerTest):

    def test_clear_client_on_the_tls_port_is_closed_and_logged(self):
        b = self.tls_broker()
        s = socket.create_connection(("127.0.0.1", b.tls_port), timeout=10)
        s.sendall(frame(dict(type="login", id=1, user="someone", password="secret1")))
        seen = closed_without_frames(s)
        s.close()
        self.assertFalse(seen.startswith(b"\x00"), "a frame in clear on the TLS port: %r" % seen)
        poll(lambda: "TLS handshake failed from 127.0.0.1" in b.log_text(), 10,
             what="the failed handshake in the log")
        self.assert_serves(b)

    def test_tls_client_on_the_clear_port_fails_and_the_broker_says_why(self):
        b = self.tls_broker()
        raw = socket.create_connection(("127.0.0.1", b.port), timeout=10)
        with self.assertRaises((ssl.SSLError, ConnectionResetError, OSError)):
            client_context().wrap_socket(raw, server_hostname="localhost")
        raw.close()
        poll(lambda: "TLS handshake on a plain TCP port" in b.log_text(), 10,
             what="the TLS hello on the clear port in the log")
        self.assert_serves(b)
        c = Client(b.port)  # the clear port still serves clear clients
        self.clients.append(c)
        self.assertEqual(c.call(dict(type="ping"))["code"], 200)

    def test_client_refuses_a_certificate_of_another_ca(self):
        b = self.tls_broker()
        with self.assertRaises(ssl.SSLCertVerificationError):
            TlsClient(b.tls_port, ca=CERTS.other_ca)
        self.assert_serves(b)


class StalledHandshakeTest(TlsBrokerTest):

    def test_1000_stalled_handshakes_do_not_stop_others(self):
        b = self.tls_broker(extra=["login_timeout 600"])
        stalled = []
        try:
            for i in range(1000):
                s = socket.create_connection(("127.0.0.1", b.tls_port), timeout=10)
                if i % 2:
                    s.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello
                stalled.append(s)
            harness.wait_connections(b, 1000)
            for _ in range(3):
                self.assert_serves(b)
        finally:
            for s in stalled:
                s.close()

    def test_a_stalled_handshake_is_closed_at_login_timeout_and_logged(self):
        b = self.tls_broker(extra=["login_timeout 1"])
        s = socket.create_connection(("127.0.0.1", b.tls_port), timeout=30)
        self.assertEqual(closed_without_frames(s, 30), b"")
        s.close()
        poll(lambda: "TLS handshake not finished from 127.0.0.1" in b.log_text(), 10,
             what="the stalled handshake in the log")
        self.assert_serves(b)


class RenewalTest(TlsBrokerTest):

    def renew(self, b, name):
        key, pem = make_server_cert(CERTS.dir, name, CERTS.ca_key, CERTS.ca)
        shutil.copy(key, b.live_key)
        shutil.copy(pem, b.live_cert)
        return pem

    def live_broker(self):
        cert, key = os.path.join(self.dir, "live.pem"), os.path.join(self.dir, "live.key")
        shutil.copy(CERTS.cert, cert)
        shutil.copy(CERTS.key, key)
        b = self.tls_broker(cert=cert, key=key)
        b.live_cert, b.live_key = cert, key
        return b

    @staticmethod
    def der(pem_path):
        with open(pem_path) as f:
            return ssl.PEM_cert_to_DER_cert(f.read())

    def test_reload_takes_a_renewed_certificate_and_keeps_sessions(self):
        b = self.live_broker()
        old = self.chat_login(self.tls_connect(b), uname("old"))
        self.assertEqual(old.sock.getpeercert(binary_form=True), self.der(CERTS.cert))
        renewed = self.renew(b, "renewed-" + uname())
        b.proc.send_signal(signal.SIGHUP)
        poll(lambda: "reload: TLS certificate" in b.log_text(), 10, what="the reload in the log")
        fresh = self.tls_connect(b)
        self.assertEqual(fresh.sock.getpeercert(binary_form=True), self.der(renewed))
        self.chat_login(fresh, uname("new"))
        # the session opened before the reload still talks, both ways
        r = old.call(dict(type="send", to=fresh.user, body="still here"))
        self.assertEqual(r["code"], 200, r)
        self.assertEqual(fresh.wait_push("msg")["body"], "still here")
        self.assertEqual(old.call(dict(type="ping"))["code"], 200)

    def test_reload_with_a_broken_certificate_keeps_the_running_one(self):
        b = self.live_broker()
        with open(b.live_cert, "w") as f:
            f.write("not a certificate\n")
        r = admin_call(b, {"type": "admin.reload"})
        self.assertNotEqual(r["code"], 200, r)
        self.assertIn("tls_cert", r.get("error", ""))
        c = self.tls_connect(b)
        self.assertEqual(c.sock.getpeercert(binary_form=True), self.der(CERTS.cert))
        self.assert_serves(b)


class ConfigErrorTest(BrokersTest):

    def expect_config_error(self, lines, key, message):
        b = self.broker(extra=lines, start=False)
        rc = b.run_until_exit()
        log = b.log_text()
        self.assertEqual(rc, 2, log)
        with open(b.conf) as f:
            line = [i + 1 for i, text in enumerate(f) if text.startswith(key + " ")][-1]
        self.assertIn("%s:%d: " % (b.conf, line), log)
        self.assertIn(message, log)

    def test_missing_certificate_file(self):
        missing = os.path.join(self.dir, "nowhere.pem")
        self.expect_config_error(tls_lines(free_port(), cert=missing), "tls_cert",
                                 "tls_cert %s: cannot open" % missing)

    def test_certificate_file_that_is_not_pem(self):
        bad = os.path.join(self.dir, "bad.pem")
        with open(bad, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
        self.expect_config_error(tls_lines(free_port(), cert=bad), "tls_cert",
                                 "not a PEM certificate chain")

    def test_key_that_does_not_match_the_certificate(self):
        other = os.path.join(self.dir, "other")
        key, _ = make_server_cert(self.dir, "other", CERTS.ca_key, CERTS.ca)
        self.assertTrue(os.path.exists(other + ".key"))
        self.expect_config_error(tls_lines(free_port(), key=key), "tls_key", "does not match")

    def test_check_mode_reports_the_certificate_error(self):
        missing = os.path.join(self.dir, "nowhere.pem")
        b = self.broker(extra=tls_lines(free_port(), cert=missing), start=False)
        r = subprocess.run([harness.BROKER, "-t", "-c", b.conf], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(r.returncode, 2, r)
        self.assertIn(b"tls_cert %s: cannot open" % missing.encode(), r.stderr)

    def test_tls_listen_without_certificate(self):
        self.expect_config_error(["tls_listen 127.0.0.1:%d" % free_port()], "tls_listen",
                                 "tls_listen needs tls_cert and tls_key")


class ChatClientTest(TlsBrokerTest):
    """The C client library (through moonpost-chat) verifies the broker's certificate."""

    def chat(self, b, host, ca, user, typed=b""):
        return subprocess.run([CHAT, "--tls", "--ca", ca, "-H", host, "-p", str(b.tls_port),
                               "-u", user, "-P", "secret1", "--register"],
                              input=typed, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=60)

    def test_wrong_ca_is_refused_by_the_client_library(self):
        b = self.tls_broker()
        r = self.chat(b, "localhost", CERTS.other_ca, uname("w"))
        self.assertEqual(r.returncode, 1, r)
        self.assertIn(b"certificate verify failed", r.stderr + r.stdout)

    def test_a_name_the_certificate_does_not_hold_is_refused(self):
        key, cert = make_server_cert(self.dir, "elsewhere", CERTS.ca_key, CERTS.ca,
                                     cn="elsewhere.example", ip=None)
        b = self.tls_broker(cert=cert, key=key)  # trusted, but for another name
        r = self.chat(b, "localhost", CERTS.ca, uname("w"))
        self.assertEqual(r.returncode, 1, r)
        self.assertIn(b"certificate verify failed", r.stderr + r.stdout)

    def test_chat_over_tls_reaches_a_python_tls_client(self):
        b = self.tls_broker()
        listener = self.chat_login(self.tls_connect(b), uname("py"))
        # by name, then by the address the certificate holds in its subjectAltName
        for host in ("localhost", "127.0.0.1"):
            body = "hello over tls to " + host
            r = self.chat(b, host, CERTS.ca, uname("c"), typed=b"/all %s\n" % body.encode())
            self.assertEqual(r.returncode, 0, r)
            self.assertEqual(listener.wait_push("broadcast")["body"], body)


if __name__ == "__main__":
    unittest.main()
