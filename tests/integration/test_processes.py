"""processes N: one command runs N brokers (workers) on one client port under a supervisor, which
restarts the one that dies, passes SIGHUP on, serves the admin socket and /metrics for the
whole host, stops them all on SIGTERM, and exits 2 at once when the configuration is wrong."""
import json
import os
import shutil
import signal
import subprocess
import unittest

from harness import (BROKER, BUILD, Broker, BrokersTest, Client, admin_call, http_get,
                     parse_metrics, running)
from helpers import poll

MOONPOSTCTL = os.path.join(BUILD, "clients", "c", "moonpostctl")
N = 4
NODE = "hostA"
VERSION_LUA = """local mp = require "moonpost"
mp.on("version", function(s) return s:ok{ v = %d } end, { anonymous = true })
"""


class Supervisor(Broker):
    """A broker command started with --processes N: the process is the supervisor."""

    def start(self, wait=True):
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen([BROKER, "-c", self.conf, "--processes", str(N)],
                                     stdout=self.logf, stderr=self.logf)
        if wait:
            self.wait_listening()
            poll(lambda: http_get(self.http_port, "/healthz")[0] == 200, 30,
                 what="every worker up and healthy")
        return self

    def worker_socket(self, i):
        return "%s.%d" % (self.admin, i)

    def worker_stats(self, i):
        """admin.stats of worker I, on its private admin socket."""
        r = admin_call(self, {"type": "admin.stats"}, path=self.worker_socket(i))
        assert r["code"] == 200, r
        return r

    def workers(self):
        """{index: pid} of the supervisor's children, told apart by their node id."""
        found = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % name) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                with open("/proc/%s/cmdline" % name, "rb") as f:
                    args = f.read().split(b"\0")
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            if ppid != self.proc.pid:
                continue
            for a in args:
                if a.startswith(b"node_id=%s-" % NODE.encode()):
                    found[int(a.rsplit(b"-", 1)[1])] = int(name)
        return found

    def ctl(self, *args):
        """moonpostctl --json ARGS on the supervisor's admin socket: (exit status, reply)."""
        out = subprocess.run([MOONPOSTCTL, "--socket", self.admin, "--json"] + list(args),
                             capture_output=True, timeout=30)
        return out.returncode, json.loads(out.stdout) if out.stdout.strip() else None


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class ProcessesTest(BrokersTest):
    def supervisor(self, extra=None, start=True):
        s = Supervisor(self.dir, self.redis.port, None, ["node_id %s" % NODE] + (extra or []))
        self.brokers.append(s)
        return s.start() if start else s

    def clients_on(self, s, wanted, max_clients=400):
        """Opens client connections (each answers a ping) until every worker in WANTED holds
        one more connection than when this began; returns them."""
        base = {i: s.worker_stats(i)["connections"] for i in wanted}
        opened = []

        def one_more_then_check():
            c = self.connect(s)
            self.assertEqual(c.call({"type": "ping"})["code"], 200)
            opened.append(c)
            self.assertLess(len(opened), max_clients, "a worker never got a client")
            return all(s.worker_stats(i)["connections"] > base[i] for i in wanted)
        poll(one_more_then_check, 60, interval=0, what="a client on each of workers %s" % wanted)
        return opened

    def test_every_worker_serves_clients_and_stats_sum_them(self):
        s = self.supervisor()
        self.assertEqual(sorted(s.workers()), list(range(1, N + 1)))
        clients = self.clients_on(s, range(1, N + 1))
        while len(clients) < 5:  # one client per worker is N = 4: one more for the fifth frame
            clients.append(self.connect(s))
        for c in clients[:5]:  # a malformed frame each: counted by whichever worker serves it
            c.send_raw(b"\x00\x00\x00\x01\x01")
            self.assertEqual(c.read_frame()["code"], 400)
        per_worker = [s.worker_stats(i) for i in range(1, N + 1)]
        self.assertEqual(sum(w["malformed_frames"] for w in per_worker), 5)
        rc, total = s.ctl("stats")
        self.assertEqual(rc, 0)
        self.assertEqual(total["nodes"], N)
        self.assertEqual(total["processes"], N)
        self.assertEqual(total["node"], NODE)
        self.assertEqual(total["malformed_frames"], 5)
        self.assertGreaterEqual(total["connections"], len(clients))
        self.assertEqual(total["redis"], per_worker[0]["redis"])

    def test_requests_keep_their_id_and_other_types_go_to_one_worker(self):
        s = self.supervisor()
        c = Client(None, path=s.admin)
        self.clients.append(c)
        c.send({"type": "admin.loglevel", "level": "debug"}, with_id=False)  # success: silent
        c.send({"type": "ping", "id": 77})
        c.send({"type": "admin.plugins", "id": 78})
        replies = {f["id"]: f for f in (c.read_frame(), c.read_frame())}
        self.assertEqual(sorted(replies), [77, 78])
        self.assertEqual(replies[77]["code"], 200)
        self.assertIn("ts", replies[77])
        self.assertIn("admin.stats", [h["type"] for h in replies[78]["handlers"]])
        poll(lambda: "supervisor: log level set to debug" in s.log_text(), 10,
             what="the supervisor's own log level set")
        bad = c.call({"type": "admin.loglevel", "level": "loud"})
        self.assertEqual(bad["code"], 400, bad)
        self.assertIn("level", bad["error"])
        rc, plugins = s.ctl("plugins")
        self.assertEqual(rc, 0)
        self.assertEqual(plugins["plugins"], [])

    def test_a_killed_worker_is_restarted_and_serves_again(self):
        s = self.supervisor()
        old = s.workers()[2]
        os.kill(old, signal.SIGKILL)
        new = poll(lambda: s.workers().get(2) not in (None, old) and s.workers()[2], 30,
                   what="worker 2 started again")
        self.assertNotEqual(new, old)
        poll(lambda: http_get(s.http_port, "/healthz")[0] == 200, 30, what="every worker up")
        self.assertIn("worker 2 (pid %d) killed by signal 9" % old, s.log_text())
        self.clients_on(s, [2])
        metrics = parse_metrics(http_get(s.http_port, "/metrics")[1])
        self.assertEqual(metrics["moonpost_supervisor_worker_restarts_total"], 1)
        self.assertEqual(sorted(s.workers()), list(range(1, N + 1)))

    def test_metrics_label_every_worker_and_pass_promtool(self):
        s = self.supervisor()
        status, text = http_get(s.http_port, "/metrics")
        self.assertEqual(status, 200)
        nodes = {name.split('node="', 1)[1].split('"', 1)[0]
                 for name in parse_metrics(text) if name.startswith("moonpost_connections{")}
        self.assertEqual(nodes, {"%s-%d" % (NODE, i) for i in range(1, N + 1)})
        self.assertEqual(text.count("# TYPE moonpost_connections gauge\n"), 1)
        self.assertEqual(parse_metrics(text)["moonpost_supervisor_workers_up"], N)
        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool (Debian package prometheus) is required")
        check = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                               capture_output=True)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        status, body = http_get(s.http_port, "/healthz")
        self.assertEqual(status, 200)
        self.assertEqual(body.count(": ok\n"), N)

    def test_metrics_without_admin_socket(self):
        s = self.supervisor(extra=['admin_socket ""'], start=False)
        s.start(wait=False)
        poll(lambda: running(s.proc) and http_get(s.http_port, "/healthz")[0] == 200, 30,
             what="every worker up and healthy", retry_on=(OSError,))
        nodes = {name.split('node="', 1)[1].split('"', 1)[0]
                 for name in parse_metrics(http_get(s.http_port, "/metrics")[1])
                 if name.startswith("moonpost_connections{")}
        self.assertEqual(len(nodes), N)
        self.assertFalse(os.path.exists(s.admin))
        private = s.log_text().split("the workers' admin sockets are in ", 1)[1].split()[0]
        self.assertEqual(sorted(os.listdir(private)), ["admin.sock.%d" % i for i in range(1, N + 1)])
        self.assert_clean_exit(s, s.stop())
        self.assertFalse(os.path.exists(private))

    def test_healthz_is_503_while_a_worker_is_down(self):
        s = self.supervisor()
        pid = s.workers()[3]
        os.kill(pid, signal.SIGSTOP)  # alive but not answering
        try:
            status, body = http_get(s.http_port, "/healthz", timeout=15)
            self.assertEqual(status, 503, body)
            self.assertIn("%s-3: not answering" % NODE, body)
        finally:
            os.kill(pid, signal.SIGCONT)
        poll(lambda: http_get(s.http_port, "/healthz")[0] == 200, 30, what="healthy again")

    def test_sighup_reloads_every_worker(self):
        script = os.path.join(self.dir, "version.lua")
        with open(script, "w") as f:
            f.write(VERSION_LUA % 1)
        s = self.supervisor(extra=["script %s" % script])
        self.assertEqual(self.connect(s).call({"type": "version"})["v"], 1)
        with open(script, "w") as f:
            f.write(VERSION_LUA % 2)
        s.proc.send_signal(signal.SIGHUP)
        for i in range(1, N + 1):
            poll(lambda: s.worker_stats(i)["reloads"] == 1, 30, what="worker %d reloaded" % i)
        for c in self.clients_on(s, range(1, N + 1)):
            self.assertEqual(c.call({"type": "version"})["v"], 2)
        self.assertEqual(s.ctl("stats")[1]["reloads"], N)
        rc, reply = s.ctl("reload")  # admin.reload: every worker
        self.assertEqual(rc, 0, reply)
        self.assertEqual(s.ctl("stats")[1]["reloads"], 2 * N)

    def test_sigterm_stops_every_worker_and_exits_0(self):
        s = self.supervisor(extra=["pid_file %s" % os.path.join(self.dir, "moonpost.pid")])
        with open(os.path.join(self.dir, "moonpost.pid")) as f:
            self.assertEqual(int(f.read()), s.proc.pid)
        pids = s.workers()
        self.assertEqual(len(pids), N)
        self.assert_clean_exit(s, s.stop())
        for i, pid in pids.items():
            self.assertFalse(pid_alive(pid), "worker %d (pid %d) still runs" % (i, pid))
        for path in [s.admin] + [s.worker_socket(i) for i in range(1, N + 1)]:
            self.assertFalse(os.path.exists(path), path)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "moonpost.pid")))

    def test_sigterm_repeated_while_stopping_exits_0(self):
        """A service manager that signals again while the host stops gets exit 0 all the same."""
        s = self.supervisor()
        s.proc.send_signal(signal.SIGTERM)
        sent = 0
        while s.proc.poll() is None and sent < 200000:
            try:
                s.proc.send_signal(signal.SIGTERM)
                sent += 1
            except ProcessLookupError:
                break
        self.assertGreater(sent, 0)
        self.assert_clean_exit(s, s.stop())

    def test_admin_shutdown_stops_the_host(self):
        s = self.supervisor()
        pids = s.workers()
        rc, reply = s.ctl("shutdown")
        self.assertEqual(rc, 0, reply)
        self.assertEqual(s.proc.wait(30), 0)
        s.proc = None
        s.logf.close()
        for pid in pids.values():
            self.assertFalse(pid_alive(pid))

    def failed_start(self, extra):
        """Starts a supervisor whose workers cannot start; returns its exit status and log."""
        s = self.supervisor(extra=extra, start=False)
        s.start(wait=False)
        try:
            rc = s.proc.wait(60)
        finally:
            s.logf.close()
            s.proc = None
        log = s.log_text()
        self.assertLessEqual(log.count(") started, pid"), N, log)
        self.assertNotIn("restarting worker", log)
        self.assertIn("could not start", log)
        return rc, log

    def test_bad_config_exits_2_without_restarting(self):
        # an option no script declares: the workers find it, not the supervisor
        rc, log = self.failed_start(["no_such_setting 1"])
        self.assertEqual(rc, 2, log)
        self.assertIn(") exited with status 2", log)

    def test_a_start_up_failure_exits_1_without_restarting(self):
        script = os.path.join(self.dir, "broken.lua")
        with open(script, "w") as f:
            f.write("this is not lua\n")
        rc, log = self.failed_start(["script %s" % script])
        self.assertEqual(rc, 1, log)
        self.assertIn(") exited with status 1", log)

if __name__ == "__main__":
    unittest.main()
