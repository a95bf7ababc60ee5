"""Network limits under attack: the broker-wide output budget (slowest readers dropped first,
memory handed back after a burst), the HTTP listener's connection cap, head size limit and
timeouts, accept backing off when descriptors run out, a max_connections that cannot fit the
descriptor limit, rate-limited refusal log lines, and the per-connection request rate."""
import os
import resource
import socket
import struct
import subprocess
import threading
import time
import unittest

from harness import (AUTH, BROKER, SCRIPTS, Broker, BrokerTest, Client, RedisServerTest,
                     http_raw, metrics, wait_connections, wait_port)
from helpers import poll, rss_kib, sanitized
from mpwire import frame

BODY = "b" * 8000


def cpu_seconds(pid):
    """utime + stime of PID, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def slow_socket(port, user):
    """A logged-in connection that does not read (until the test says so). Its receive buffer
    is fixed (no autotuning); smaller ones make the kernel's zero-window probes slow to read."""
    c = Client(port)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 262144)
    assert c.call({"type": "t.login", "user": user})["code"] == 200
    return c


def storm(publisher, count, body, window=32):
    """COUNT broadcasts from PUBLISHER, WINDOW of them in flight; returns their reply codes."""
    codes, ids = [], []
    while len(codes) < count:
        while len(ids) < count and len(ids) - len(codes) < window:
            ids.append(publisher.send({"type": "broadcast", "body": body}))
        codes.append(publisher.wait_res(ids[len(codes)], timeout=30)["code"])
    return codes


def read_to_end(client, n):
    """Reads CLIENT until it has N broadcasts ("all") or is closed (its last frame)."""
    count, last = 0, None
    try:
        while count < n:
            last = client.read_frame(20)
            count += last["type"] == "broadcast"
        return "all"
    except (EOFError, ConnectionResetError):
        return last


def recv_until_closed(sock):
    """Everything SOCK receives until the peer closes."""
    out = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return out
        out += chunk

class Reader(threading.Thread):
    """Reads a connection as fast as it can, counting broadcast pushes."""

    def __init__(self, client, want):
        super().__init__(daemon=True)
        self.client, self.want, self.count, self.error = client, want, 0, None

    def run(self):
        try:
            while self.count < self.want:
                if self.client.read_frame(30).get("type") == "broadcast":
                    self.count += 1
        except Exception as e:  # reported by the test
            self.error = e


class OutputBudgetTest(BrokerTest):
    scripts = [AUTH, "ping", "broadcast"]
    extra = ["script_path " + SCRIPTS, "output_budget 2097152", "output_limit 67108864",
             "request_rate 0", "log_level info"]

    def test_slowest_readers_dropped_readers_that_read_keep_receiving(self):
        slow = [slow_socket(self.broker.port, "slow%d" % i) for i in range(4)]
        for c in slow:
            self.clients.append(c)
        fast = self.connect()
        self.assertEqual(fast.call({"type": "t.login", "user": "fast"})["code"], 200)
        publisher = self.connect()
        self.assertEqual(publisher.call({"type": "t.login", "user": "pub"})["code"], 200)
        n = 1500  # 12 MB to each reader, the kernel's socket buffers hold 3 to 5 MB
        reader = Reader(fast, n)
        reader.start()
        codes = storm(publisher, n, BODY)
        reader.join(60)
        self.assertIsNone(reader.error)
        self.assertEqual(codes, [200] * n)
        self.assertEqual(reader.count, n, "the reader that reads got every broadcast")
        # 4 x 12 MB for a budget of 2 MiB: at least 3 are dropped, the last may fit. A dropped
        # reader finds whole frames then its bye 429, unless it did not read the bye within the
        # close grace period: then whole frames and EOF.
        dropped = 0
        for c in slow:
            end = read_to_end(c, n)
            if end == "all":
                continue
            dropped += 1
            if end.get("type") == "bye":
                self.assertEqual(end, {"type": "bye", "code": 429,
                                       "error": "slow reader: output budget exceeded"})
            else:
                self.assertEqual(end.get("type"), "broadcast")
                # closed after the grace period with the rest of a frame unsent (the client
                # did not read): what is left is the start of one frame, never other bytes
                if len(c.buf) >= 4:
                    self.assertLess(len(c.buf) - 4, struct.unpack(">I", c.buf[:4])[0])
        self.assertGreaterEqual(dropped, 3)
        m = metrics(self.broker)
        self.assertEqual(m["moonpost_output_budget_drops_total"], dropped)
        self.assertLessEqual(m["moonpost_output_queued_bytes"], 2097152)
        self.assertEqual(fast.call({"type": "ping"})["code"], 200)


