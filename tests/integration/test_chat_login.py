"""Integration tests of `login`, `resume`, `logout`, the failure limits, "one user, one
session", what is allowed before login, and `ping` (PROTOCOL.md), over real sockets against a
real broker and a real redis-server."""
import re
import socket
import time
import unittest

from harness import BrokerTest, fresh_addr
from helpers import poll, uname
from mpwire import frame

HEX_TOKEN = re.compile(r"[0-9a-fA-F]{32,}")


class ChatLoginBase(BrokerTest):

    def login_as(self, user, password="secret1", src=None):
        """A connection (from its own address) logged in as USER (already registered)."""
        c = self.connect_from(src)
        r = c.call(dict(type="login", user=user, password=password))
        self.assertEqual(r["code"], 200, r)
        c.token, c.user = r["token"], user
        return c

    def new_user(self, password="secret1", prefix="l"):
        user = uname(prefix)
        r = self.register(user, password)
        self.assertEqual(r["code"], 200, r)
        return user

    def assert_login_reply(self, r, user):
        self.assertEqual(r["type"], "res")
        self.assertEqual(r["code"], 200, r)
        self.assertNotIn("error", r)
        self.assertIsInstance(r["token"], str)
        self.assertRegex(r["token"], HEX_TOKEN)
        self.assertIsInstance(r["users"], list)
        self.assertTrue(all(isinstance(u, str) for u in r["users"]), r)
        self.assertIn(user, r["users"])
        self.assertLessEqual(len(r["users"]), 1000)

    def online(self, observer):
        r = observer.call(dict(type="users", limit=10000))
        self.assertEqual(r["code"], 200, r)
        return r["users"]

    def assert_gone_within_1s(self, observer, user):
        # the 1 s is PROTOCOL.md's promise for `users`, the property under test
        poll(lambda: user not in self.online(observer), timeout=1.0, interval=0.02,
             what="%s gone from users" % user)

    def assert_bye_then_closed(self, c, code):
        frames = c.expect_closed(10)
        byes = [f for f in frames if f.get("type") == "bye"]
        self.assertEqual(len(byes), 1, frames)
        self.assertEqual(byes[0]["code"], code, frames)
        self.assertIsInstance(byes[0].get("error"), str)
        self.assertIs(frames[-1], byes[0], "bye must be the last frame: %r" % frames)


