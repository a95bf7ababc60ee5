#!/usr/bin/env python3
"""file_bench.py: file transfer on loopback with libmoonpost (through ctypes): upload and
download MiB/s of a SIZE MiB file, the broker's and Redis's CPU per MiB, Redis memory per
stored MiB, then the private chat's latency (moonpost-bench private) alone and with PARALLEL
uploads running at the same time. Starts its own redis-server and broker (scripts + files.lua)
on free ports; bounded: about 30 s with the defaults.

    bench/file_bench.py [--build build] [--bench-build build] [--mib 16] [--runs 3]
                        [--parallel 4] [--chat-seconds 8] [--chat-rate 1000]
                        [--request-rate R]"""
import argparse
import ctypes
import ctypes.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))


def cpu_seconds(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Lib:
    """The few libmoonpost calls the benchmark needs."""

    def __init__(self, build):
        self.l = l = ctypes.CDLL(os.path.join(build, "clients", "c", "libmoonpost.so"))
        l.mp_client_new.restype = ctypes.c_void_p
        l.mp_client_connect.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint16,
                                        ctypes.c_int]
        l.mp_register.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                                  ctypes.c_char_p]
        l.mp_login.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]
        l.mp_client_set_timeout.argtypes = [ctypes.c_void_p, ctypes.c_int]
        l.mp_client_errmsg.argtypes = [ctypes.c_void_p]
        l.mp_client_errmsg.restype = ctypes.c_char_p
        l.mp_file_send.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                                   ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                                   ctypes.c_void_p, ctypes.c_void_p]
        l.mp_file_fetch.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                                    ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
        l.mp_client_free.argtypes = [ctypes.c_void_p]

    def session(self, port, user):
        c = self.l.mp_client_new()
        self.l.mp_client_set_timeout(c, 30000)
        self.check(c, self.l.mp_client_connect(c, b"127.0.0.1", port, 5000))
        self.l.mp_register(c, user.encode(), b"secret1", None)
        self.check(c, self.l.mp_login(c, user.encode(), b"secret1", None))
        return c

    def check(self, c, err):
        if err != 0:
            raise RuntimeError(self.l.mp_client_errmsg(c).decode())

    def send(self, c, to, data):
        fid = ctypes.create_string_buffer(33)
        self.check(c, self.l.mp_file_send(c, to.encode(), b"bench.bin", data, len(data), fid,
                                          None, None))
        return fid.value.decode()

    def fetch(self, c, fid, path):
        self.check(c, self.l.mp_file_fetch(c, fid.encode(), path.encode(), 1, None, None))


def sha256_ms_per_mib(data):
    """What hashing costs the broker per MiB when an offer has a sha256: libsodium's SHA-256,
    the one the broker calls (libmoonpost sends no sha256, so the transfers above do not)."""
    sodium = ctypes.CDLL(ctypes.util.find_library("sodium"))
    digest = ctypes.create_string_buffer(32)
    t0 = time.process_time()
    sodium.crypto_hash_sha256(digest, data, ctypes.c_ulonglong(len(data)))
    return (time.process_time() - t0) * 1000 / (len(data) / 1048576)


def redis_info(redis, section, key):
    text = redis.cmd("INFO", section).decode()
    return float(next(l.split(":")[1] for l in text.splitlines() if l.startswith(key + ":")))


def forget(redis, fid):
    """Deletes a measured file, so that Redis holds one at a time (the benchmark's own cleanup:
    the protocol has no delete)."""
    redis.cmd("DEL", "mp:file:{%s}" % fid, "mp:file:{%s}:data" % fid)