class OutputMemoryTest(BrokerTest):
    """RSS goes back down once a burst of output to slow readers is gone (no new keys: the
    same test runs against a broker without the fix)."""
    scripts = [AUTH, "ping", "broadcast"]
    extra = ["script_path " + SCRIPTS, "output_limit 16777216", "log_level info"]

    def test_memory_returned_after_burst(self):
        if sanitized(BROKER):
            self.skipTest("RSS under AddressSanitizer does not follow the broker's allocations")
        pid = self.broker.proc.pid
        slow = [slow_socket(self.broker.port, "mem%d" % i) for i in range(60)]
        publisher = self.connect()
        self.assertEqual(publisher.call({"type": "t.login", "user": "mempub"})["code"], 200)
        baseline = rss_kib(pid)
        # 390 broadcasts (under the default request_burst) of 16 KB: 6 MB queued per reader
        self.assertEqual(storm(publisher, 390, "m" * 16000), [200] * 390)
        peak = rss_kib(pid)
        self.assertGreater(peak - baseline, 64 * 1024, "the burst did not queue output")
        for c in slow:
            c.close()

        def rss_returned():
            after = rss_kib(pid)
            return after if after - baseline < (peak - baseline) / 4 else None
        after = poll(rss_returned, timeout=30, interval=0.2,
                     what="RSS back under a quarter of the burst (baseline %d KiB, peak %d KiB)"
                     % (baseline, peak))
        print("RSS KiB: baseline %d, peak %d, after %d" % (baseline, peak, after))
        self.assertEqual(publisher.call({"type": "ping"})["code"], 200)


