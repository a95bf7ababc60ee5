"""Start-up checks an operator meets: addresses are checked when the config is read (`-t` and
start, exit code 2 with file:line), host names are resolved, a listener that cannot bind says
why, and a second broker never takes over the admin socket of one that is running."""
import os
import socket
import subprocess
import tempfile

from harness import BROKER, Broker, Client, RedisServerTest, admin_call, free_port
from helpers import poll


def run(*args, timeout=30):
    return subprocess.run([BROKER] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=timeout)


class StartupTest(RedisServerTest):
    def setUp(self):
        self.brokers = []

    def tearDown(self):
        for b in self.brokers:
            if b.proc is not None:
                b.stop()

    def broker(self, extra=None, start=True):
        """A broker in a directory of its own (its conf, log and admin socket)."""
        b = Broker(tempfile.mkdtemp(dir=self.tmp), self.redis.port, ["ping"], extra)
        self.brokers.append(b)
        if start:
            b.start()
        return b

    def start_failing(self, b, timeout=30):
        """Starts B, which must exit by itself; returns its exit code."""
        return b.run_until_exit(timeout)

    def assert_config_error(self, extra, message):
        """A config with EXTRA's last line fails `-t` and the start with MESSAGE at its line."""
        b = self.broker(extra, start=False)
        with open(b.conf) as f:
            line = len(f.read().splitlines())
        for args in (["-t", "-c", b.conf], ["-c", b.conf]):
            r = run(*args)
            self.assertEqual(r.returncode, 2, r)
            self.assertIn("%s:%d: %s" % (b.conf, line, message), r.stderr)

    def test_redis_prefix_too_long(self):
        """The node channels are named after the prefix: a prefix that would not leave room
        for them is refused at its line."""
        self.assert_config_error(["redis_prefix " + "p" * 65], "redis_prefix: at most 64 bytes")

    # ---- addresses ----

    def test_listen_port_out_of_range(self):
        self.assert_config_error(["listen 127.0.0.1:88890"],
                                 "listen: port 88890 out of range 1..65535")

    def test_http_listen_port_out_of_range(self):
        self.assert_config_error(["http_listen 127.0.0.1:99999"],
                                 "http_listen: port 99999 out of range 1..65535")

    def test_listen_without_port(self):
        self.assert_config_error(["listen 127.0.0.1"],
                                 "listen: missing port in '127.0.0.1' (write HOST:PORT)")

    def test_redis_port_zero(self):
        self.assert_config_error(["redis 127.0.0.1:0"], "redis: port 0 out of range 1..65535")

    def test_unresolvable_host(self):
        self.assert_config_error(["listen no-such-host.invalid:8889"],
                                 "listen: cannot resolve 'no-such-host.invalid': ")

    def test_set_names_the_assignment(self):
        b = self.broker(start=False)
        r = run("-t", "-c", b.conf, "--set", "http_listen=[::1]:70000")
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("--set http_listen=[::1]:70000: http_listen: port 70000 out of range "
                      "1..65535", r.stderr)

    def test_host_name_is_resolved_and_served(self):
        port = free_port()
        b = self.broker(["listen localhost:%d" % port, "http_listen localhost:%d" % free_port()],
                        start=False)
        r = run("-t", "-c", b.conf)
        self.assertEqual(r.returncode, 0, r)
        b.start(wait=False)

        def connected():
            # localhost may resolve to 127.0.0.1 or ::1 first: connect by name as a user would
            self.assertIsNone(b.proc.poll(), b.log_text()[-3000:])
            try:
                return socket.create_connection(("localhost", port), timeout=1)
            except OSError:
                return None

        poll(connected, what="localhost:%d accepting" % port).close()
        c = Client(port, host="localhost")
        self.assertEqual(c.call({"type": "ping"})["code"], 200)
        c.close()

    def test_bind_failure_says_why(self):
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            addr = "127.0.0.1:%d" % taken.getsockname()[1]
            for key, message in (("listen", "cannot listen on %s: Address already in use"),
                                 ("http_listen", "cannot listen for HTTP on %s: Address already "
                                  "in use")):
                b = self.broker(["%s %s" % (key, addr)], start=False)
                self.assertEqual(self.start_failing(b), 1, b.log_text()[-3000:])
                self.assertIn(message % addr, b.log_text())

    # ---- the admin socket ----

    def test_second_broker_does_not_take_a_live_admin_socket(self):
        a = self.broker()
        self.assertEqual(admin_call(a, {"type": "admin.stats"})["code"], 200)
        b = self.broker(["admin_socket %s" % a.admin], start=False)
        self.assertEqual(self.start_failing(b), 2, b.log_text()[-3000:])
        self.assertIn("admin_socket %s: another broker is running" % a.admin, b.log_text())
        # A keeps its console, and its socket file
        self.assertTrue(os.path.exists(a.admin))
        self.assertEqual(admin_call(a, {"type": "admin.stats"})["code"], 200)

    def test_stale_admin_socket_is_replaced(self):
        b = self.broker(start=False)
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(b.admin)  # a socket file no one listens on, as a killed broker leaves
        stale.close()
        self.assertTrue(os.path.exists(b.admin))
        b.start()
        self.assertEqual(admin_call(b, {"type": "admin.stats"})["code"], 200)
        self.assertIn("removing a stale socket", b.log_text())

    def test_admin_socket_path_that_is_not_a_socket_is_kept(self):
        b = self.broker(start=False)
        with open(b.admin, "w") as f:
            f.write("not a socket\n")
        self.assertEqual(self.start_failing(b), 1, b.log_text()[-3000:])
        self.assertIn("exists and is not a socket", b.log_text())
        with open(b.admin) as f:
            self.assertEqual(f.read(), "not a socket\n")
