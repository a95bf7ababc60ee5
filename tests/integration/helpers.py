"""helpers: small utilities the integration tests share that do not drive a process or a
socket (those are in harness.py)."""
import itertools
import os
import time

_seq = itertools.count(1)


def uname(prefix="u"):
    """A user name no other call in this process returns (<= 32 bytes for a short PREFIX)."""
    return "%s%d_%d" % (prefix, os.getpid() % 10000, next(_seq))


def is_int(v):
    """An integer, and not a bool."""
    return isinstance(v, int) and not isinstance(v, bool)


def poll(fn, timeout=10.0, interval=0.05, what="condition"):
    """Calls fn until it returns something true; returns that value."""
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError("%s not reached within %.0f s (last: %r)" % (what, timeout, v))
        time.sleep(interval)
