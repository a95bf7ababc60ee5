#!/usr/bin/env python3
"""file_layout.py: how a 16 MiB file stored in 64 KiB chunks costs Redis, for the two layouts
file transfer could use: chunks APPENDed to one string, or RPUSHed to a list. Reports Redis's
used_memory per stored MiB, the time to store the chunks (one command each, as the broker sends
them, answered before the next) and to read the file back in 64 KiB pieces (GETRANGE, or
LINDEX of the chunk). Starts its own redis-server; a few seconds.

    bench/file_layout.py [--mib 16] [--chunk 65280]"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from redis_cost import Conn, command, cpu_seconds, start_redis, stop_redis  # noqa: E402


def used_memory(conn):
    info = conn.pipeline([command("INFO", "memory")])[0].decode()
    return int(next(l.split(":")[1] for l in info.splitlines() if l.startswith("used_memory:")))


def measure(conn, pid, layout, data, chunk):
    conn.pipeline([command("FLUSHALL")])
    before = used_memory(conn)
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    for off in range(0, len(data), chunk):
        piece = data[off:off + chunk]
        conn.pipeline([command("APPEND" if layout == "string" else "RPUSH", "f", piece)])
    store_s, store_cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
    stored = used_memory(conn) - before
    t0 = time.perf_counter()
    got = []
    for i, off in enumerate(range(0, len(data), chunk)):
        if layout == "string":
            got.append(conn.pipeline([command("GETRANGE", "f", off, off + chunk - 1)])[0])
        else:
            got.append(conn.pipeline([command("LINDEX", "f", i)])[0])
    read_s = time.perf_counter() - t0
    assert b"".join(got) == data
    return stored, store_s, store_cpu, read_s


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mib", type=int, default=16)
    p.add_argument("--chunk", type=int, default=65280)
    a = p.parse_args()
    data = os.urandom(a.mib << 20)
    redis, port, tmp = start_redis()
    try:
        conn = Conn(port)
        print("%-7s %12s %12s %14s %12s" % ("layout", "bytes/MiB", "store MiB/s",
                                            "Redis CPU/MiB", "read MiB/s"))
        for layout in ("string", "list"):
            stored, store_s, store_cpu, read_s = measure(conn, redis.pid, layout, data, a.chunk)
            print("%-7s %12d %12.0f %11.2f ms %12.0f" % (
                layout, stored / a.mib, a.mib / store_s, store_cpu * 1000 / a.mib,
                a.mib / read_s))
    finally:
        stop_redis(redis, tmp)


if __name__ == "__main__":
    main()
