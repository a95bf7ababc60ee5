#!/usr/bin/env python3
"""run_with_broker: starts redis-server and a moonpost broker on free ports (through the
integration harness), runs one test command against them, and exits with its status.

    run_with_broker.py --broker PATH [--conf "key value"]... [--restart] -- CMD [ARG]...

The command sees MOONPOST_HOST, MOONPOST_PORT, MOONPOST_ADMIN_SOCKET, MOONPOST_REDIS_PORT and
MOONPOST_BROKER_LOG. With --restart, a broker that exits while the command runs (a test that
sends admin.shutdown) is started again on the same ports, so clients can reconnect and resume.
The broker's log is printed when the command fails."""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
MAX_RESTARTS = 10


def parse():
    p = argparse.ArgumentParser()
    p.add_argument("--broker", required=True, help="the moonpost binary")
    p.add_argument("--conf", action="append", default=[], help="an extra config line")
    p.add_argument("--restart", action="store_true", help="restart the broker when it exits")
    p.add_argument("--timeout", type=float, default=300, help="seconds the command may run")
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    args = p.parse_args()
    if args.cmd and args.cmd[0] == "--":
        args.cmd = args.cmd[1:]
    if not args.cmd:
        p.error("no command")
    return args


def main():
    args = parse()
    os.environ["MOONPOST_BIN"] = os.path.abspath(args.broker)
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
    import harness  # after MOONPOST_BIN: the harness reads it when imported

    tmp = tempfile.mkdtemp(prefix="moonpost-client-test-")
    redis = harness.Redis(tmp)
    broker = None
    rc = 1
    try:
        redis.start()
        broker = harness.Broker(tmp, redis.port, extra=args.conf).start()
        env = dict(os.environ, MOONPOST_HOST="127.0.0.1", MOONPOST_PORT=str(broker.port),
                   MOONPOST_ADMIN_SOCKET=broker.admin, MOONPOST_REDIS_PORT=str(redis.port),
                   MOONPOST_BROKER_LOG=broker.log, MOONPOST_TMP=tmp)
        rc = supervise(args, broker, env)
    finally:
        if broker is not None:
            try:
                broker.stop()
            except AssertionError as e:
                print("run_with_broker: %s" % e, file=sys.stderr)
                rc = rc or 1
        redis.stop()
        if rc != 0 and broker is not None and os.path.exists(broker.log):
            print("---- broker log (tail) ----", file=sys.stderr)
            print(broker.log_text()[-6000:], file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)
    return rc


def supervise(args, broker, env):
    test = subprocess.Popen(args.cmd, env=env)
    deadline = time.time() + args.timeout
    restarts = 0
    while True:
        try:
            # waits for the test's exit, looking at the broker every 50 ms meanwhile
            return test.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            pass
        if time.time() > deadline:
            test.kill()
            test.wait()
            print("run_with_broker: %s timed out" % args.cmd[0], file=sys.stderr)
            return 1
        if broker.proc is not None and broker.proc.poll() is not None:
            if not args.restart or restarts >= MAX_RESTARTS:
                broker.stop()  # gone for good: the test will see that
            else:
                restarts += 1
                broker.stop()
                broker.start()


if __name__ == "__main__":
    sys.exit(main())