class LoginTest(ChatLoginBase):
    extra = ["login_max_failures 3", "login_addr_max_failures 3", "login_failure_window 60"]

    # -- login ---------------------------------------------------------------------------------

    def test_login_ok_token_and_users(self):
        user = self.new_user()
        c = self.connect_from()
        rid = c.send(dict(type="login", user=user, password="secret1"))
        r = c.wait_res(rid)
        self.assertEqual(r["id"], rid)
        self.assert_login_reply(r, user)
        self.assertGreaterEqual(len(r["token"]), 32)  # >= 128 bits of hex
        # the session works
        self.assertEqual(c.call(dict(type="users"))["code"], 200)

    def test_login_users_lists_the_others_online(self):
        a, b = self.new_user(), self.new_user()
        ca = self.login_as(a)
        cb = self.connect_from()
        r = cb.call(dict(type="login", user=b, password="secret1"))
        self.assert_login_reply(r, b)
        self.assertIn(a, r["users"])
        self.assertEqual(len(r["users"]), len(set(r["users"])), r)
        ca.close()

    def test_409_when_connection_already_logged_in(self):
        a, b = self.new_user(), self.new_user()
        c = self.login_as(a)
        r = c.call(dict(type="login", user=a, password="secret1"))
        self.assertEqual(r["code"], 409, r)
        self.assertIsInstance(r.get("error"), str)
        r = c.call(dict(type="login", user=b, password="secret1"))
        self.assertEqual(r["code"], 409, r)
        r = c.call(dict(type="resume", user=a, token=c.token))
        self.assertEqual(r["code"], 409, r)
        # still logged in as A, and B was not logged in
        users = self.online(c)
        self.assertIn(a, users)
        self.assertNotIn(b, users)
        self.assertEqual(c.call(dict(type="ping"))["code"], 200)

    def test_409_for_a_second_login_pipelined_on_one_connection(self):
        """Two logins written at once on one connection: the connection can be logged in
        only once, so one is answered 200 and the other 409 (replies in any order)."""
        for first, second in ((self.new_user(), self.new_user()),   # two users
                              (None, None)):                          # the same user twice
            if first is None:
                first = second = self.new_user()
            c = self.connect_from()
            c.send_raw(frame(dict(type="login", id=1, user=first, password="secret1")) +
                       frame(dict(type="login", id=2, user=second, password="secret1")))
            r1, r2 = c.wait_res(1), c.wait_res(2)
            self.assertEqual(sorted([r1["code"], r2["code"]]), [200, 409], (r1, r2))
            winner = first if r1["code"] == 200 else second
            loser = second if r1["code"] == 200 else first
            users = self.online(c)
            self.assertIn(winner, users)
            if loser != winner:
                self.assertNotIn(loser, users)

    def test_409_for_login_and_resume_pipelined_on_one_connection(self):
        a, b = self.new_user(), self.new_user()
        token_b = self.login_as(b).token
        c = self.connect_from()
        c.send_raw(frame(dict(type="login", id=1, user=a, password="secret1")) +
                   frame(dict(type="resume", id=2, user=b, token=token_b)))
        r1, r2 = c.wait_res(1), c.wait_res(2)
        self.assertEqual(sorted([r1["code"], r2["code"]]), [200, 409], (r1, r2))

    # -- failure limits --------------------------------------------------------------------------

    def test_429_per_user_and_address(self):
        """login_max_failures 3 per (user, address); the user is not locked out elsewhere."""
        user, src = self.new_user(), fresh_addr()
        for _ in range(3):
            r = self.connect_from(src).call(dict(type="login", user=user, password="wrong-pw"))
            self.assertEqual(r["code"], 401, r)
        # the right password from that address: over the limit
        r = self.connect_from(src).call(dict(type="login", user=user, password="secret1"))
        self.assertEqual(r["code"], 429, r)
        self.assertIsInstance(r.get("error"), str)
        self.assertIsInstance(r.get("retry_after"), int)
        self.assertTrue(0 < r["retry_after"] <= 60, r)
        self.assertNotIn("token", r)
        # from another address the user logs in (after a short backoff), and so does
        # another user
        self.login_as(user)
        self.login_as(self.new_user())

    def test_429_per_address(self):
        """login_max_failures 3 per client address, whatever the user."""
        src = fresh_addr()
        for _ in range(3):
            r = self.connect_from(src).call(dict(type="login", user=uname("ghost"),
                                                 password="secret1"))
            self.assertEqual(r["code"], 401, r)
        user = self.new_user()
        r = self.connect_from(src).call(dict(type="login", user=user, password="secret1"))
        self.assertEqual(r["code"], 429, r)
        r = self.connect_from(src).call(dict(type="login", user="not valid!", password="x"))
        self.assertEqual(r["code"], 429, r)
        # the same credentials from another address are fine
        self.login_as(user, src=fresh_addr())

    def test_429_for_resume(self):
        user, src = self.new_user(), fresh_addr()
        token = self.login_as(user).token
        for _ in range(3):
            r = self.connect_from(src).call(dict(type="resume", user=user, token="0" * 32))
            self.assertEqual(r["code"], 401, r)
        r = self.connect_from(src).call(dict(type="resume", user=user, token=token))
        self.assertEqual(r["code"], 429, r)
        r = self.connect_from(src).call(dict(type="login", user=user, password="secret1"))
        self.assertEqual(r["code"], 429, r)
        # elsewhere the token still resumes
        r = self.connect_from().call(dict(type="resume", user=user, token=token))
        self.assertEqual(r["code"], 200, r)

    # -- resume -------------------------------------------------------------------------------------

    def test_resume_with_token(self):
        user = self.new_user()
        c1 = self.connect_from()
        r1 = c1.call(dict(type="login", user=user, password="secret1"))
        self.assert_login_reply(r1, user)
        c1.close()
        c2 = self.connect_from()
        r2 = c2.call(dict(type="resume", user=user, token=r1["token"]))
        self.assert_login_reply(r2, user)
        self.assertEqual(set(r2), set(r1), "resume reply shape differs from login's")
        self.assertEqual(c2.call(dict(type="users"))["code"], 200)
        # the token (same or new) resumes again
        c2.close()
        r3 = self.connect_from().call(dict(type="resume", user=user, token=r2["token"]))
        self.assert_login_reply(r3, user)

    def test_resume_kicks_the_older_session(self):
        user = self.new_user()
        c1 = self.login_as(user)
        c2 = self.connect_from()
        r = c2.call(dict(type="resume", user=user, token=c1.token))
        self.assert_login_reply(r, user)
        self.assert_bye_then_closed(c1, 409)
        self.assertEqual(self.online(c2).count(user), 1)

    # -- logout ----------------------------------------------------------------------------------------

    def test_logout_revokes_token_and_closes(self):
        user = self.new_user()
        c = self.login_as(user)
        r = c.call(dict(type="logout"))
        self.assertEqual(r["code"], 200, r)
        frames = c.expect_closed(10)
        self.assertFalse([f for f in frames if f.get("type") in ("res", "msg")], frames)
        r = self.connect_from().call(dict(type="resume", user=user, token=c.token))
        self.assertEqual(r["code"], 401, r)
        # the password still works, and gives a token that resumes
        c2 = self.login_as(user)
        self.assertEqual(self.connect_from().call(
            dict(type="resume", user=user, token=c2.token))["code"], 200)

    def test_logout_without_id_closes(self):
        user = self.new_user()
        c = self.login_as(user)
        c.send(dict(type="logout"), with_id=False)
        frames = c.expect_closed(10)
        self.assertFalse([f for f in frames if f.get("type") == "res"], frames)
        r = self.connect_from().call(dict(type="resume", user=user, token=c.token))
        self.assertEqual(r["code"], 401, r)

    # -- one user, one session ---------------------------------------------------------------------

    def test_second_login_kicks_the_older_connection(self):
        user = self.new_user()
        c1 = self.login_as(user)
        c2 = self.login_as(user)
        self.assert_bye_then_closed(c1, 409)
        # the newer session works and the user is listed once
        users = self.online(c2)
        self.assertEqual(users.count(user), 1, users)
        self.assertEqual(c2.call(dict(type="ping"))["code"], 200)

    def test_users_stops_listing_within_1s_of_logout(self):
        watcher = self.login_as(self.new_user())
        user = self.new_user()
        c = self.login_as(user)
        self.assertIn(user, self.online(watcher))
        self.assertEqual(c.call(dict(type="logout"))["code"], 200)
        self.assert_gone_within_1s(watcher, user)

    def test_users_stops_listing_within_1s_of_disconnect(self):
        watcher = self.login_as(self.new_user())
        user = self.new_user()
        c = self.login_as(user)
        self.assertIn(user, self.online(watcher))
        c.close()
        self.assert_gone_within_1s(watcher, user)

    def test_users_stops_listing_within_1s_of_reset(self):
        watcher = self.login_as(self.new_user())
        user = self.new_user()
        c = self.login_as(user)
        self.assertIn(user, self.online(watcher))
        # an abortive close (RST)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
        self.assert_gone_within_1s(watcher, user)

    # -- before login --------------------------------------------------------------------------------

    def test_only_register_login_resume_ping_before_login(self):
        c = self.connect_from()
        for msg in (dict(type="users"), dict(type="send", to="x", body="b"),
                    dict(type="broadcast", body="b"), dict(type="ack", upto=1),
                    dict(type="logout"), dict(type="no_such_type"), dict(type="msg"),
                    dict(type="presence")):
            r = c.call(msg)
            self.assertEqual(r["code"], 401, (msg, r))
            self.assertIsInstance(r.get("error"), str)
        # admin.* on the client port: 403 comes before 401
        self.assertEqual(c.call(dict(type="admin.stats"))["code"], 403)
        # after login, an unknown type is 404
        user = self.new_user()
        self.assertEqual(c.call(dict(type="login", user=user, password="secret1"))["code"], 200)
        self.assertEqual(c.call(dict(type="no_such_type"))["code"], 404)

    def test_replies_carry_the_request_id_up_to_2_64_minus_1(self):
        """`id` is any non-negative integer and the reply carries the same id: also for the
        ids a signed 64-bit integer cannot hold."""
        c = self.connect_from()
        ids = [0, 1, 2 ** 32, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1]
        for rid in ids:
            c.send(dict(type="ping", id=rid))
            f = c.read_frame(10)
            self.assertEqual((f.get("type"), f.get("code")), ("res", 200), f)
            self.assertEqual(f.get("id"), rid, "ping reply for id %d: %r" % (rid, f))
        user = self.new_user()
        self.assertEqual(c.call(dict(type="login", user=user, password="secret1"))["code"], 200)
        for rid in ids:
            c.send(dict(type="users", id=rid))
            f = c.read_frame(10)
            self.assertEqual(f.get("id"), rid, "users reply for id %d: %r" % (rid, f))
            c.send(dict(type="users", id=rid, limit=0))     # an error reply
            f = c.read_frame(10)
            self.assertEqual((f.get("code"), f.get("id")), (400, rid), f)

    def test_ping_before_and_after_login(self):
        c = self.connect_from()
        before = int(time.time() * 1000)
        rid = c.send(dict(type="ping"))
        r = c.wait_res(rid)
        after = int(time.time() * 1000)
        self.assertEqual(r["code"], 200, r)
        self.assertEqual(r["id"], rid)
        self.assertIsInstance(r["ts"], int)
        self.assertFalse(isinstance(r["ts"], bool))
        # ms since the epoch, on the same clock as ours (generous: not a timing assertion)
        self.assertLess(abs(r["ts"] - (before + after) // 2), 60000, (r["ts"], before))
        user = self.new_user()
        self.assertEqual(c.call(dict(type="login", user=user, password="secret1"))["code"], 200)
        r = c.call(dict(type="ping"))
        self.assertEqual(r["code"], 200)
        self.assertIsInstance(r["ts"], int)


class LoginErrorsTest(ChatLoginBase):
    """Several failures against one user: with the default limit (10 per user)."""

    def test_401_identical_for_unknown_malformed_and_wrong_password(self):
        user = self.new_user()
        attempts = [
            dict(user=user, password="wrong-password"),          # wrong password
            dict(user=user, password="secret1 "),                # almost right
            dict(user=user.upper(), password="secret1"),         # case-sensitive: unknown
            dict(user=uname("nobody"), password="secret1"),      # unknown user
            dict(user="bad user!", password="secret1"),          # malformed user
            dict(user="", password="secret1"),                   # malformed: empty
            dict(user="x" * 33, password="secret1"),             # malformed: too long
            dict(user=12345, password="secret1"),                # malformed: not a str
            dict(password="secret1"),                            # user missing
            dict(user=user),                                     # password missing
            dict(user=user, password=123456),                    # password not a str
            dict(user=user, password="p" * 1025),                # password too long
        ]
        replies = []
        for fields in attempts:
            c = self.connect_from()  # its own address: far from the per-address limit
            r = c.call(dict(type="login", **fields))
            self.assertEqual(r["code"], 401, (fields, r))
            self.assertNotIn("token", r)
            replies.append(r)
            # the connection is still anonymous
            self.assertEqual(c.call(dict(type="users"))["code"], 401)
        texts = {r.get("error") for r in replies}
        self.assertEqual(len(texts), 1, "401 texts differ: %r" % texts)
        self.assertIsInstance(texts.pop(), str)
        self.assertEqual({frozenset(r) for r in replies}, {frozenset(replies[0])},
                         "401 replies differ in shape: %r" % replies)

    def test_resume_wrong_token_401(self):
        user, other = self.new_user(), self.new_user()
        good = self.login_as(user).token
        other_token = self.login_as(other).token
        flipped = ("1" if good[0] != "1" else "2") + good[1:]
        for fields in (dict(user=user, token=flipped),
                       dict(user=user, token=other_token),       # someone else's token
                       dict(user=other, token=good),
                       dict(user=uname("nobody"), token=good),
                       dict(user=user, token=good[:31]),
                       dict(user=user, token=good + "0"),
                       dict(user=user, token=""),
                       dict(user=user, token=12345),
                       dict(user=user),
                       dict(token=good)):
            c = self.connect_from()
            r = c.call(dict(type="resume", **fields))
            self.assertEqual(r["code"], 401, (fields, r))
            self.assertIsInstance(r.get("error"), str)
            self.assertNotIn("token", r)
            self.assertEqual(c.call(dict(type="users"))["code"], 401)


class LoginWindowTest(ChatLoginBase):
    """429 lasts until login_failure_window has passed."""
    extra = ["login_max_failures 2", "login_failure_window 1"]

    def test_429_until_the_window_passes(self):
        user = self.new_user()
        src = fresh_addr()
        for _ in range(2):
            r = self.connect_from(src).call(dict(type="login", user=user, password="wrong-pw"))
            self.assertEqual(r["code"], 401, r)
        r = self.connect_from(src).call(dict(type="login", user=user, password="secret1"))
        self.assertEqual(r["code"], 429, r)

        def login_after_the_window():
            r = self.connect_from(src).call(dict(type="login", user=user, password="secret1"))
            if r["code"] != 200:
                self.assertEqual(r["code"], 429, r)
                return None
            return r
        r = poll(login_after_the_window, timeout=30, interval=0.2,
                 what="login served after the 1 s window")
        self.assert_login_reply(r, user)


if __name__ == "__main__":
    unittest.main()
