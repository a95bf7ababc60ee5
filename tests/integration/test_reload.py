"""One reload for SIGHUP and admin.reload: it re-reads the config file, so that a `script` or
`plugin` line added to it serves its types after the reload; settings that need a restart are
only warned about; a broken file leaves the running broker as it was."""
import os
import signal
import unittest

import harness
from harness import BrokerTest, admin_call
from helpers import poll
from test_plugins import CleanExit

PLUGIN_DIR = os.path.join(harness.BUILD, "plugins")

ECHO = """local mp = require "moonpost"
mp.on("%s", function(s, m) return s:ok{ echo = m.v } end)
"""


class ReloadConfigTest(CleanExit, BrokerTest):
    """Also checks that the broker exits 0 with nothing from the sanitizers after its reloads."""

    def append(self, line):
        with open(self.broker.conf, "a") as f:
            f.write(line + "\n")

    def write_script(self, name, type_):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(ECHO % type_)
        return path

    def reload(self):
        return admin_call(self.broker, {"type": "admin.reload"})

    def test_add_a_script_line_and_reload(self):
        c = self.login("rc_script")
        self.assertEqual(c.call({"type": "t.echo1", "v": 1})["code"], 404)
        self.append("script %s" % self.write_script("echo1.lua", "t.echo1"))
        self.assertEqual(self.reload()["code"], 200)
        self.assertEqual(c.call({"type": "t.echo1", "v": 1}).get("echo"), 1)
        self.assertEqual(c.call({"type": "ping"})["code"], 200)  # the other scripts stay

    def test_add_a_script_line_and_sighup(self):
        c = self.login("rc_hup")
        self.assertEqual(c.call({"type": "t.echo2", "v": 2})["code"], 404)
        self.append("script %s" % self.write_script("echo2.lua", "t.echo2"))
        self.broker.proc.send_signal(signal.SIGHUP)
        poll(lambda: c.call({"type": "t.echo2", "v": 2}).get("echo") == 2,
             what="the type added by SIGHUP answering")

    def test_add_a_plugin_line_and_reload(self):
        path = os.path.join(PLUGIN_DIR, "moonpost_hello.so")
        c = self.connect()
        self.assertEqual(c.call({"type": "hello"})["code"], 401)  # no such type yet
        self.append("plugin %s greeting=Hey" % path)
        self.assertEqual(self.reload()["code"], 200)
        r = c.call({"type": "hello", "name": "x"})
        self.assertEqual(r["code"], 200, r)
        # reloading again does not load it twice; taking the line out keeps it (a plugin
        # cannot be unloaded safely) with a warning
        self.assertEqual(self.reload()["code"], 200)
        with open(self.broker.conf) as f:
            lines = [l for l in f if not l.startswith("plugin ")]
        with open(self.broker.conf, "w") as f:
            f.writelines(lines)
        self.assertEqual(self.reload()["code"], 200)
        self.assertEqual(c.call({"type": "hello", "name": "x"})["code"], 200)
        self.assertIn("stays until a restart", self.broker.log_text())
        self.assertEqual(self.broker.log_text().count("plugin hello 1.0.0 loaded"), 1)

    def test_live_setting_and_restart_only_setting(self):
        c = self.login("rc_live")
        self.assertEqual(c.call({"type": "broadcast", "body": "x" * 100})["code"], 200)
        self.append("max_body 50")
        self.append("workers 3")
        self.assertEqual(self.reload()["code"], 200)
        try:
            r = c.call({"type": "broadcast", "body": "x" * 100})
            self.assertEqual((r["code"], r.get("error")), (413, "body too large"))
            self.assertIn("'workers' changed in the file; it takes effect at the next restart",
                          self.broker.log_text())
        finally:
            self.drop_lines("max_body 50", "workers 3")
            self.assertEqual(self.reload()["code"], 200)

    def test_broken_file_keeps_the_running_state(self):
        c = self.login("rc_broken")
        self.append("no_such_key 1")
        try:
            r = self.reload()
            self.assertEqual(r["code"], 500)
            self.assertIn("broker.conf:", r["error"])
            self.assertIn("no_such_key", r["error"])
            self.assertEqual(c.call({"type": "ping"})["code"], 200)
        finally:
            self.drop_lines("no_such_key 1")
        self.assertEqual(self.reload()["code"], 200)

    def drop_lines(self, *drop):
        with open(self.broker.conf) as f:
            lines = [l for l in f if l.strip() not in drop]
        with open(self.broker.conf, "w") as f:
            f.writelines(lines)


class ReloadPluginOptionTest(CleanExit, BrokerTest):
    """A plugin line added with a line setting the plugin's option: the plugin loads before the
    options are checked, so the reload takes both (send.lua, which declares the same options,
    is not loaded here)."""
    scripts = ["ping", "register", "login", "mailbox"]

    def test_plugin_and_its_option_in_one_reload(self):
        a = self.login("rpo_a")
        self.login("rpo_b")
        self.assertEqual(a.call({"type": "send", "to": "rpo_b", "body": "x"})["code"], 404)
        with open(self.broker.conf, "a") as f:
            f.write("plugin %s\nmailbox_max 1\n" % os.path.join(PLUGIN_DIR, "moonpost_send.so"))
        r = admin_call(self.broker, {"type": "admin.reload"})
        self.assertEqual(r["code"], 200, r)
        self.assertEqual(a.call({"type": "send", "to": "rpo_b", "body": "1"})["code"], 200)
        r = a.call({"type": "send", "to": "rpo_b", "body": "2"})
        self.assertEqual(r["code"], 507, r)  # mailbox_max 1 from the same reload


if __name__ == "__main__":
    unittest.main()