def closed_within(sock, seconds):
    """True when the peer closes SOCK (EOF or reset) within SECONDS."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


class HttpCapTest(BrokerTest):
    scripts = [AUTH, "ping"]
    extra = ["http_max_connections 4", "http_header_timeout 30", "http_idle_timeout 30"]

    def test_connections_past_the_cap_are_refused_then_served_again(self):
        idle = [socket.create_connection(("127.0.0.1", self.broker.http_port)) for _ in range(4)]
        try:
            # the kernel hands connections to the broker in the order they came: the four idle
            # ones are counted before this one is accepted
            reply = http_raw(self.broker.http_port, b"")  # refused at once: nothing to send
            self.assertTrue(reply.startswith(b"HTTP/1.1 503"), reply[:100])
        finally:
            for s in idle:
                s.close()
        healthz_request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        poll(lambda: http_raw(self.broker.http_port, healthz_request).startswith(b"HTTP/1.1 200"),
             timeout=30, what="/healthz served once the idle ones closed")
        self.assertGreaterEqual(metrics(self.broker)["moonpost_http_rejected_total"], 1)


class HttpLimitsTest(BrokerTest):
    scripts = [AUTH, "ping"]
    extra = ["http_header_timeout 1", "http_idle_timeout 1", "http_max_header 1024"]

    def test_head_over_the_limit_is_answered_431(self):
        head = b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * 4000 + b"\r\n\r\n"
        self.assertTrue(http_raw(self.broker.http_port, head).startswith(b"HTTP/1.1 431"))

    def test_unterminated_head_is_cut_at_the_limit(self):
        with socket.create_connection(("127.0.0.1", self.broker.http_port), timeout=5) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nX-Pad: ")
            sent = 0
            try:
                while sent < 4 << 20:  # the broker stops reading after the limit
                    s.sendall(b"a" * 65536)
                    sent += 65536
            except (BrokenPipeError, ConnectionResetError, socket.timeout):
                pass
            self.assertLess(sent, 4 << 20)

    def test_head_not_finished_in_time_is_closed(self):
        with socket.create_connection(("127.0.0.1", self.broker.http_port)) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\n")
            self.assertTrue(closed_within(s, 5))

    def test_kept_alive_connection_closes_when_idle(self):
        with socket.create_connection(("127.0.0.1", self.broker.http_port)) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            s.settimeout(5)
            self.assertTrue(s.recv(65536).startswith(b"HTTP/1.1 200"))
            self.assertTrue(closed_within(s, 5))

    def test_reply_reaches_a_client_that_shut_its_side(self):
        with socket.create_connection(("127.0.0.1", self.broker.http_port), timeout=5) as s:
            s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            s.shutdown(socket.SHUT_WR)
            out = recv_until_closed(s)
        self.assertTrue(out.startswith(b"HTTP/1.1 200 OK"), out)
        self.assertTrue(out.endswith(b"\r\n\r\nok\n"), out)

    def test_keep_alive_serves_several_requests(self):
        with socket.create_connection(("127.0.0.1", self.broker.http_port), timeout=5) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\n"
                      b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
            out = recv_until_closed(s)
        self.assertEqual(out.count(b"HTTP/1.1 200 OK"), 2, out)
        self.assertEqual(out.count(b"HTTP/1.1 404"), 1, out)


def ping_code(port):
    """The code of the reply to a ping on a connection of its own."""
    c = Client(port, timeout=2)
    try:
        return c.call({"type": "ping"}, timeout=2)["code"]
    finally:
        c.close()


class DescriptorExhaustionTest(BrokerTest):
    scripts = [AUTH, "ping"]
    extra = ["log_level info", "max_connections 1000"]

    def test_accept_backs_off_when_descriptors_run_out(self):
        pid = self.broker.proc.pid
        in_use = len(os.listdir("/proc/%d/fd" % pid))
        soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (in_use + 10, hard))
        log_before = os.path.getsize(self.broker.log)
        socks = []
        try:
            for _ in range(100):
                socks.append(socket.create_connection(("127.0.0.1", self.broker.port)))
            cpu0, t0 = cpu_seconds(pid), time.time()
            time.sleep(2)  # the property is what the broker does NOT do over a while: spin
            busy = (cpu_seconds(pid) - cpu0) / (time.time() - t0)
            grown = os.path.getsize(self.broker.log) - log_before
            print("out of descriptors: CPU share %.3f, log grew %d bytes" % (busy, grown))
            self.assertLess(busy, 0.3, "CPU share while out of descriptors")
            self.assertLess(grown, 20000, "log bytes written while out of descriptors")
        finally:
            for s in socks:
                s.close()
        # with the clients gone, the broker serves again (the limit is still low)
        try:
            poll(lambda: ping_code(self.broker.port) == 200, timeout=30, interval=0.2,
                 what="a ping served with the clients gone", retry_on=(OSError, EOFError))
        finally:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))


class DescriptorLimitConfigTest(RedisServerTest):
    def test_max_connections_over_the_descriptor_limit_is_a_config_error(self):
        b = Broker(self.tmp, self.redis.port, [AUTH], ["max_connections 100000"])

        def low_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))

        p = subprocess.run([BROKER, "-c", b.conf], capture_output=True, timeout=20,
                           preexec_fn=low_limit)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(b"max_connections 100000 needs", p.stderr)
        self.assertIn(b"limit is 1024", p.stderr)

    def test_soft_limit_is_raised_to_the_hard_one(self):
        b = Broker(self.tmp, self.redis.port, [AUTH], ["max_connections 1500"])
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard != resource.RLIM_INFINITY and hard < 2000:
            self.fail("this test needs a hard descriptor limit of at least 2000")

        def low_soft_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

        b.logf = open(b.log, "ab")
        b.proc = subprocess.Popen([BROKER, "-c", b.conf], stdout=b.logf, stderr=b.logf,
                                  preexec_fn=low_soft_limit)
        try:
            wait_port(b.port, proc=b.proc)
            self.assertGreater(resource.prlimit(b.proc.pid, resource.RLIMIT_NOFILE)[0], 1500)
        finally:
            self.assertEqual(b.stop(), 0)


class RefusalLogTest(BrokerTest):
    scripts = [AUTH, "ping"]
    extra = ["max_connections 5", "log_level info"]

    def test_refused_connections_log_one_line_per_interval(self):
        wait_connections(self.broker, 0)  # the harness's probe connection is let go of
        held = [self.connect() for _ in range(5)]
        for c in held:
            self.assertEqual(c.call({"type": "ping"})["code"], 200)
        for _ in range(50):
            c = Client(self.broker.port)
            self.assertEqual(c.expect_closed()[-1]["code"], 503)
            c.close()
        lines = [l for l in self.broker.log_text().splitlines() if "refus" in l]
        self.assertGreaterEqual(len(lines), 1)
        self.assertLessEqual(len(lines), 2, lines)


class RequestRateTest(BrokerTest):
    scripts = [AUTH, "ping"]
    extra = ["request_rate 200", "request_burst 400"]

    def test_pipelined_burst_gets_429(self):
        c = self.connect()
        n = 2000
        c.send_raw(b"".join(frame({"type": "ping", "id": i}) for i in range(1, n + 1)))
        codes, bye = [], None
        try:
            while len(codes) < n:
                f = c.read_frame(10)
                if f["type"] == "res":
                    codes.append(f["code"])
                elif f["type"] == "bye":
                    bye = f
        except (EOFError, ConnectionResetError):
            pass
        self.assertGreaterEqual(codes.count(200), 350)
        self.assertGreater(codes.count(429), 0)
        self.assertEqual(set(codes), {200, 429})
        # more than request_burst refused before the budget refills ends the connection
        self.assertEqual(bye, {"type": "bye", "code": 429, "error": "request rate exceeded"})
        self.assertGreaterEqual(metrics(self.broker)["moonpost_rate_limited_total"], 1)

    def test_normal_use_is_not_limited(self):
        c = self.connect()
        for _ in range(3):
            ids = [c.send({"type": "ping"}) for _ in range(100)]
            self.assertEqual([c.wait_res(i)["code"] for i in ids], [200] * 100)
            time.sleep(0.5)  # pacing is the point: at most 200 requests a second, request_rate


if __name__ == "__main__":
    unittest.main()
