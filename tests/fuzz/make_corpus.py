#!/usr/bin/env python3
"""Writes the fuzzers' seed corpus: valid frames of PROTOCOL.md, as whole frames (length
prefix and body, for fuzz_frame) and as bare bodies (one MessagePack value, for fuzz_codec).

Usage: make_corpus.py [DIR]   (default: the corpus/ directory beside this script)
"""
import os
import struct
import sys


def pack(v):
    """The smallest MessagePack encoding of V (None, bool, int, float, str, bytes, list, dict)."""
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if 0 <= v <= 0x7F:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack(">b", v)
        if v >= 0:
            for code, fmt, top in ((0xCC, ">B", 0xFF), (0xCD, ">H", 0xFFFF),
                                   (0xCE, ">I", 0xFFFFFFFF), (0xCF, ">Q", 2**64 - 1)):
                if v <= top:
                    return bytes([code]) + struct.pack(fmt, v)
        for code, fmt, bits in ((0xD0, ">b", 8), (0xD1, ">h", 16), (0xD2, ">i", 32),
                                (0xD3, ">q", 64)):
            if v >= -(2 ** (bits - 1)):
                return bytes([code]) + struct.pack(fmt, v)
        raise ValueError(v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        data = v.encode()
        return sized(len(data), 0xA0, 31, (0xD9, 0xDA, 0xDB)) + data
    if isinstance(v, bytes):
        return sized(len(v), None, -1, (0xC4, 0xC5, 0xC6)) + v
    if isinstance(v, list):
        return sized(len(v), 0x90, 15, (None, 0xDC, 0xDD)) + b"".join(pack(x) for x in v)
    if isinstance(v, dict):
        return sized(len(v), 0x80, 15, (None, 0xDE, 0xDF)) + b"".join(
            pack(k) + pack(x) for k, x in v.items())
    raise TypeError(type(v))


def sized(n, fix, fix_max, codes):
    """The header of a str/bin/array/map of N elements: fix format, then 8, 16, 32-bit sizes."""
    if n <= fix_max:
        return bytes([fix | n])
    for code, fmt, top in zip(codes, (">B", ">H", ">I"), (0xFF, 0xFFFF, 0xFFFFFFFF)):
        if code is not None and n <= top:
            return bytes([code]) + struct.pack(fmt, n)
    raise ValueError(n)


def nested(depth):
    """A frame whose deepest container is at DEPTH (the top-level map is depth 1)."""
    value = []
    for _ in range(depth - 2):
        value = [value]
    return {"type": "ping", "deep": value}


SEEDS = {
    "ping": {"type": "ping"},
    "ping_id": {"type": "ping", "id": 1},
    "register": {"type": "register", "user": "alice", "password": "secret123", "name": "Alice",
                 "id": 2},
    "login": {"type": "login", "user": "alice", "password": "secret123", "id": 3},
    "resume": {"type": "resume", "user": "alice", "token": "0123456789abcdef", "id": 2**32},
    "users": {"type": "users", "limit": 1000, "id": 5},
    "send_str": {"type": "send", "to": "bob", "body": "hello, bob", "id": 6},
    "send_bin": {"type": "send", "to": "bob", "body": bytes(range(256)), "id": 2**64 - 1},
    "send_long": {"type": "send", "to": "bob", "body": "x" * 300},
    "broadcast": {"type": "broadcast", "body": "hi all", "id": 8},
    "ack": {"type": "ack", "upto": 123456789},
    "msg": {"type": "msg", "mid": 42, "from": "alice", "to": "bob", "body": b"\x00\x01",
            "ts": 1700000000000, "offline": True},
    "res": {"type": "res", "id": 3, "code": 200, "token": "t", "users": ["alice", "bob"]},
    "bye": {"type": "bye", "code": 409, "error": "logged in elsewhere"},
    "presence": {"type": "presence", "user": "bob", "online": False},
    "admin_kick": {"type": "admin.kick", "user": "bob", "id": 9},
    "every_type": {"type": "x", "nil": None, "t": True, "f": False, "neg": -1, "i8": -100,
                   "i16": -30000, "i32": -2**31, "i64": -2**63, "u8": 200, "u16": 60000,
                   "u32": 2**32 - 1, "u64": 2**63, "f64": 3.25, "empty_list": [], "empty_map": {},
                   "nested": {"a": [1, {"b": [2, 3]}], 7: "int key", -7: "negative key"}},
    "deep32": nested(32),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "corpus")
    os.makedirs(out, exist_ok=True)
    for name, value in SEEDS.items():
        body = pack(value)
        with open(os.path.join(out, "frame_" + name), "wb") as f:
            f.write(struct.pack(">I", len(body)) + body)
        with open(os.path.join(out, "body_" + name), "wb") as f:
            f.write(body)
    # several frames in one stream, as a connection reads them
    stream = b"".join(struct.pack(">I", len(b)) + b
                      for b in (pack(SEEDS["login"]), pack(SEEDS["send_str"]), pack(SEEDS["ack"])))
    with open(os.path.join(out, "stream_login_send_ack"), "wb") as f:
        f.write(stream)
    print("wrote %d seeds to %s" % (2 * len(SEEDS) + 1, out))


if __name__ == "__main__":
    main()
