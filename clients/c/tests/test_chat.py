#!/usr/bin/env python3
"""test_chat: two moonpost-chat processes, each in its own pseudo-terminal, chat through a live
broker: a private message and a broadcast appear on the other side, a message that arrives
while a line is being typed does not break it, the menus work, errors are explained. One more
run drives moonpost-chat through plain pipes (its non-tty mode).

Run by run_with_broker.py --restart (MOONPOST_PORT, MOONPOST_ADMIN_SOCKET); MOONPOST_CHAT is
the binary."""
import os
import pty
import re
import select
import signal
import subprocess
import time
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                                "tests", "integration"))
from harness import Client  # noqa: E402
from helpers import poll  # noqa: E402

CHAT = os.environ.get("MOONPOST_CHAT", "moonpost-chat")
PORT = os.environ["MOONPOST_PORT"]


class Output:
    """What a program writes to the descriptor FD, read as it comes: expect() waits for a
    pattern."""

    def __init__(self, fd):
        self.fd = fd
        self.out = b""
        self.pos = 0  # expect() looks after what it matched before

    def read(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the program exited
            return False
        self.out += data
        return bool(data)

    def expect(self, pattern, timeout=10):
        rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        deadline = time.time() + timeout
        while True:
            m = rx.search(self.out, self.pos)
            if m:
                self.pos = m.end()
                return m
            left = deadline - time.time()
            if left <= 0 or not self.read(left) and time.time() >= deadline:
                raise AssertionError("no %r in output:\n%s" % (pattern, self.text()))

    def text(self):
        return self.out.decode(errors="replace")


class Terminal(Output):
    """moonpost-chat in a pseudo-terminal: type() keys, expect() output."""

    def __init__(self, *args):
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(CHAT, [CHAT, "--port", PORT] + list(args))
        super().__init__(fd)
        self.pid = pid

    def type(self, keys):
        os.write(self.fd, keys.encode())

    def line(self, text):
        self.type(text + "\r")

    def wait(self, timeout=10):
        """The exit code, once moonpost-chat has exited (its output is read meanwhile)."""
        def exited():
            self.read(0.05)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            return pid and (os.waitstatus_to_exitcode(status),)
        code = poll(exited, timeout, interval=0,
                    what=lambda: "moonpost-chat's exit; its output:\n" + self.text())[0]
        self.pid = None
        return code

    def close(self):
        if self.pid:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.pid = None
        os.close(self.fd)


class ChatTest(unittest.TestCase):
    def setUp(self):
        self.terms = []

    def tearDown(self):
        for t in self.terms:
            t.close()

    def start(self, *args):
        t = Terminal(*args)
        self.terms.append(t)
        return t

    def test_private_message_and_broadcast_between_two_terminals(self):
        # alice logs in from the command line, bob walks the menus
        alice = self.start("--user", "alice", "--password", "alicepw1", "--register")
        alice.expect(r"logged in as alice")
        alice.expect(r"alice> ")
        bob = self.start()
        bob.expect(r"1\) log in")
        bob.expect(r"choose 1-3> ")
        bob.line("2")
        bob.expect(r"user name: ")
        bob.line("bob")
        bob.expect(r"password: ")
        bob.line("bobspw1")
        bob.expect(r"registered bob")
        bob.line("1")
        bob.expect(r"user name: ")
        bob.line("bob")
        bob.expect(r"password: ")
        bob.line("bobspw1")
        bob.expect(r"logged in as bob")
        bob.expect(r"2 user\(s\) online: .*(alice, bob|bob, alice)")
        self.assertNotIn(b"bobspw1", bob.out)  # the password is not echoed

        alice.line("/msg bob hello bob")
        alice.expect(r"sent to bob")
        bob.expect(r"\[private\] alice: hello bob")

        bob.line("/all hi everyone")
        bob.expect(r"sent to everyone online")
        alice.expect(r"\[all\] bob: hi everyone")

        bob.line("2")  # the menu's "send a private message"
        bob.expect(r"to: ")
        bob.line("alice")
        bob.expect(r"message to alice: ")
        bob.line("sent from the menu")
        alice.expect(r"\[private\] bob: sent from the menu")

        bob.line("3")  # broadcast from the menu
        bob.expect(r"message to everyone: ")
        bob.line("menu broadcast")
        alice.expect(r"\[all\] bob: menu broadcast")

        bob.line("4")  # show received messages
        bob.expect(r"the last 1 message\(s\)")
        bob.expect(r"\[private\] alice: hello bob")

        alice.line("1")  # show online users
        alice.expect(r"2 user\(s\) online")
        alice.line("/users")
        alice.expect(r"2 user\(s\) online")

        bob.line("5")  # log out
        bob.expect(r"logged out")
        bob.expect(r"choose 1-3> ")
        bob.line("3")
        self.assertEqual(bob.wait(), 0)
        alice.line("/quit")
        self.assertEqual(alice.wait(), 0)

    def test_rooms(self):
        frank = self.start("--user", "frank", "--password", "frankpw1", "--register")
        frank.expect(r"frank> ")
        grace = self.start("--user", "grace", "--password", "gracepw1", "--register")
        grace.expect(r"grace> ")
        frank.line("/join lobby")
        frank.expect(r"created room #lobby")
        frank.expect(r"frank #lobby> ")
        grace.line("/join lobby")
        grace.expect(r"joined #lobby")
        grace.expect(r"grace #lobby> ")
        frank.line("hello room")  # typed lines go to the current room
        frank.expect(r"\[#lobby\] frank: hello room")  # shown to the sender too
        grace.expect(r"\[#lobby\] frank: hello room")
        grace.line("/rooms")
        grace.expect(r"\* #lobby: 0 unread, 2 member\(s\)")
        grace.line("/room")  # back to the menu
        grace.expect(r"1\) show online users")
        frank.line("/room lobby second one")
        grace.expect(r"\[#lobby\] frank: second one")
        grace.line("/rooms")
        grace.expect(r"  #lobby: 1 unread, 2 member\(s\)")
        grace.line("/room lobby")
        grace.expect(r"grace #lobby> ")
        grace.line("/history 5")
        grace.expect(r"the last 2 message\(s\) of #lobby")
        grace.expect(r"\[#lobby\] frank: hello room")
        grace.expect(r"\[#lobby\] frank: second one")
        grace.line("/rooms")
        grace.expect(r"\* #lobby: 0 unread")
        grace.line("/join secret-place")
        grace.expect(r"created room #secret-place")
        grace.line("/leave")
        grace.expect(r"left #secret-place")
        grace.line("/leave nowhere")
        grace.expect(r"leave failed: you are not a member of that room \(404")
        grace.line("/quit")
        self.assertEqual(grace.wait(), 0)
        frank.line("/quit")
        self.assertEqual(frank.wait(), 0)

    def test_incoming_message_keeps_the_typed_line(self):
        carol = self.start("--user", "carol", "--password", "carolpw1", "--register")
        carol.expect(r"carol> ")
        dave = self.start("--user", "dave", "--password", "davepw1", "--register")
        dave.expect(r"dave> ")
        carol.type("/msg dave half")  # no Enter yet
        carol.expect(r"carol> /msg dave half")
        dave.line("/msg carol interrupting")
        carol.expect(r"\[private\] dave: interrupting")
        carol.expect(r"carol> /msg dave half")  # the typed line is drawn again
        carol.line(" done")
        dave.expect(r"\[private\] carol: half done")

    def test_errors_are_explained(self):
        t = self.start("--user", "erin", "--password", "erinpw1", "--register")
        t.expect(r"erin> ")
        t.line("/msg nobody-at-all hello")
        t.expect(r"send failed: no such user \(404")
        t.line("/msg")
        t.expect(r"usage: /msg USER TEXT")
        t.line("/nonsense")
        t.expect(r"unknown command /nonsense")
        t.line("9")
        t.expect(r"choose 1-5")
        t.line("/quit")
        self.assertEqual(t.wait(), 0)

        bad = self.start("--user", "erin", "--password", "wrong-one")
        bad.expect(r"log in failed: wrong user name or password \(401")
        self.assertEqual(bad.wait(), 1)

        taken = self.start()
        taken.expect(r"choose 1-3> ")
        taken.line("2")
        taken.expect(r"user name: ")
        taken.line("erin")
        taken.expect(r"password: ")
        taken.line("whatever1")
        taken.expect(r"register failed: that user name is taken \(409")

        nobroker = Terminal("--port", "1", "--user", "x", "--password", "yyyyyy")
        self.terms.append(nobroker)
        nobroker.expect(r"connect failed: .*refused.*is the broker running")
        self.assertEqual(nobroker.wait(), 1)

    def test_pipes_without_a_terminal(self):
        a = self.start("--user", "frank", "--password", "frankpw1", "--register")
        a.expect(r"frank> ")
        p = subprocess.Popen([CHAT, "--port", PORT, "--user", "gina", "--password", "ginapw1",
                              "--register"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        try:
            p.stdin.write("/msg frank through a pipe\n/all to all from a pipe\n")
            p.stdin.flush()
            a.expect(r"\[private\] gina: through a pipe")
            a.expect(r"\[all\] gina: to all from a pipe")
            a.line("/msg gina back to the pipe")
            a.expect(r"sent to gina")
            seen = Output(p.stdout.fileno())  # gina's output, read from the pipe as it comes
            seen.expect(r"\[private\] frank: back to the pipe")
            rest, _ = p.communicate("/quit\n", timeout=10)
            out = seen.text() + rest
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 0)
        self.assertIn("[private] frank: back to the pipe", out)
        self.assertNotIn("\x1b[", out)  # no terminal control sequences on a pipe

    def test_zz_reconnects_after_a_broker_restart(self):  # last: restarts the broker
        t = self.start("--user", "hank", "--password", "hankpw1", "--register")
        t.expect(r"hank> ")
        admin = Client(0, path=os.environ["MOONPOST_ADMIN_SOCKET"])
        self.assertEqual(admin.call(dict(type="admin.shutdown"))["code"], 200)
        admin.close()
        t.expect(r"the broker closed the connection: broker unavailable.*\(503")
        t.expect(r"\* connection lost .*reconnecting")
        t.expect(r"\* reconnected as hank", timeout=30)
        t.line("/users")
        t.expect(r"1 user\(s\) online: hank")


if __name__ == "__main__":
    unittest.main(verbosity=2)
