#!/usr/bin/env python3
"""test_chat_files: moonpost-chat's file transfer in a pseudo-terminal against a live broker
with scripts/files.lua: a file whose name another user chose to be hostile (leading dots,
backslashes, terminal escape sequences) is listed by /files and saved by /get inside the
download directory under a harmless name; /get never replaces a file without a yes; /file sends
one with a progress bar.

Run by run_with_broker.py (MOONPOST_PORT, MOONPOST_TMP); MOONPOST_CHAT is the binary."""
import hashlib
import os
import re
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                                "tests", "integration"))
from harness import Client  # noqa: E402
from test_chat import PORT, Terminal  # noqa: E402

HOSTILE = "..\x1b]0;pwned\x07\\..\\passwd\r\n"
SAFE = "]0;pwned_.._passwd"


def logged_in(user, password="secret-pw"):
    c = Client(int(PORT))
    c.call(dict(type="register", user=user, password=password))
    r = c.call(dict(type="login", user=user, password=password))
    assert r["code"] == 200, r
    return c


def upload(c, to, name, data):
    r = c.call(dict(type="file.offer", to=to, name=name, size=len(data),
                    sha256=hashlib.sha256(data).digest()))
    assert r["code"] == 200, r
    for off in range(0, len(data), r["chunk_max"]):
        x = c.call(dict(type="file.chunk", fid=r["fid"], offset=off,
                        data=data[off:off + r["chunk_max"]]))
        assert x["code"] == 200, x
    return r["fid"]


class ChatFilesTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=os.environ.get("MOONPOST_TMP"))
        self.downloads = os.path.join(self.dir, "downloads")
        os.mkdir(self.downloads)
        self.terms, self.clients = [], []

    def tearDown(self):
        for t in self.terms:
            t.close()
        for c in self.clients:
            c.close()

    def chat(self, user):
        t = Terminal("--user", user, "--password", "chatpw12", "--register",
                     "--download-dir", self.downloads)
        self.terms.append(t)
        t.expect(r"%s> " % user)
        return t

    def test_hostile_name_is_saved_safely_and_never_overwritten_unasked(self):
        bob = self.chat("fbob")
        sender = logged_in("fmallory")
        self.clients.append(sender)
        data = os.urandom(200000)
        fid = upload(sender, "fbob", HOSTILE, data)
        bob.expect(r"fmallory sent you a file: %s \(200000 bytes\); /get %s"
                   % (re.escape(SAFE), fid))
        self.assertNotIn(b"\x1b]0;", bob.out)  # the escape sequence never reached the terminal
        bob.line("/files")
        bob.expect(r"%s\s+%s\s+200000 bytes\s+from fmallory" % (fid, re.escape(SAFE)))

        bob.line("/get " + fid)
        bob.expect(r"saved ")
        bob.expect(r"fbob> ")
        self.assertEqual(os.listdir(self.downloads), [SAFE])
        self.assertEqual(os.listdir(self.dir), ["downloads"])  # nothing beside it
        saved = os.path.join(self.downloads, SAFE)
        with open(saved, "rb") as f:
            self.assertEqual(f.read(), data)

        with open(saved, "wb") as f:
            f.write(b"mine")
        bob.line("/get " + fid)
        bob.expect(r"overwrite\? \(y/n\) ")
        bob.line("n")
        bob.expect(r"not saved")
        with open(saved, "rb") as f:
            self.assertEqual(f.read(), b"mine")
        bob.line("/get " + fid)
        bob.expect(r"overwrite\? \(y/n\) ")
        bob.line("y")
        bob.expect(r"saved ")
        with open(saved, "rb") as f:
            self.assertEqual(f.read(), data)

        # a path of the user's own choosing: a directory, or a file name
        elsewhere = os.path.join(self.dir, "mine.bin")
        bob.line("/get %s %s" % (fid, elsewhere))
        bob.expect(r"saved ")
        with open(elsewhere, "rb") as f:
            self.assertEqual(f.read(), data)
        bob.line("/quit")
        self.assertEqual(bob.wait(), 0)

    def test_file_command_sends_with_a_progress_bar(self):
        alice = self.chat("falice")
        peer = logged_in("fpeer")
        self.clients.append(peer)
        path = os.path.join(self.dir, "holiday photo.jpg")
        data = os.urandom(700000)
        with open(path, "wb") as f:
            f.write(data)
        alice.line("/file fpeer " + path)
        alice.expect(r"sending \[#+\] 100% 0\.7/0\.7 MiB")
        alice.expect(r"file sent to fpeer \(([0-9a-f]{32})\)")
        m = peer.wait_push("msg", 10, lambda m: "file" in m)
        self.assertEqual(m["file"]["name"], "holiday photo.jpg")
        got = b""
        while len(got) < len(data):
            r = peer.call(dict(type="file.get", fid=m["file"]["fid"], offset=len(got),
                               length=65000))
            self.assertEqual(r["code"], 200, r)
            got += r["data"]
        self.assertEqual(got, data)
        alice.line("/file nobody-here " + path)
        alice.expect(r"send the file failed: .*\(404")
        alice.line("/file fpeer /no/such/file")
        alice.expect(r"send the file failed: .*cannot read /no/such/file")
        alice.line("/get")
        alice.expect(r"usage: /get FID \[PATH\]")
        alice.line("/quit")
        self.assertEqual(alice.wait(), 0)


if __name__ == "__main__":
    unittest.main()
