"""Integration tests of `register` (PROTOCOL.md, "Client to broker", row register) against a
real broker and a real redis-server: every validation rule, 409, the demo account, a racing
double registration, and how the password is stored."""
import threading
import unittest

from harness import BrokerTest
from helpers import uname
from mpwire import frame

USER_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"


class RegisterTest(BrokerTest):

    def reg(self, **fields):
        c = self.connect()
        return c.call(dict(type="register", **fields))

    def assert_code(self, reply, code):
        self.assertEqual(reply.get("type"), "res", reply)
        self.assertEqual(reply.get("code"), code, reply)
        if code == 200:
            self.assertNotIn("error", reply)
        else:
            self.assertIsInstance(reply.get("error"), str, reply)
            self.assertTrue(reply["error"], reply)

    def login_reply(self, user, password):
        # each login from its own 127.x.y.z address, so that the wrong passwords some tests
        # try never add up to the per-address failure limit
        c = self.connect_from()
        return c.call(dict(type="login", user=user, password=password))

    # -- success ---------------------------------------------------------------------------

    def test_register_ok_carries_nothing_more(self):
        c = self.connect()
        rid = c.send(dict(type="register", user=uname(), password="secret1"))
        r = c.wait_res(rid)
        self.assert_code(r, 200)
        self.assertEqual(r["id"], rid)
        self.assertEqual(set(r), {"type", "id", "code"}, r)

    def test_register_without_id_is_silent_on_success_and_answers_errors(self):
        c = self.connect()
        user = uname()
        c.send(dict(type="register", user=user, password="secret1"), with_id=False)
        c.send(dict(type="register", user=user, password="secret1"), with_id=False)
        # one of the two wins (silently), the other is answered 409 by a res without id
        f = c.read_frame(10)
        self.assertEqual(f["type"], "res", f)
        self.assertNotIn("id", f)
        self.assertEqual(f["code"], 409, f)
        self.assertIsInstance(f.get("error"), str)
        # nothing else comes for the two registrations
        pid = c.send(dict(type="ping"))
        f = c.read_frame(10)
        self.assertEqual(f.get("id"), pid, f)
        self.assertEqual(f["code"], 200)
        self.assertEqual(self.login_reply(user, "secret1")["code"], 200)

    def test_user_every_allowed_character(self):
        for chunk in (USER_CHARS[:30], USER_CHARS[30:60], USER_CHARS[60:] + "x" + uname()[-6:]):
            self.assert_code(self.reg(user=chunk, password="secret1"), 200)
            self.assertEqual(self.login_reply(chunk, "secret1")["code"], 200, chunk)

    def test_user_length_1_and_32(self):
        one = "Q"
        thirty_two = ("L32_" + uname())[:32].ljust(32, "z")
        self.assertEqual(len(thirty_two.encode()), 32)
        self.assert_code(self.reg(user=one, password="secret1"), 200)
        self.assert_code(self.reg(user=thirty_two, password="secret1"), 200)
        self.assertEqual(self.login_reply(thirty_two, "secret1")["code"], 200)

    def test_user_too_long_33(self):
        user = ("L33_" + uname()).ljust(33, "z")[:33]
        self.assert_code(self.reg(user=user, password="secret1"), 400)
        self.assertIsNone(self.redis.cmd("HGET", self.user_key("user", user), "pw"))

    def test_user_empty(self):
        self.assert_code(self.reg(user="", password="secret1"), 400)

    def test_user_invalid_characters(self):
        base = uname("bad")
        for bad in (" ", "@", "/", ":", "+", "*", "!", "#", "é", "\u2713", "\t", "\x00", "~"):
            user = base + bad
            self.assert_code(self.reg(user=user, password="secret1"), 400)
            self.assertIsNone(self.redis.cmd("HGET", self.user_key("user", user), "pw"), repr(user))
        self.assert_code(self.reg(user=" " + base, password="secret1"), 400)
        self.assert_code(self.reg(user=base + "\n", password="secret1"), 400)

    def test_user_missing(self):
        self.assert_code(self.reg(password="secret1"), 400)

    def test_user_not_a_str(self):
        for bad in (12345, b"binuser", None, True, [1], {"a": 1}, 1.5):
            self.assert_code(self.reg(user=bad, password="secret1"), 400)
        self.assertIsNone(self.redis.cmd("HGET", self.user_key("user", "binuser"), "pw"))
        self.assertIsNone(self.redis.cmd("HGET", self.user_key("user", "12345"), "pw"))

    def test_user_case_sensitive(self):
        base = uname("Case")
        upper, lower = base.upper(), base.lower()
        self.assert_code(self.reg(user=base, password="secretA"), 200)
        self.assert_code(self.reg(user=upper, password="secretB"), 200)
        self.assert_code(self.reg(user=lower, password="secretC"), 200)
        self.assert_code(self.reg(user=base, password="secretA"), 409)
        self.assertEqual(self.login_reply(base, "secretA")["code"], 200)
        self.assertEqual(self.login_reply(upper, "secretB")["code"], 200)
        self.assertEqual(self.login_reply(lower, "secretC")["code"], 200)
        self.assertEqual(self.login_reply(upper, "secretA")["code"], 401)

    # -- password ----------------------------------------------------------------------------

    def test_password_min_len_default_6(self):
        self.assert_code(self.reg(user=uname(), password="12345"), 400)
        self.assert_code(self.reg(user=uname(), password=""), 400)
        user = uname()
        self.assert_code(self.reg(user=user, password="123456"), 200)
        self.assertEqual(self.login_reply(user, "123456")["code"], 200)

    def test_password_max_1024(self):
        user = uname()
        pw = ("p" * 1023) + "Z"
        self.assert_code(self.reg(user=user, password=pw), 200)
        self.assertEqual(self.login_reply(user, pw)["code"], 200)
        user2 = uname()
        self.assert_code(self.reg(user=user2, password="p" * 1025), 400)
        self.assertIsNone(self.redis.cmd("HGET", self.user_key("user", user2), "pw"))

    def test_password_length_counts_bytes(self):
        # PROTOCOL.md: password_min_len..1024 *bytes*
        user = uname()
        self.assert_code(self.reg(user=user, password="ééab"), 200)  # 4 chars, 6 bytes
        self.assertEqual(self.login_reply(user, "ééab")["code"], 200)
        self.assert_code(self.reg(user=uname(), password="é" * 512), 200)  # 1024 bytes
        self.assert_code(self.reg(user=uname(), password="é" * 512 + "a"), 400)  # 1025

    def test_password_compared_byte_for_byte_nul_included(self):
        user = uname()
        self.assert_code(self.reg(user=user, password="abc\x00defgh"), 200)
        self.assertEqual(self.login_reply(user, "abc\x00defgh")["code"], 200)
        for wrong in ("abc", "abc\x00", "abc\x00defgX", "abc\x00defgh\x00"):
            self.assertEqual(self.login_reply(user, wrong)["code"], 401, repr(wrong))

    def test_password_missing(self):
        user = uname()
        self.assert_code(self.reg(user=user), 400)
        self.assertIsNone(self.redis.cmd("HGET", self.user_key("user", user), "pw"))

    def test_password_not_a_str(self):
        for bad in (1234567, b"secret-bin", None, ["secret1"], 3.25):
            user = uname()
            self.assert_code(self.reg(user=user, password=bad), 400)
            self.assertIsNone(self.redis.cmd("HGET", self.user_key("user", user), "pw"))

    # -- name --------------------------------------------------------------------------------

    def test_name_optional_and_up_to_64(self):
        self.assert_code(self.reg(user=uname(), password="secret1"), 200)
        self.assert_code(self.reg(user=uname(), password="secret1", name="n" * 64), 200)
        self.assert_code(self.reg(user=uname(), password="secret1", name=""), 200)
        self.assert_code(self.reg(user=uname(), password="secret1", name="Zoë Üñî"), 200)

    def test_name_65_bytes(self):
        user = uname()
        self.assert_code(self.reg(user=user, password="secret1", name="n" * 65), 400)
        self.assertIsNone(self.redis.cmd("HGET", self.user_key("user", user), "pw"))
        # 33 two-byte characters = 66 bytes: the limit is in bytes
        self.assert_code(self.reg(user=uname(), password="secret1", name="é" * 33), 400)

    def test_name_not_a_str(self):
        for bad in (42, ["x"], {"x": 1}, True):
            user = uname()
            self.assert_code(self.reg(user=user, password="secret1", name=bad), 400)
            self.assertIsNone(self.redis.cmd("HGET", self.user_key("user", user), "pw"))

    def test_unknown_fields_are_ignored(self):
        user = uname()
        self.assert_code(self.reg(user=user, password="secret1", future_field=[1, 2]), 200)

    # -- conflicts -----------------------------------------------------------------------------

    def test_409_exists_and_keeps_the_first_password(self):
        user = uname()
        self.assert_code(self.reg(user=user, password="first-pw"), 200)
        stored = self.redis.cmd("HGET", self.user_key("user", user), "pw")
        self.assert_code(self.reg(user=user, password="second-pw"), 409)
        self.assert_code(self.reg(user=user, password="first-pw"), 409)
        self.assertEqual(self.redis.cmd("HGET", self.user_key("user", user), "pw"), stored)
        self.assertEqual(self.login_reply(user, "first-pw")["code"], 200)
        self.assertEqual(self.login_reply(user, "second-pw")["code"], 401)

    def test_racing_double_registration(self):
        """Two connections send the same registration at the same moment: exactly one 200 and
        one 409. Repeated a few times, with different passwords, so the winner's password is
        the stored one."""
        for round_ in range(8):
            user = uname("race")
            a, b = self.connect(), self.connect()
            fa = frame(dict(type="register", id=1, user=user, password="pw-of-a-%d" % round_))
            fb = frame(dict(type="register", id=1, user=user, password="pw-of-b-%d" % round_))
            gate = threading.Barrier(2)

            def fire(c, data):
                gate.wait()
                c.send_raw(data)

            ts = [threading.Thread(target=fire, args=(a, fa)),
                  threading.Thread(target=fire, args=(b, fb))]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            ra, rb = a.wait_res(1), b.wait_res(1)
            self.assertEqual(sorted([ra["code"], rb["code"]]), [200, 409], (ra, rb))
            winner = "pw-of-a-%d" % round_ if ra["code"] == 200 else "pw-of-b-%d" % round_
            loser = "pw-of-b-%d" % round_ if ra["code"] == 200 else "pw-of-a-%d" % round_
            self.assertEqual(self.login_reply(user, winner)["code"], 200)
            self.assertEqual(self.login_reply(user, loser)["code"], 401)

    # -- storage -------------------------------------------------------------------------------

    def test_password_stored_as_argon2id_hash(self):
        user = uname()
        pw = "plain-text-pw-%s" % user
        self.assert_code(self.reg(user=user, password=pw, name="Display"), 200)
        stored = self.redis.cmd("HGET", self.user_key("user", user), "pw")
        self.assertIsInstance(stored, bytes)
        self.assertTrue(stored.startswith(b"$argon2id$"), stored)
        self.assertNotEqual(stored, pw.encode())
        self.assertNotIn(pw.encode(), stored)
        # the plain text is nowhere in the user's hash, nor under any key
        everything = self.redis.cmd("HGETALL", self.user_key("user", user))
        self.assertFalse(any(pw.encode() in v for v in everything), everything)
        for key in self.redis.cmd("KEYS", "*"):
            self.assertNotIn(pw.encode(), key)
            if self.redis.cmd("TYPE", key) == "string":
                self.assertNotIn(pw.encode(), self.redis.cmd("GET", key) or b"")
        # same password, another user: a different (salted) hash
        user2 = uname()
        self.assert_code(self.reg(user=user2, password=pw), 200)
        self.assertNotEqual(self.redis.cmd("HGET", self.user_key("user", user2), "pw"), stored)

    # -- demo account ----------------------------------------------------------------------------

    def test_demo_account_100(self):
        self.assert_code(self.reg(user="100", password="123456"), 200)
        r = self.login_reply("100", "123456")
        self.assertEqual(r["code"], 200, r)
        self.assertIsInstance(r["token"], str)
        self.assertIn("100", r["users"])
        self.assertEqual(self.login_reply("100", "1234567")["code"], 401)

    def test_register_allowed_before_login_only_register_login_resume_ping(self):
        c = self.connect()
        user = uname()
        self.assertEqual(c.call(dict(type="register", user=user, password="secret1"))["code"], 200)
        # the connection is still anonymous after registering
        self.assertEqual(c.call(dict(type="users"))["code"], 401)
        self.assertEqual(c.call(dict(type="login", user=user, password="secret1"))["code"], 200)
        self.assertEqual(c.call(dict(type="users"))["code"], 200)


if __name__ == "__main__":
    unittest.main()
