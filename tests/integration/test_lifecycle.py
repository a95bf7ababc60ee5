"""Integration tests of the broker's life cycle: start-up and its failures, the command line,
SIGTERM/SIGINT shutdown, the pid file, and script reload by SIGHUP and admin.reload.

Every test starts its own broker (in its own temp dir) against the class's redis-server."""
import os
import signal
import socket
import subprocess
import time
import unittest

from harness import AUTH, BROKER, CORE_LUA, LUA, REDIS_LUA, BrokersTest, Client
from helpers import poll
from mpwire import frame

RELOAD_LUA = os.path.join(LUA, "reload.lua")
LOADWORK_LUA = os.path.join(LUA, "loadwork.lua")

SHUTDOWN_TIMEOUT = 5  # the harness's shutdown_timeout


def run(*args, timeout=30):
    return subprocess.run([BROKER] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=timeout)


class LifecycleTest(BrokersTest):
    default_scripts = ["ping", AUTH]

    def connect(self, b, login=None):
        c = super().connect(b)
        if login:
            self.assertEqual(c.call({"type": "t.login", "user": login})["code"], 200)
        return c

    def stop_with(self, b, sig):
        """Sends SIG and returns (exit code, seconds until exit)."""
        t0 = time.time()
        b.proc.send_signal(sig)
        try:
            rc = b.proc.wait(SHUTDOWN_TIMEOUT + 2)
        except subprocess.TimeoutExpired:
            b.proc.kill()
            b.proc.wait()
            b.logf.close()
            b.proc = None
            self.fail("broker still running %s s after %s" % (SHUTDOWN_TIMEOUT + 2, sig.name))
        elapsed = time.time() - t0
        b.logf.close()
        b.proc = None
        return rc, elapsed

    # ---- shutdown ----

    def check_signal_shutdown(self, sig):
        b = self.broker()
        anon = [self.connect(b) for _ in range(3)]
        users = [self.connect(b, login="user%d" % i) for i in range(3)]
        admin = Client(None, path=b.admin)
        self.clients.append(admin)
        self.assertEqual(admin.call({"type": "admin.stats"})["code"], 200)
        for c in anon + users:
            self.assertEqual(c.call({"type": "ping"})["code"], 200)
        b.proc.send_signal(sig)
        for c in anon + users + [admin]:
            seen = c.expect_closed(timeout=SHUTDOWN_TIMEOUT + 2)
            self.assertEqual([(f["type"], f.get("code")) for f in seen], [("bye", 503)], seen)
        t0 = time.time()
        try:
            rc = b.proc.wait(SHUTDOWN_TIMEOUT + 2)
        finally:
            if b.proc.poll() is None:
                b.proc.kill()
        self.assertLess(time.time() - t0, SHUTDOWN_TIMEOUT + 2)
        b.logf.close()
        b.proc = None
        self.assert_clean_exit(b, rc)
        # no new connections once stopped
        with self.assertRaises(OSError):
            Client(b.port, timeout=2).close()

    def test_sigterm_bye_503_exit_0(self):
        self.check_signal_shutdown(signal.SIGTERM)

    def test_sigint_bye_503_exit_0(self):
        self.check_signal_shutdown(signal.SIGINT)

    def test_signals_repeated_until_exit_still_exit_0(self):
        """Service managers and impatient operators signal again while the broker stops: every
        SIGTERM, SIGINT or SIGHUP that arrives during the shutdown, even while the broker frees
        its event loop, leaves the exit clean (0), never a death by signal."""
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            b = self.broker(["ping", AUTH, CORE_LUA])
            c = self.connect(b, login="repeat")
            self.assertEqual(c.call({"type": "ping"})["code"], 200)
            b.proc.send_signal(signal.SIGTERM)
            sent = 0
            deadline = time.monotonic() + SHUTDOWN_TIMEOUT + 5
            while b.proc.poll() is None and time.monotonic() < deadline:
                try:
                    b.proc.send_signal(sig)
                    sent += 1
                except ProcessLookupError:
                    break
            rc, _ = self.stop_with(b, signal.SIGTERM)
            self.assertGreater(sent, 0)
            self.assertEqual(rc, 0, "exit after %d more %s" % (sent, sig.name))

    def test_sigterm_while_handlers_wait(self):
        """Handlers waiting on Redis (one retries after a 503 with mp.sleep), on a sleep and on
        password hashes when SIGTERM comes: exit 0, nothing leaks (under the sanitizer build)."""
        b = self.broker(["ping", AUTH, REDIS_LUA], ["pwhash_memory 19456", "pwhash_ops 2"])
        c = self.connect(b, login="waiter")
        c.send({"type": "t.slowredis", "key": "lc:blpop:%d" % time.time_ns(), "timeout": 3,
                "retry": True})
        poll(lambda: b"blocked_clients:1" in self.redis.cmd("INFO", "clients"),
             what="BLPOP blocked in Redis")
        c.send({"type": "t.sleep", "seconds": 30})
        for i in range(8):
            c.send({"type": "t.hash", "password": "pw%d" % i})
        rc, elapsed = self.stop_with(b, signal.SIGTERM)
        self.assert_clean_exit(b, rc)
        self.assertLess(elapsed, SHUTDOWN_TIMEOUT + 2)
        # the Redis handler was resumed with 503 while the broker stopped, and went on
        self.assertIn("t.slowredis: retrying after", b.log_text())
        # the client was told
        seen = c.expect_closed()
        self.assertIn(("bye", 503), [(f["type"], f.get("code")) for f in seen])

    def test_sigterm_with_a_reader_that_never_reads(self):
        """A session whose output cannot drain does not hold the broker past shutdown_timeout."""
        b = self.broker(["ping", AUTH, CORE_LUA], ["shutdown_timeout 1"])
        stuck = socket.socket()
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect(("127.0.0.1", b.port))
        self.addCleanup(stuck.close)
        stuck.sendall(frame({"type": "t.flood", "id": 1, "count": 3000, "size": 1024}))
        poll(lambda: "t.flood pushed 3000 frames" in b.log_text(), what="flood queued")
        other = self.connect(b)
        self.assertEqual(other.call({"type": "ping"})["code"], 200)
        rc, elapsed = self.stop_with(b, signal.SIGTERM)
        self.assert_clean_exit(b, rc)
        self.assertLess(elapsed, 1 + 2)
        self.assertIn("shutdown_timeout reached", b.log_text())
        seen = other.expect_closed()
        self.assertEqual([(f["type"], f.get("code")) for f in seen], [("bye", 503)])

    def test_pid_file(self):
        pid_file = os.path.join(self.dir, "moonpost.pid")
        b = self.broker(extra=["pid_file %s" % pid_file])
        with open(pid_file) as f:
            self.assertEqual(f.read().strip(), str(b.proc.pid))
        rc, _ = self.stop_with(b, signal.SIGTERM)
        self.assert_clean_exit(b, rc)
        self.assertFalse(os.path.exists(pid_file))

    # ---- command line ----

    def test_check_good_config(self):
        b = self.broker(start=False)
        r = run("-t", "-c", b.conf)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration ok", r.stdout)

    def test_check_config_with_unknown_key(self):
        b = self.broker(start=False)
        with open(b.conf) as f:
            n = len(f.read().splitlines())
        with open(b.conf, "a") as f:
            f.write("no_such_key 1\n")
        r = run("-t", "-c", b.conf)
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("%s:%d:" % (b.conf, n + 1), r.stderr)
        self.assertIn("no_such_key", r.stderr)
        # and the daemon refuses to start the same way
        r = run("-c", b.conf)
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("%s:%d:" % (b.conf, n + 1), r.stderr)

    def test_missing_config_file(self):
        r = run("-c", os.path.join(self.dir, "does-not-exist.conf"))
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("does-not-exist.conf", r.stderr)
        r = run("-t", "-c", os.path.join(self.dir, "does-not-exist.conf"))
        self.assertEqual(r.returncode, 2, r)

    def test_set_with_bad_value(self):
        b = self.broker(start=False)
        r = run("-c", b.conf, "--set", "max_frame=abc")
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("--set max_frame=abc", r.stderr)
        self.assertIn("max_frame", r.stderr)
        r = run("-c", b.conf, "--set", "no_such_key=1")
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("--set no_such_key=1", r.stderr)
        r = run("-t", "-c", b.conf, "--set", "max_frame=1024")
        self.assertEqual(r.returncode, 0, r)

    def test_version_and_help(self):
        r = run("--version")
        self.assertEqual(r.returncode, 0, r)
        self.assertRegex(r.stdout, r"^moonpost \d+\.\d+\.\d+")
        r = run("-v")
        self.assertEqual(r.returncode, 0, r)
        r = run("--help")
        self.assertEqual(r.returncode, 0, r)
        self.assertIn("usage", r.stdout)
        self.assertIn("--set", r.stdout)
        r = run("--no-such-option")
        self.assertEqual(r.returncode, 2, r)

    def test_broken_script_at_start(self):
        bad = os.path.join(self.dir, "bad.lua")
        with open(bad, "w") as f:
            f.write('local mp = require "moonpost"\n\nmp.on("t.bad", function(s)\n'
                    '  return s:ok{ x = }\nend)\n')
        b = self.broker(["ping", bad], start=False)
        b.start(wait=False)
        try:
            rc = b.proc.wait(15)
        finally:
            if b.proc.poll() is None:
                b.proc.kill()
        b.logf.close()
        b.proc = None
        self.assertEqual(rc, 1, b.log_text()[-3000:])
        self.assertIn("bad.lua:4:", b.log_text())
        # the check mode reports it too
        r = run("-t", "-c", b.conf)
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("bad.lua:4:", r.stdout + r.stderr)

    def test_script_with_work_at_load_time(self):
        """Top-level code that runs more instructions than one budget-hook period loads."""
        b = self.broker(start=False, scripts=["ping", LOADWORK_LUA])
        r = run("-t", "-c", b.conf)
        self.assertEqual(r.returncode, 0, r)
        b.start()
        c = self.connect(b)
        r = c.call({"type": "t.squares", "n": 12345})
        self.assertEqual((r["code"], r.get("value")), (200, 12345 * 12345), r)

    # ---- reload ----

    def reload_script(self, version=1, broken=None):
        """Writes lua/reload.lua into the temp dir with VERSION set; BROKEN adds a fault."""
        with open(RELOAD_LUA) as f:
            src = f.read()
        self.assertIn("local VERSION = 1", src)
        src = src.replace("local VERSION = 1", "local VERSION = %d" % version)
        if broken == "syntax":
            src += "\nmp.on(\"t.oops\", function(s) return s:ok{ = } end)\n"
        elif broken == "runtime":
            src += ('\nmp.on("t.newtype", function(s) return s:ok{} end, {anonymous = true})\n'
                    'error("refusing to load")\n')
        path = os.path.join(self.dir, "reload.lua")
        with open(path, "w") as f:
            f.write(src)
        return path

    def version(self, c):
        r = c.call({"type": "t.version"})
        self.assertEqual(r["code"], 200, r)
        return r["version"]

    def test_sighup_reload(self):
        path = self.reload_script(1)
        b = self.broker(["ping", AUTH, REDIS_LUA, path])
        c = self.connect(b, login="keeper")
        self.assertEqual(self.version(c), 1)
        ticks0 = c.call({"type": "t.ticks"})["ticks"]
        self.reload_script(2)
        b.proc.send_signal(signal.SIGHUP)
        poll(lambda: self.version(c) == 2, what="version 2 served")
        # the same connection is still logged in and served
        r = c.call({"type": "t.login", "user": "keeper"})
        self.assertEqual(r["code"], 200)
        self.assertEqual(c.call({"type": "ping"})["code"], 200)
        self.assertEqual(c.pushes, [])
        # timers of the new scripts run (their counter starts again)
        poll(lambda: c.call({"type": "t.ticks"})["ticks"] >= 3, what="ticks after reload")
        self.assertIn("reloaded", b.log_text())
        self.assertGreaterEqual(ticks0, 0)

    def test_admin_reload(self):
        path = self.reload_script(1)
        b = self.broker(["ping", AUTH, path])
        c = self.connect(b, login="keeper")
        self.assertEqual(self.version(c), 1)
        self.reload_script(5)
        admin = Client(None, path=b.admin)
        self.clients.append(admin)
        self.assertEqual(admin.call({"type": "admin.reload"})["code"], 200)
        self.assertEqual(self.version(c), 5)
        self.reload_script(6, broken="syntax")
        r = admin.call({"type": "admin.reload"})
        self.assertEqual(r["code"], 500, r)
        self.assertIn("reload.lua:", r["error"])
        self.assertEqual(self.version(c), 5)

    def test_reload_while_a_handler_is_in_flight(self):
        path = self.reload_script(1)
        b = self.broker(["ping", AUTH, path])
        c = self.connect(b, login="inflight")
        rid = c.send({"type": "t.slow", "seconds": 1.0})
        self.reload_script(2)
        b.proc.send_signal(signal.SIGHUP)
        poll(lambda: "reloaded" in b.log_text(), what="reload done")
        self.assertEqual(self.version(c), 2)
        r = c.wait_res(rid)
        self.assertEqual((r["code"], r["version"]), (200, 1), r)  # finished in the old scripts
        r = c.call({"type": "t.slow", "seconds": 0.05})
        self.assertEqual((r["code"], r["version"]), (200, 2), r)

    def test_sighup_with_broken_script_keeps_old_handlers(self):
        path = self.reload_script(1)
        b = self.broker(["ping", AUTH, path])
        c = self.connect(b, login="survivor")
        self.assertEqual(self.version(c), 1)
        for n, fault in enumerate(("syntax", "runtime"), 1):
            self.reload_script(2, broken=fault)
            b.proc.send_signal(signal.SIGHUP)
            poll(lambda: b.log_text().count("reload failed") >= n, what="reload failure logged")
            self.assertIn("reload.lua:", b.log_text().split("reload failed")[-1])
            self.assertEqual(self.version(c), 1, "after a %s error" % fault)
            self.assertEqual(c.call({"type": "ping"})["code"], 200)
            # a type only the failed load registered is not served
            r = c.call({"type": "t.newtype"})
            self.assertEqual(r["code"], 404, r)
        # a good script afterwards is taken
        self.reload_script(3)
        b.proc.send_signal(signal.SIGHUP)
        poll(lambda: self.version(c) == 3, what="version 3 served")


if __name__ == "__main__":
    unittest.main()