def transfer(lib, redis, broker, a, b, data, tmp, runs):
    rows = []
    for _ in range(runs):
        mem0 = redis_info(redis, "memory", "used_memory")
        rcpu0 = redis_info(redis, "cpu", "used_cpu_sys") + redis_info(redis, "cpu",
                                                                      "used_cpu_user")
        bcpu0, t0 = cpu_seconds(broker.proc.pid), time.perf_counter()
        fid = lib.send(a, "fb_b", data)
        up_s = time.perf_counter() - t0
        up_cpu = cpu_seconds(broker.proc.pid) - bcpu0
        rcpu = redis_info(redis, "cpu", "used_cpu_sys") + redis_info(redis, "cpu",
                                                                     "used_cpu_user") - rcpu0
        mem = redis_info(redis, "memory", "used_memory") - mem0
        path = os.path.join(tmp, "fetched")
        bcpu0, t0 = cpu_seconds(broker.proc.pid), time.perf_counter()
        lib.fetch(b, fid, path)
        down_s = time.perf_counter() - t0
        down_cpu = cpu_seconds(broker.proc.pid) - bcpu0
        with open(path, "rb") as f:
            assert f.read() == data, "the download differs"
        forget(redis, fid)
        mib = len(data) / 1048576
        rows.append(dict(up_mib_s=mib / up_s, down_mib_s=mib / down_s,
                         broker_cpu_ms_per_mib_up=up_cpu * 1000 / mib,
                         broker_cpu_ms_per_mib_down=down_cpu * 1000 / mib,
                         redis_cpu_ms_per_mib_up=rcpu * 1000 / mib,
                         redis_bytes_per_mib=mem / mib))
    # throughput: the median run; CPU (counted in clock ticks of 10 ms) and memory: all runs
    out = {k: statistics.median(r[k] for r in rows) for k in ("up_mib_s", "down_mib_s")}
    for k in rows[0]:
        if k not in out:
            out[k] = sum(r[k] for r in rows) / len(rows)
    return out


def chat(bench_build, port, seconds, rate, broker_pid):
    out = subprocess.run(
        [os.path.join(bench_build, "bench", "moonpost-bench"), "private", "-p", str(port),
         "-c", "100", "-d", str(seconds), "--warmup", "1", "-r", str(rate), "--json",
         "--no-progress", "--user-prefix", "fc", "--broker-pid", str(broker_pid)],
        check=True, capture_output=True, text=True, timeout=seconds + 120).stdout
    r = json.loads(out)
    return r["latency"]


def uploads_running(lib, redis, port, n, data, stop):
    """N threads, each uploading DATA again and again until STOP; returns them and a list that
    gets each upload's seconds."""
    times = []

    def loop(i):
        c = lib.session(port, "fp%d" % i)
        while not stop.is_set():
            t0 = time.perf_counter()
            fid = lib.send(c, "fb_b", data)  # ctypes lets go of the GIL during the call
            times.append(time.perf_counter() - t0)
            forget(redis, fid)
        lib.l.mp_client_free(c)
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    return threads, times


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--bench-build", default=None)
    p.add_argument("--mib", type=int, default=16)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--parallel", type=int, default=4)
    p.add_argument("--chat-seconds", type=int, default=8)
    p.add_argument("--chat-rate", type=int, default=1000)
    p.add_argument("--request-rate", type=int, default=None,
                   help="the broker's request_rate (default: its own default, 200 per second)")
    a = p.parse_args()
    os.environ["MOONPOST_BIN"] = os.path.join(a.build, "broker", "moonpost")
    import harness  # after MOONPOST_BIN

    tmp = tempfile.mkdtemp(prefix="moonpost-file-bench.")
    redis = harness.Redis(tmp)
    redis.start()
    broker = harness.Broker(tmp, redis.port, harness.ALL_SCRIPTS + ["files"], [
        "log_level info", "max_file_size %d" % (a.mib << 20),
        "file_quota %d" % ((a.parallel + 2) * (a.mib << 20))])
    if a.request_rate is not None:
        with open(broker.conf, "a") as f:
            f.write("request_rate %d\n" % a.request_rate)
    broker.start()
    lib = Lib(a.build)
    try:
        sender, recipient = lib.session(broker.port, "fb_a"), lib.session(broker.port, "fb_b")
        data = os.urandom(a.mib << 20)
        result = dict(mib=a.mib, runs=a.runs)
        result["transfer"] = transfer(lib, redis, broker, sender, recipient, data, tmp, a.runs)
        result["transfer"]["sha256_ms_per_mib"] = sha256_ms_per_mib(data)
        print(json.dumps(result["transfer"], indent=1), file=sys.stderr)
        result["chat_alone"] = chat(a.bench_build or a.build, broker.port, a.chat_seconds,
                                    a.chat_rate, broker.proc.pid)
        stop = threading.Event()
        threads, times = uploads_running(lib, redis, broker.port, a.parallel, data, stop)
        try:
            result["chat_with_uploads"] = chat(a.bench_build or a.build, broker.port,
                                               a.chat_seconds, a.chat_rate, broker.proc.pid)
        finally:
            stop.set()
            for t in threads:
                t.join()
        result["parallel_uploads"] = dict(
            n=a.parallel, done=len(times),
            mib_s_each=(a.mib / statistics.median(times)) if times else 0)
        print(json.dumps(result, indent=1))
    finally:
        broker.stop()
        redis.stop()


if __name__ == "__main__":
    main()
