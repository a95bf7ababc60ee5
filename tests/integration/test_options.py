"""Integration tests of script options: a script declares its own options and reads the
values the config file gives them; `moonpost -t` and the start refuse a key nobody declared
or a bad value (file:line, exit 2); a reload (SIGHUP, admin.reload) reads them again; the
shipped scripts' options keep their defaults."""
import os
import signal
import subprocess

from harness import ALL_SCRIPTS, BROKER, BUILD, LUA, BrokersTest, admin_call
from helpers import poll, uname

OPTIONS_LUA = os.path.join(LUA, "options_test.lua")
SEND_PLUGIN = os.path.join(BUILD, "plugins", "moonpost_send.so")


def check(conf, *args):
    """moonpost -t: (exit code, stdout + stderr)."""
    r = subprocess.run([BROKER, "-t", "-c", conf] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=30)
    return r.returncode, r.stdout + r.stderr


class OptionsTest(BrokersTest):
    def options(self, c):
        r = c.call({"type": "t.options"})
        self.assertEqual(r["code"], 200, r)
        return r

    def line_of(self, b, text):
        """The number of the config line that is TEXT."""
        with open(b.conf) as f:
            return f.read().splitlines().index(text) + 1

    def set_line(self, b, old, new):
        with open(b.conf) as f:
            text = f.read()
        self.assertIn(old + "\n", text)
        with open(b.conf, "w") as f:
            f.write(text.replace(old + "\n", new + "\n"))

    def assert_refused(self, b, *needles):
        """-t and the start both refuse B's config with exit 2, saying NEEDLES."""
        rc, out = check(b.conf)
        self.assertEqual(rc, 2, out)
        for needle in needles:
            self.assertIn(needle, out)
        r = subprocess.run([BROKER, "-c", b.conf], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=30)
        self.assertEqual(r.returncode, 2, r.stderr)
        for needle in needles:
            self.assertIn(needle, r.stderr)

    # ---- values ----

    def test_script_reads_its_defaults(self):
        b = self.broker(["ping", OPTIONS_LUA])
        r = self.options(self.connect(b))
        self.assertEqual((r["greeting"], r["count"], r["ratio"], r["loud"], r["at_load"]),
                         ("hello", 3, 0.5, False, "hello"), r)
        self.assertTrue(r["count_is_int"], r)

    def test_script_reads_the_configured_values(self):
        b = self.broker(["ping", OPTIONS_LUA],
                        ["t_greeting hi there", "t_count 7", "t_ratio 2.25", "t_loud on",
                         "t_count 9"])  # the last line of a key wins
        r = self.options(self.connect(b))
        self.assertEqual((r["greeting"], r["count"], r["ratio"], r["loud"], r["at_load"]),
                         ("hi there", 9, 2.25, True, "hi there"), r)

    def test_set_overrides_the_file(self):
        b = self.broker(["ping", OPTIONS_LUA], ["t_count 7"], start=False)
        rc, out = check(b.conf, "--set", "t_count=0")
        self.assertEqual(rc, 2, out)
        self.assertIn("--set t_count=0: t_count: expected an integer between 1 and 100", out)
        self.assertEqual(check(b.conf, "--set", "t_count=8")[0], 0)

    def test_declaring_late_and_reading_undeclared_are_errors(self):
        b = self.broker(["ping", OPTIONS_LUA])
        c = self.connect(b)
        self.assertEqual(c.call({"type": "t.declare_late"})["code"], 500)
        self.assertEqual(c.call({"type": "t.undeclared"})["code"], 500)
        poll(lambda: "options are declared at load time only" in b.log_text(),
             what="the late declaration logged")
        poll(lambda: "option 't_nobody' is not declared" in b.log_text(),
             what="the undeclared read logged")

    # ---- the check ----

    def test_unknown_key_is_refused_with_file_and_line(self):
        b = self.broker(["ping", OPTIONS_LUA], ["t_count 4", "t_cuont 5"], start=False)
        self.assert_refused(b, "%s:%d: unknown key 't_cuont'"
                            % (b.conf, self.line_of(b, "t_cuont 5")))

    def test_option_of_a_script_not_loaded_is_unknown(self):
        b = self.broker(["ping"], ["mailbox_max 5000"], start=False)
        self.assert_refused(b, "%s:%d: unknown key 'mailbox_max'"
                            % (b.conf, self.line_of(b, "mailbox_max 5000")))

    def test_bad_value_is_refused_with_file_and_line(self):
        b = self.broker(ALL_SCRIPTS, ["mailbox_max 0"], start=False)
        self.assert_refused(b, "%s:%d: mailbox_max: expected an integer between 1 and 100000000, "
                            "got '0'" % (b.conf, self.line_of(b, "mailbox_max 0")))
        b = self.broker(["ping", OPTIONS_LUA], ["t_loud maybe"], start=False)
        self.assert_refused(b, "%s:%d: t_loud: expected on or off"
                            % (b.conf, self.line_of(b, "t_loud maybe")))

    def test_type_clash_names_both_scripts(self):
        other = os.path.join(self.dir, "clash.lua")
        with open(other, "w") as f:
            f.write('local mp = require "moonpost"\n'
                    'mp.option("t_count", { type = "string", default = "x" })\n')
        b = self.broker(["ping", OPTIONS_LUA, other], start=False)
        rc, out = check(b.conf)
        self.assertEqual(rc, 2, out)
        self.assertIn("option 't_count' is declared as int by %s and as string by %s"
                      % (OPTIONS_LUA, other), out)

    def test_shipped_scripts_check_with_every_option_set(self):
        b = self.broker(ALL_SCRIPTS, [
            "password_min_len 8", "token_ttl 3600", "login_max_failures 5",
            "login_failure_window 60", "login_addr_max_failures 50", "login_backoff_max 0",
            "register_max_per_addr 3", "presence_notify on", "mailbox_max 100",
            "mailbox_per_sender 10"], start=False)
        rc, out = check(b.conf)
        self.assertEqual(rc, 0, out)

    # ---- reload ----

    def test_sighup_gives_new_values(self):
        b = self.broker(["ping", OPTIONS_LUA], ["t_count 4", "t_greeting old"])
        c = self.connect(b)
        self.assertEqual(self.options(c)["count"], 4)
        self.set_line(b, "t_count 4", "t_count 5")
        self.set_line(b, "t_greeting old", "t_greeting new")
        b.proc.send_signal(signal.SIGHUP)
        poll(lambda: self.options(c)["count"] == 5, what="t_count 5 after SIGHUP")
        r = self.options(c)
        self.assertEqual((r["greeting"], r["at_load"]), ("new", "new"), r)
        # a line taken out: the default again
        self.set_line(b, "t_count 5", "# t_count 5")
        b.proc.send_signal(signal.SIGHUP)
        poll(lambda: self.options(c)["count"] == 3, what="the default after SIGHUP")

    def test_reload_with_a_bad_value_keeps_the_running_values(self):
        b = self.broker(["ping", OPTIONS_LUA], ["t_count 4"])
        c = self.connect(b)
        self.set_line(b, "t_count 4", "t_count 400")
        r = admin_call(b, {"type": "admin.reload"})
        self.assertEqual(r["code"], 500, r)
        self.assertIn("%s:%d: t_count: expected an integer between 1 and 100"
                      % (b.conf, self.line_of(b, "t_count 400")), r["error"])
        self.assertEqual(self.options(c)["count"], 4)
        self.set_line(b, "t_count 400", "t_count 6")
        self.assertEqual(admin_call(b, {"type": "admin.reload"})["code"], 200)
        self.assertEqual(self.options(c)["count"], 6)

    def test_plugin_reads_its_options_and_a_reload_changes_them(self):
        """plugins/send without scripts/send.lua: mailbox_max is the plugin's option."""
        self.assertTrue(os.path.exists(SEND_PLUGIN), SEND_PLUGIN)
        scripts = [n for n in ALL_SCRIPTS if n != "send"]
        b = self.broker(scripts, ["plugin %s" % SEND_PLUGIN, "mailbox_max 2"])
        sender, recipient = uname("os"), uname("or")
        c = self.connect(b)
        for user in (sender, recipient):
            r = c.call({"type": "register", "user": user, "password": "secret1"})
            self.assertEqual(r["code"], 200, r)
        self.assertEqual(c.call({"type": "login", "user": sender, "password": "secret1"})["code"],
                         200)

        def send():
            return c.call({"type": "send", "to": recipient, "body": "hi"})["code"]
        self.assertEqual([send(), send(), send()], [200, 200, 507])
        self.set_line(b, "mailbox_max 2", "mailbox_max 3")
        self.assertEqual(admin_call(b, {"type": "admin.reload"})["code"], 200)
        self.assertEqual([send(), send()], [200, 507])

    def test_new_script_and_its_option_on_reload(self):
        """A feature with a setting: a `script` line and its option added to the file, then a
        reload, serve it with the configured value."""
        b = self.broker(["ping"])
        c = self.connect(b)
        self.assertNotEqual(c.call({"type": "t.options"})["code"], 200)  # not served yet
        with open(b.conf, "a") as f:
            f.write("script %s\nt_count 42\n" % OPTIONS_LUA)
        self.assertEqual(admin_call(b, {"type": "admin.reload"})["code"], 200)
        self.assertEqual(self.options(c)["count"], 42)
