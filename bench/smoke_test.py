#!/usr/bin/env python3
"""Smoke test of moonpost-bench (counts only, never timing): a real redis-server and broker
from tests/integration/harness.py, 20 private-chat clients for 2 s, and the JSON result must
show messages delivered and no error of any kind; then the same spread over two brokers, and
moonpost-forwarder (the benchmarks' ceiling) under the same load generator."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import harness  # noqa: E402

BENCH = os.environ.get("MOONPOST_BENCH",
                       os.path.join(harness.BUILD, "bench", "moonpost-bench"))
FORWARDER = os.path.join(os.path.dirname(BENCH), "moonpost-forwarder")


class BenchSmokeTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="moonpost-bench-smoke-")
        self.redis = harness.Redis(self.tmp)
        self.redis.start()
        self.broker = harness.Broker(self.tmp, self.redis.port,
                                     extra=["log_level info", "login_max_failures 1000000"])
        self.broker.start()

    def tearDown(self):
        try:
            self.broker.stop()
        finally:
            self.redis.stop()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def bench(self, *args, port=None):
        cmd = [BENCH, *args, "--port", str(port or self.broker.port), "--json", "--no-progress",
               "--timeout", "60"]
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=90)
        self.assertEqual(out.returncode, 0, out.stderr.decode(errors="replace"))
        return json.loads(out.stdout)

    def test_private_chat_delivers_without_errors(self):
        r = self.bench("private", "--clients", "20", "--duration", "2", "--warmup", "0.5",
                       "--rate", "400", "--broker-pid", str(self.broker.proc.pid))
        self.assertEqual(r["ready"], 20, r)
        self.assertGreater(r["delivered"], 0, r)
        self.assertGreater(r["latency"]["count"], 0, r)
        self.assertEqual(r["errors_total"], 0, r["errors"])
        self.assertEqual(r["errors"], {})

    def assert_every_message_reached(self, r, audience):
        """Each message sent reached AUDIENCE members (the drain waits for every worker to stop
        sending, then for every message in flight)."""
        self.assertGreater(r["sent_all"], 0, r)
        self.assertEqual(r["delivered_all"], audience * r["sent_all"], r)

    def test_rooms_deliver_to_every_member_without_errors(self):
        """The room workload: one room that 2 publishers send to and 10 clients are members of,
        then 12 clients in rooms of 4: every message reaches the other members."""
        r = self.bench("room", "--clients", "10", "--publishers", "2", "--duration", "2",
                       "--warmup", "0.5", "--rate", "200", "--user-prefix", "rf")
        self.assertEqual(r["ready"], 12, r)
        self.assertEqual(r["errors"], {})
        self.assert_every_message_reached(r, 10)
        r = self.bench("room", "--clients", "12", "--room-size", "4", "--duration", "2",
                       "--warmup", "0.5", "--rate", "200", "--user-prefix", "rr")
        self.assertEqual(r["ready"], 12, r)
        self.assertEqual(r["room_size"], 4, r)
        self.assertEqual(r["errors"], {})
        self.assert_every_message_reached(r, 3)

    def second_broker(self):
        tmp = os.path.join(self.tmp, "second")
        os.mkdir(tmp)
        broker = harness.Broker(tmp, self.redis.port,
                                extra=["log_level info", "login_max_failures 1000000"])
        broker.start()
        self.addCleanup(broker.stop)
        return broker

    def test_clients_spread_over_two_brokers_with_local_recipients(self):
        """--connect: client i connects to broker i mod 2; --recipients local sends each message
        to a client of the sender's own broker, so it arrives without a cluster."""
        other = self.second_broker()
        brokers = [self.broker, other]
        r = self.bench("private", "--clients", "20", "--duration", "2", "--warmup", "0.5",
                       "--rate", "400", "--recipients", "local",
                       "--connect", ",".join("127.0.0.1:%d" % b.port for b in brokers),
                       "--broker-pid", ",".join(str(b.proc.pid) for b in brokers))
        self.assertEqual(r["brokers"], 2, r)
        self.assertEqual(r["ready"], 20, r)
        self.assertGreater(r["latency"]["count"], 0, r)
        self.assertEqual(r["errors"], {})
        self.assertEqual(len(r["cpu_brokers_pct"]), 2, r)
        for b in brokers:
            stats = harness.admin_call(b, {"type": "admin.stats"})
            self.assertGreaterEqual(stats["connections_total"], 10, stats)

    def test_the_forwarder_serves_the_load_generator(self):
        """The ceiling of bench/run.sh speaks enough of the protocol for every chat workload:
        each broadcast reaches every receiver, private messages arrive, nothing is an error."""
        port = harness.free_port()
        proc = subprocess.Popen([FORWARDER, "-p", str(port)])
        self.addCleanup(proc.wait, 10)
        self.addCleanup(proc.terminate)
        harness.wait_port(port, proc=proc)
        r = self.bench("broadcast", "--clients", "10", "--publishers", "1", "--duration", "1",
                       "--warmup", "0.2", "--rate", "200", port=port)
        self.assertEqual(r["ready"], 11, r)
        self.assertEqual(r["errors"], {})
        self.assert_every_message_reached(r, 10)
        r = self.bench("private", "--clients", "10", "--duration", "1", "--warmup", "0.2",
                       "--rate", "400", "--ack-every", "read", port=port)
        self.assertEqual(r["ready"], 10, r)
        self.assertGreater(r["delivered"], 0, r)
        self.assertEqual(r["errors"], {})

    def test_cross_recipients_need_two_brokers(self):
        out = subprocess.run([BENCH, "private", "--clients", "4", "--recipients", "cross",
                              "--port", str(self.broker.port)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn(b"--recipients cross needs 2 brokers", out.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
