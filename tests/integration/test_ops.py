"""Operations: /metrics (Prometheus format, checked by promtool, counters moving), /healthz
following Redis, admin.* on the admin socket, and script reload while clients keep chatting."""
import os
import shutil
import subprocess
import unittest

from harness import SCRIPTS, BrokerTest, Client, ALL_SCRIPTS, healthz, http_get, parse_metrics
from helpers import poll


class MetricsTest(BrokerTest):
    def test_metrics_pass_promtool(self):
        status, text = http_get(self.broker.http_port, "/metrics")
        self.assertEqual(status, 200)
        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool (Debian package prometheus) is required")
        check = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                               capture_output=True)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)

    def test_counters_move(self):
        before = parse_metrics(http_get(self.broker.http_port, "/metrics")[1])
        a = self.login("metrics_a")
        self.register("metrics_b")
        for i in range(5):
            self.assertEqual(a.call({"type": "send", "to": "metrics_b", "body": "x"})["code"], 200)
        a.call({"type": "nosuchtype"})
        after = parse_metrics(http_get(self.broker.http_port, "/metrics")[1])
        self.assertGreaterEqual(after["moonpost_frames_in_total"] - before["moonpost_frames_in_total"], 7)
        self.assertGreaterEqual(after['moonpost_replies_total{code="200"}'] -
                                before['moonpost_replies_total{code="200"}'], 6)
        self.assertGreaterEqual(after['moonpost_replies_total{code="404"}'] -
                                before['moonpost_replies_total{code="404"}'], 1)
        self.assertGreater(after["moonpost_redis_commands_total"], before["moonpost_redis_commands_total"])
        self.assertGreaterEqual(after["moonpost_sessions"], 1)
        self.assertGreater(after["moonpost_handler_duration_seconds_count"],
                           before["moonpost_handler_duration_seconds_count"])
        self.assertEqual(after["moonpost_redis_up"], 1)

    def test_unknown_path_404(self):
        self.assertEqual(http_get(self.broker.http_port, "/nope")[0], 404)


class HealthTest(BrokerTest):
    def test_healthz_follows_redis(self):
        self.assertEqual(http_get(self.broker.http_port, "/healthz"), (200, "ok\n"))
        self.redis.stop()
        poll(lambda: healthz(self.broker) == 503, timeout=30, what="/healthz 503 without Redis")
        self.redis.start()
        poll(lambda: healthz(self.broker) == 200, timeout=30, what="/healthz 200 with Redis back")


class AdminTest(BrokerTest):
    def admin(self):
        c = Client(None, path=self.broker.admin)
        self.clients.append(c)
        return c

    def test_admin_socket_is_private(self):
        self.assertEqual(os.stat(self.broker.admin).st_mode & 0o777, 0o600)

    def test_stats_users_kick(self):
        a = self.login("adm_a")
        adm = self.admin()
        stats = adm.call({"type": "admin.stats"})
        self.assertEqual(stats["code"], 200)
        self.assertGreaterEqual(stats["online"], 1)
        self.assertEqual(stats["redis"], "connected")
        users = adm.call({"type": "admin.users"})
        self.assertIn("adm_a", users["users"])
        self.assertEqual(adm.call({"type": "admin.kick", "user": "adm_a"})["code"], 200)
        frames = a.expect_closed()
        self.assertIn({"type": "bye", "code": 403, "error": "kicked by an administrator"}, frames)
        self.assertEqual(adm.call({"type": "admin.kick", "user": "adm_a"})["code"], 404)
        self.assertEqual(adm.call({"type": "admin.kick"})["code"], 400)

    def test_admin_broadcast_reaches_everyone(self):
        a = self.login("adm_b")
        r = self.admin().call({"type": "admin.broadcast", "body": "maintenance at noon"})
        self.assertEqual(r["code"], 200)
        self.assertEqual(r["sent"], 1)
        push = a.wait_push("broadcast")
        # from the operator: no user name (no one can register ""), and marked as a system message
        self.assertEqual((push["from"], push["system"], push["body"], push["mid"]),
                         ("", True, "maintenance at noon", r["mid"]))
        # the same code path as a user's broadcast: the same checks
        self.assertEqual(self.admin().call({"type": "admin.broadcast"})["code"], 400)

    def test_user_broadcast_is_not_a_system_message(self):
        a = self.login("adm_u1")
        b = self.login("adm_u2")
        r = a.call({"type": "broadcast", "body": "hi"})
        self.assertEqual(r["code"], 200)
        self.assertNotIn("sent", r)
        push = b.wait_push("broadcast")
        self.assertEqual(push["from"], "adm_u1")
        self.assertNotIn("system", push)

    def test_loglevel_and_plugins(self):
        adm = self.admin()
        self.assertEqual(adm.call({"type": "admin.loglevel", "level": "warn"})["code"], 200)
        self.assertEqual(adm.call({"type": "admin.loglevel", "level": "loud"})["code"], 400)
        adm.call({"type": "admin.loglevel", "level": "debug"})
        plugins = adm.call({"type": "admin.plugins"})
        types = {h["type"]: h["impl"] for h in plugins["handlers"]}
        self.assertEqual(types.get("send"), "lua")
        self.assertEqual(types.get("admin.stats"), "c")

    def test_client_types_refused_on_admin_socket(self):
        self.assertEqual(self.admin().call({"type": "send", "to": "x", "body": "y"})["code"], 403)


class ReloadTest(BrokerTest):
    """admin.reload swaps scripts while clients stay connected and keep chatting."""

    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.scripts_dir = tempfile.mkdtemp(prefix="moonpost-scripts-")
        shutil.copytree(SCRIPTS, cls.scripts_dir, dirs_exist_ok=True)
        cls.scripts = [os.path.join(cls.scripts_dir, n + ".lua") for n in ALL_SCRIPTS]
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.scripts_dir, ignore_errors=True)

    def write_ping(self, body):
        with open(os.path.join(self.scripts_dir, "ping.lua"), "w") as f:
            f.write(body)

    def test_reload_good_then_broken_while_chatting(self):
        a = self.login("rl_a")
        b = self.login("rl_b")
        adm = Client(None, path=self.broker.admin)
        self.clients.append(adm)
        self.assertEqual(a.call({"type": "send", "to": "rl_b", "body": "before"})["code"], 200)
        self.assertEqual(b.wait_push("msg")["body"], "before")

        self.write_ping('local mp = require "moonpost"\n'
                        'mp.on("ping", function(s) return s:ok{ ts = mp.now(), v = 2 } end,'
                        ' { anonymous = true, also_admin = true })\n')
        self.assertEqual(adm.call({"type": "admin.reload"})["code"], 200)
        self.assertEqual(a.call({"type": "ping"}).get("v"), 2)
        self.assertEqual(a.call({"type": "send", "to": "rl_b", "body": "after"})["code"], 200)
        self.assertEqual(b.wait_push("msg")["body"], "after")

        self.write_ping('local mp = require "moonpost"\nmp.on("ping", function(s)\n')  # broken
        r = adm.call({"type": "admin.reload"})
        self.assertEqual(r["code"], 500)
        self.assertIn("ping.lua:", r["error"])
        self.assertEqual(a.call({"type": "ping"}).get("v"), 2)  # the old state still serves
        self.assertEqual(a.call({"type": "send", "to": "rl_b", "body": "still"})["code"], 200)
        self.assertEqual(b.wait_push("msg")["body"], "still")
        self.assertEqual(b.call({"type": "users"})["count"], 2)


if __name__ == "__main__":
    unittest.main()
