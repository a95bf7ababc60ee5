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


def poll(fn, timeout=30.0, interval=0.05, what="condition", retry_on=()):
    """Calls FN until it returns something true and returns that value: the one way the tests
    wait for a state of the broker, Redis or a process. TIMEOUT is a generous upper bound, not
    an expectation. An exception of a type in RETRY_ON counts as "not yet" (a connection refused
    while a listener starts); past TIMEOUT, an AssertionError names WHAT (a string, or a
    function that returns one then) and the last result."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = fn()
        except retry_on as e:
            v = e
        else:
            if v:
                return v
        if time.monotonic() > deadline:
            raise AssertionError("%s not reached within %g s (last: %r)"
                                 % (what() if callable(what) else what, timeout, v))
        time.sleep(interval)


def rss_kib(pid):
    """The resident memory of process PID, in KiB (VmRSS of /proc/PID/status)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def sanitized(binary):
    """True when BINARY was built with AddressSanitizer, whose allocator keeps freed memory in
    quarantine and ignores malloc_trim: its RSS says nothing about the program's own."""
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()
