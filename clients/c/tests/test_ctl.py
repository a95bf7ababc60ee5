#!/usr/bin/env python3
"""test_ctl: moonpostctl against a live broker, every command, tables and --json, exit codes.

Run by run_with_broker.py (MOONPOST_PORT, MOONPOST_ADMIN_SOCKET); MOONPOSTCTL is the binary."""
import json
import os
import socket
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "tests", "integration"))
from harness import Client  # noqa: E402
from helpers import poll  # noqa: E402

CTL = os.environ.get("MOONPOSTCTL", "moonpostctl")
SOCKET = os.environ["MOONPOST_ADMIN_SOCKET"]
PORT = int(os.environ["MOONPOST_PORT"])


def ctl(*args, socket_path=SOCKET):
    p = subprocess.run([CTL, "--socket", socket_path] + list(args), capture_output=True,
                       text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def accepts(port):
    """True when something accepts connections on the loopback's PORT."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


def online_user(name):
    c = Client(PORT)
    c.call(dict(type="register", user=name, password="secret1"))
    r = c.call(dict(type="login", user=name, password="secret1"))
    assert r["code"] == 200, r
    return c


class MoonpostctlTest(unittest.TestCase):
    def test_stats_table_and_json(self):
        rc, out, err = ctl("stats")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"(?m)^uptime\s+\d+$")
        self.assertRegex(out, r"(?m)^redis\s+connected$")
        rc, out, err = ctl("--json", "stats")
        self.assertEqual(rc, 0, err)
        stats = json.loads(out)
        self.assertEqual(stats["code"], 200)
        self.assertEqual(stats["redis"], "connected")
        self.assertIn("connections", stats)

    def test_users_lists_online_users(self):
        c = online_user("ctl_users")
        try:
            rc, out, err = ctl("users")
            self.assertEqual(rc, 0, err)
            self.assertIn("ctl_users\n", out)
            self.assertRegex(out, r"\d+ user\(s\) online")
            rc, out, _ = ctl("--json", "users", "1")
            self.assertEqual(rc, 0)
            reply = json.loads(out)
            self.assertEqual(len(reply["users"]), 1)
            self.assertGreaterEqual(reply["count"], 1)
        finally:
            c.close()

    def test_kick_disconnects_the_user(self):
        c = online_user("ctl_kick")
        rc, out, err = ctl("kick", "ctl_kick")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, "kicked ctl_kick\n")
        seen = c.expect_closed()
        self.assertIn({"type": "bye", "code": 403, "error": "kicked by an administrator"}, seen)
        c.close()
        rc, out, err = ctl("kick", "ctl_kick")
        self.assertEqual(rc, 1)
        self.assertIn("user not online (404)", err)

    def test_broadcast_reaches_online_users(self):
        c = online_user("ctl_bcast")
        try:
            rc, out, err = ctl("broadcast", "maintenance at noon")
            self.assertEqual(rc, 0, err)
            self.assertRegex(out, r"broadcast \d+ sent to [1-9]\d* session\(s\)")
            push = c.wait_push("broadcast")
            self.assertEqual((push["from"], push["system"]), ("", True))
            self.assertEqual(push["body"], "maintenance at noon")
        finally:
            c.close()

    def test_loglevel(self):
        rc, out, err = ctl("loglevel", "debug")
        self.assertEqual((rc, out), (0, "log level set to debug\n"), err)
        rc, out, err = ctl("loglevel", "loud")
        self.assertEqual(rc, 1)
        self.assertIn("level must be debug, info, warn or error (400)", err)

    def test_reload(self):
        rc, out, err = ctl("reload")
        self.assertEqual((rc, out), (0, "scripts reloaded\n"), err)

    def test_plugins_lists_handlers(self):
        rc, out, err = ctl("plugins")
        self.assertEqual(rc, 0, err)
        self.assertIn("handlers:", out)
        self.assertRegex(out, r"(?m)^\s+send\s+lua\s+no$")
        self.assertRegex(out, r"(?m)^\s+login\s+lua\s+yes$")
        rc, out, _ = ctl("--json", "plugins")
        reply = json.loads(out)
        self.assertIn({"type": "ping", "impl": "lua", "anonymous": True}, reply["handlers"])

    def test_usage_errors_exit_2(self):
        for args in (["bogus"], ["kick"], ["stats", "extra"], ["users", "many"], []):
            rc, out, err = ctl(*args)
            self.assertEqual(rc, 2, args)
            self.assertTrue(err.startswith(("usage:", "moonpostctl: ")), err)
        p = subprocess.run([CTL, "--help"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0)
        for name in ("stats", "users", "kick", "broadcast", "reload", "shutdown", "plugins",
                     "loglevel", "--json", "--socket"):
            self.assertIn(name, p.stdout)

    def test_no_broker_exits_3(self):
        rc, out, err = ctl("stats", socket_path="/nonexistent/admin.sock")
        self.assertEqual(rc, 3)
        self.assertIn("no socket at /nonexistent/admin.sock", err)

    def test_zz_shutdown_stops_the_broker(self):  # last: the broker is gone afterwards
        rc, out, err = ctl("shutdown")
        self.assertEqual((rc, out), (0, "the broker is shutting down\n"), err)
        poll(lambda: not accepts(PORT), timeout=30, interval=0.1,
             what="the broker no longer accepting connections")


if __name__ == "__main__":
    unittest.main(verbosity=2)
