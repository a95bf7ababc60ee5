"""The web chat in a real headless browser: starts redis-server and a broker serving the built
page (web_root), then runs tests/web/webchat.test.cjs under Node, where playwright-core drives
Debian's chromium (two browser users, also in a room and sending a file) beside the real
moonpost-chat binary (a third user).
Everything it needs must be there: a missing chromium, node or npm package fails the test."""
import os
import shutil
import subprocess
import unittest

from harness import ALL_SCRIPTS, BUILD, ROOT, BrokerTest
from helpers import poll

CHROMIUM = os.environ.get("MOONPOST_CHROMIUM", "/usr/bin/chromium")
NPM_DIR = os.path.join(BUILD, "web", "npm", "node_modules")
WEB_ROOT = os.path.join(BUILD, "webchat")
CHAT = os.path.join(BUILD, "clients", "c", "moonpost-chat")
SCRIPT = os.path.join(ROOT, "tests", "web", "webchat.test.cjs")


def missing():
    """What the browser test needs and does not find (./deps.sh --test and the build)."""
    needs = [(CHROMIUM, "chromium (./deps.sh --test)"),
             (shutil.which("node") or "/nonexistent/node", "node (./deps.sh --test)"),
             (os.path.join(NPM_DIR, "playwright-core"), "playwright-core (the web target: npm ci)"),
             (os.path.join(WEB_ROOT, "msgpack.min.js"), "the built web chat (the web target)"),
             (CHAT, "moonpost-chat")]
    return [what for path, what in needs if not os.path.exists(path)]


class WebChatTest(BrokerTest):
    scripts = ALL_SCRIPTS + ["files"]
    extra = ["web_root %s" % WEB_ROOT]

    @classmethod
    def setUpClass(cls):
        gone = missing()
        if gone:  # a failure, never a skip: CI must have the browser
            raise AssertionError("the browser test cannot run without: " + ", ".join(gone))
        super().setUpClass()

    def test_browsers_and_terminal_chat(self):
        env = dict(os.environ,
                   MOONPOST_HTTP="127.0.0.1:%d" % self.broker.http_port,
                   MOONPOST_PORT=str(self.broker.port),
                   MOONPOST_CHAT=CHAT, MOONPOST_NPM=NPM_DIR, MOONPOST_CHROMIUM=CHROMIUM,
                   MOONPOST_SCREENSHOTS=BUILD)
        run = subprocess.run(["node", "--test", "--test-reporter=spec", SCRIPT], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
        out = run.stdout.decode(errors="replace")
        print(out)
        self.assertEqual(run.returncode, 0, "the browser test failed:\n" + out[-6000:])
        for name in ("webchat-desktop.png", "webchat-phone.png", "webchat-phone-list.png",
                     "webchat-phone-login.png", "webchat-room.png", "webchat-file.png"):
            path = os.path.join(BUILD, name)
            self.assertTrue(os.path.getsize(path) > 1000, path)
        # the page acks what it has shown: the browser users' mailboxes are empty
        for user in ("alice", "bob"):
            poll(lambda: self.mbox_count(user) == 0, what="%s's mailbox acked" % user)


if __name__ == "__main__":
    unittest.main()
