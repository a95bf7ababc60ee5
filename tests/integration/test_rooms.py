"""Integration tests of rooms (PROTOCOL.md "Rooms", docs/protocol.md): every type and error
code, private rooms and invitations, history paging past room_history_max, read cursors,
the limits, an offline member catching up, 1,000 messages to a room of 200 members in order,
members on the three nodes of a cluster with senders on several nodes at once, and a member
of 300 rooms (more than one batch of follows) logging in on one node and pushed what is said
in them on another. A real redis-server and real brokers over real sockets."""
import threading
import time
import unittest

from cluster_harness import ClusterTest
from harness import BrokerTest
from helpers import is_int, poll, uname

MAX_BODY = 16384
MANY_ROOMS = 300  # a user's rooms, more than one batch (256) of the follows at its login


def strictly_increasing(values):
    return all(a < b for a, b in zip(values, values[1:]))


class RoomCalls:
    """Requests that must answer CODE, as one-liners."""

    def ok(self, c, msg, code=200):
        r = c.call(msg, 30)
        self.assertEqual(r["code"], code, "%r -> %r" % (msg, r))
        if code != 200:
            self.assertIsInstance(r.get("error"), str, r)
        return r

    def create(self, c, room=None, code=200, **kw):
        room = room or uname("r")
        self.ok(c, dict(type="room.create", room=room, **kw), code)
        return room

    def join(self, c, room, code=200):
        return self.ok(c, dict(type="room.join", room=room), code)

    def say(self, c, room, body, code=200):
        return self.ok(c, dict(type="room.send", room=room, body=body), code)

    def history(self, c, room, code=200, **kw):
        return self.ok(c, dict(type="room.history", room=room, **kw), code)

    def listed(self, c):
        """{room: entry} of room.list."""
        r = self.ok(c, dict(type="room.list"))
        return {e["room"]: e for e in r["rooms"]}

    def room_msgs(self, c, n, timeout=30):
        """The next N room.msg pushes of C (other pushes are dropped)."""
        out = []
        while len(out) < n:
            out.append(c.wait_push("room.msg", timeout))
        return out

    def no_room_msg(self, c, marker_from):
        """C got no room.msg before a private marker message from MARKER_FROM (a connection
        is written in order)."""
        body = uname("marker-")
        self.assertEqual(marker_from.call(dict(type="send", to=c.user, body=body))["code"], 200)
        seen = c.read_until(lambda f: f.get("type") == "msg" and f.get("body") == body)
        self.assertEqual([f for f in seen if f.get("type") == "room.msg"], [])


class RoomsTest(RoomCalls, BrokerTest):
    extra = ["request_rate 0"]

    def test_create_makes_the_creator_a_member(self):
        a = self.login(uname("a"))
        room = self.create(a, title="Lunch plans", private=False)
        e = self.listed(a)[room]
        self.assertEqual(e, dict(room=room, title="Lunch plans", private=False, seq=0, read=0,
                                 unread=0, members=1))
        r = self.ok(a, dict(type="room.members", room=room))
        self.assertEqual(r["members"], [a.user])
        self.assertEqual(r["online"], [a.user])
        room2 = self.create(a)  # no title: an empty one
        self.assertEqual(self.listed(a)[room2]["title"], "")

    def test_create_refuses_bad_fields_and_taken_names(self):
        a, b = self.login(uname("a")), self.login(uname("b"))
        self.ok(a, dict(type="room.create"), 400)
        for bad in ("", "x" * 65, "has space", "sl/ash", "é", 7, True, b"bin"):
            self.ok(a, dict(type="room.create", room=bad), 400)
        self.create(a, title="t" * 129, code=400)
        self.create(a, title=5, code=400)
        self.create(a, private="yes", code=400)
        self.create(a, private=1, code=400)
        room = self.create(a, uname("A.b-c_") + "x" * 40, title="t" * 128, private=True)
        self.assertEqual(len(self.listed(a)), 1)
        self.create(a, room, code=409)
        self.create(b, room, code=409)
        self.assertEqual(self.listed(b), {})

    def test_room_types_need_a_login(self):
        c = self.connect()
        for t in ("room.create", "room.join", "room.invite", "room.leave", "room.send",
                  "room.history", "room.read", "room.list", "room.members"):
            self.ok(c, dict(type=t, room="x"), 401)

    def test_join_answers_the_last_seq_and_is_idempotent(self):
        a, b = self.login(uname("a")), self.login(uname("b"))
        room = self.create(a)
        self.assertEqual(self.join(b, room)["seq"], 0)
        for i in range(3):
            self.say(a, room, "m%d" % i)
        c = self.login(uname("c"))
        self.assertEqual(self.join(c, room)["seq"], 3)
        self.assertEqual(self.join(c, room)["seq"], 3)  # a member joining again: nothing changes
        e = self.listed(c)[room]
        self.assertEqual((e["seq"], e["read"], e["unread"], e["members"]), (3, 3, 0, 3))

    def test_join_errors(self):
        a = self.login(uname("a"))
        self.ok(a, dict(type="room.join"), 400)
        self.ok(a, dict(type="room.join", room=5), 400)
        self.join(a, uname("nosuch"), 404)
        self.join(a, "bad name", 404)  # no room can have it

    def test_private_room_needs_an_invitation_which_one_join_uses(self):
        a, b, c = self.login(uname("a")), self.login(uname("b")), self.login(uname("c"))
        room = self.create(a, private=True)
        self.join(b, room, 403)
        # only a member invites
        self.ok(c, dict(type="room.invite", room=room, user=b.user), 403)
        self.ok(a, dict(type="room.invite", room=uname("nosuch"), user=b.user), 404)
        self.ok(a, dict(type="room.invite", room=room, user=uname("nobody")), 404)
        self.ok(a, dict(type="room.invite", room=room, user="bad name"), 404)
        self.ok(a, dict(type="room.invite", room=room), 400)
        self.ok(a, dict(type="room.invite", room=room, user=7), 400)
        self.ok(a, dict(type="room.invite", user=b.user), 400)
        self.join(b, room, 403)
        self.ok(a, dict(type="room.invite", room=room, user=b.user))
        self.join(b, room)
        self.assertTrue(self.listed(b)[room]["private"])
        # a member invites too, and inviting a member changes nothing
        self.ok(b, dict(type="room.invite", room=room, user=c.user))
        self.ok(b, dict(type="room.invite", room=room, user=a.user))
        self.join(c, room)
        # the invitation was used: after leaving, a new one is needed
        self.ok(b, dict(type="room.leave", room=room))
        self.join(b, room, 403)
        # an invitation to a public room changes nothing: anyone joins
        pub = self.create(a)
        self.ok(a, dict(type="room.invite", room=pub, user=b.user))
        self.join(c, pub)

    def test_a_refused_join_hears_nothing(self):
        a = self.login(uname("a"))
        room = self.create(a, private=True)
        snoop = self.login(uname("snoop"))
        stop = threading.Event()

        def chatter():  # messages while the refused joins are on their way
            i = 0
            while not stop.is_set():
                self.say(a, room, "secret %d" % i)
                i += 1
        t = threading.Thread(target=chatter)
        t.start()
        try:
            for _ in range(50):
                self.join(snoop, room, 403)
        finally:
            stop.set()
            t.join(30)
        b = self.login(uname("b"))
        self.no_room_msg(snoop, b)

    def test_leave_ends_membership_and_pushes(self):
        a, b = self.login(uname("a")), self.login(uname("b"))
        room = self.create(a)
        self.join(b, room)
        self.ok(b, dict(type="room.leave", room=room))
        self.ok(b, dict(type="room.leave", room=room), 404)
        self.ok(b, dict(type="room.leave", room=uname("nosuch")), 404)
        self.ok(b, dict(type="room.leave"), 400)
        self.assertNotIn(room, self.listed(b))
        self.say(a, room, "after b left")
        self.no_room_msg(b, a)
        self.say(b, room, "not a member", 403)
        self.history(b, room, 403)
        self.assertEqual(self.listed(a)[room]["members"], 1)

    def test_the_creator_may_leave_and_an_empty_room_stays(self):
        a, b = self.login(uname("a")), self.login(uname("b"))
        room = self.create(a)
        self.say(a, room, "one")
        self.ok(a, dict(type="room.leave", room=room))
        self.create(b, room, code=409)  # the name stays taken
        r = self.join(b, room)
        self.assertEqual(r["seq"], 1)
        self.assertEqual(self.say(b, room, "two")["seq"], 2)  # seqs go on, never reused
        self.assertEqual([m["body"] for m in self.history(b, room)["messages"]], ["one", "two"])

    def test_send_pushes_room_msg_to_every_other_member(self):
        a, b, c, outsider = (self.login(uname(p)) for p in "abco")
        room = self.create(a)
        self.join(b, room)
        self.join(c, room)
        before = int(time.time() * 1000)
        r = self.say(a, room, "hello room")
        self.assertTrue(is_int(r["seq"]) and r["seq"] > 0, r)
        for x in (b, c):
            f = x.wait_push("room.msg")
            self.assertEqual(set(f), {"type", "room", "seq", "from", "body", "ts"}, f)
            self.assertEqual((f["room"], f["seq"], f["from"], f["body"]),
                             (room, r["seq"], a.user, "hello room"))
            self.assertTrue(is_int(f["ts"]) and abs(f["ts"] - before) < 60000, f)
        self.no_room_msg(a, b)  # not to the sender
        self.no_room_msg(outsider, b)

    def test_body_str_and_bin_keep_their_type(self):
        a, b = self.login(uname("a")), self.login(uname("b"))
        room = self.create(a)
        self.join(b, room)
        bodies = ["text é", b"\x00\xff\x01binary", "", b"", "x" * MAX_BODY, b"\xc1" * MAX_BODY]
        seqs = [self.say(a, room, body)["seq"] for body in bodies]
        pushed = self.room_msgs(b, len(bodies))
        self.assertEqual([f["seq"] for f in pushed], seqs)
        for f, body in zip(pushed, bodies):
            self.assertEqual(type(f["body"]), type(body))
            self.assertEqual(f["body"], body)
        stored = self.history(b, room, limit=100)["messages"]
        self.assertEqual([m["body"] for m in stored], bodies)
        self.assertEqual([type(m["body"]) for m in stored], [type(x) for x in bodies])

    def test_send_errors(self):
        a, b = self.login(uname("a")), self.login(uname("b"))
        room = self.create(a)
        self.say(b, room, "x", 403)
        self.say(a, uname("nosuch"), "x", 404)
        self.say(a, "bad name", "x", 404)
        self.say(a, room, "x" * (MAX_BODY + 1), 413)
        self.say(a, room, b"x" * (MAX_BODY + 1), 413)
        self.ok(a, dict(type="room.send", room=room), 400)
        self.ok(a, dict(type="room.send", room=room, body=5), 400)
        self.ok(a, dict(type="room.send", body="x"), 400)
        self.assertEqual(self.listed(a)[room]["seq"], 0)  # nothing was stored

    def test_history_pages_backwards(self):
        a, b = self.login(uname("a")), self.login(uname("b"))
        room = self.create(a)
        self.join(b, room)
        seqs = [self.say(a if i % 2 else b, room, "m%d" % i)["seq"] for i in range(12)]
        self.assertTrue(strictly_increasing(seqs))
        msgs = self.history(b, room)["messages"]
        self.assertEqual([m["seq"] for m in msgs], seqs)
        self.assertEqual(set(msgs[0]), {"seq", "from", "body", "ts"})
        self.assertEqual(msgs[1]["from"], a.user)
        self.assertEqual(msgs[0]["from"], b.user)
        page = self.history(b, room, limit=5)["messages"]
        self.assertEqual([m["seq"] for m in page], seqs[-5:])
        page = self.history(b, room, limit=5, before=page[0]["seq"])["messages"]
        self.assertEqual([m["seq"] for m in page], seqs[-10:-5])
        page = self.history(b, room, limit=5, before=page[0]["seq"])["messages"]
        self.assertEqual([m["seq"] for m in page], seqs[:2])
        self.assertEqual(self.history(b, room, before=seqs[0])["messages"], [])
        self.assertEqual(self.history(b, room, before=0)["messages"], [])
        self.assertEqual([m["seq"] for m in self.history(b, room, limit=1)["messages"]],
                         seqs[-1:])
        self.assertEqual(self.history(b, room, before=10 ** 15, limit=100)["messages"], msgs)
        empty = self.create(a)
        self.assertEqual(self.history(a, empty)["messages"], [])

    def test_history_errors(self):
        a, b = self.login(uname("a")), self.login(uname("b"))
        room = self.create(a)
        self.history(b, room, 403)
        self.history(a, uname("nosuch"), 404)
        for bad in (0, 101, -1, 1.5, "5"):
            self.history(a, room, 400, limit=bad)
        for bad in (-1, 2.5, "9", True):
            self.history(a, room, 400, before=bad)
        self.history(a, room, limit=100)
        self.ok(a, dict(type="room.history"), 400)

    def test_read_cursor_never_moves_back(self):
        a, b = self.login(uname("a")), self.login(uname("b"))
        room = self.create(a)
        self.join(b, room)
        seqs = [self.say(a, room, "m%d" % i)["seq"] for i in range(6)]
        e = self.listed(b)[room]
        self.assertEqual((e["seq"], e["read"], e["unread"]), (seqs[-1], 0, 6))
        self.ok(b, dict(type="room.read", room=room, seq=seqs[3]))
        e = self.listed(b)[room]
        self.assertEqual((e["read"], e["unread"]), (seqs[3], 2))
        self.ok(b, dict(type="room.read", room=room, seq=seqs[1]))  # back: stays
        self.ok(b, dict(type="room.read", room=room, seq=0))
        e = self.listed(b)[room]
        self.assertEqual((e["read"], e["unread"]), (seqs[3], 2))
        self.ok(b, dict(type="room.read", room=room, seq=10 ** 12))  # past the last: the last
        e = self.listed(b)[room]
        self.assertEqual((e["read"], e["unread"]), (seqs[-1], 0))
        self.say(a, room, "new")
        self.assertEqual(self.listed(b)[room]["unread"], 1)
        # each member has a cursor of its own
        self.assertEqual(self.listed(a)[room]["read"], 0)

    def test_read_errors(self):
        a, b = self.login(uname("a")), self.login(uname("b"))
        room = self.create(a)
        self.ok(b, dict(type="room.read", room=room, seq=1), 403)
        self.ok(a, dict(type="room.read", room=uname("nosuch"), seq=1), 404)
        for bad in (-1, 1.5, "1", None):
            msg = dict(type="room.read", room=room, seq=bad)
            if bad is None:
                del msg["seq"]
            self.ok(a, msg, 400)

    def test_members_lists_members_and_who_is_online(self):
        a, b = self.login(uname("a")), self.login(uname("b"))
        room = self.create(a)
        self.join(b, room)
        off = self.login(uname("off"))
        self.join(off, room)
        off.close()
        self.clients.remove(off)

        def offline_unlisted():  # within 1 s of the disconnect
            return off.user not in self.ok(a, dict(type="room.members", room=room))["online"]
        poll(offline_unlisted, 30, what="%s unlisted" % off.user)
        r = self.ok(a, dict(type="room.members", room=room))
        self.assertEqual(r["members"], sorted([a.user, b.user, off.user]))
        self.assertEqual(r["online"], sorted([a.user, b.user]))
        self.assertEqual(r["count"], 3)
        outsider = self.login(uname("o"))
        self.ok(outsider, dict(type="room.members", room=room), 403)
        self.ok(a, dict(type="room.members", room=uname("nosuch")), 404)
        self.ok(a, dict(type="room.members"), 400)

    def test_list_answers_every_room_in_one_reply(self):
        a, b = self.login(uname("a")), self.login(uname("b"))
        rooms = [self.create(a, title="t%d" % i, private=i % 2 == 0) for i in range(30)]
        for i, room in enumerate(rooms[:10]):
            self.say(a, room, "x")
            if i % 2 == 0:  # private
                self.ok(a, dict(type="room.invite", room=room, user=b.user))
            self.join(b, room)
        self.join(b, rooms[10], 403)
        listed = self.listed(a)
        self.assertEqual(set(listed), set(rooms))
        for i, room in enumerate(rooms):
            e = listed[room]
            self.assertEqual(e["title"], "t%d" % i)
            self.assertIs(e["private"], i % 2 == 0)
            self.assertEqual((e["seq"], e["unread"]), (1, 1) if i < 10 else (0, 0))
        self.assertEqual(set(self.listed(b)), set(rooms[:10]))
        self.assertEqual(self.listed(b)[rooms[0]]["members"], 2)

    def test_offline_member_catches_up_with_list_and_history(self):
        a, b = self.login(uname("a")), self.login(uname("b"))
        room = self.create(a)
        self.join(b, room)
        self.say(a, room, "seen live")
        self.assertEqual(b.wait_push("room.msg")["body"], "seen live")
        self.ok(b, dict(type="room.read", room=room, seq=1))
        b.close()
        self.clients.remove(b)
        missed = [self.say(a, room, "missed %d" % i)["seq"] for i in range(4)]
        b = self.login(b.user, register=False)
        e = self.listed(b)[room]
        self.assertEqual((e["read"], e["unread"], e["seq"]), (1, 4, missed[-1]))
        msgs = self.history(b, room, limit=e["unread"])["messages"]
        self.assertEqual([m["seq"] for m in msgs], missed)
        self.assertTrue(all(m["seq"] > e["read"] for m in msgs))
        self.ok(b, dict(type="room.read", room=room, seq=msgs[-1]["seq"]))
        self.assertEqual(self.listed(b)[room]["unread"], 0)
        # the new session follows the room: live messages come again
        r = self.say(a, room, "live again")
        f = b.wait_push("room.msg")
        self.assertEqual((f["seq"], f["body"]), (r["seq"], "live again"))

    def test_many_messages_to_many_members_arrive_in_order(self):
        """1,000 messages to a room of 200 members, 150 of them online: each online member gets
        each message once, in seq order; the offline ones cost nothing and see them unread."""
        sender = self.login(uname("s"))
        room = self.create(sender)
        online, offline = [], []
        for i in range(199):
            c = self.login(uname("m"))
            self.join(c, room)
            if i < 149:
                online.append(c)
            else:
                offline.append(c.user)
                c.close()
                self.clients.remove(c)
        self.assertEqual(self.listed(sender)[room]["members"], 200)
        n = 1000
        ids = [sender.send(dict(type="room.send", room=room, body="n%d" % i)) for i in range(n)]
        seqs = [sender.wait_res(rid, 60)["seq"] for rid in ids]
        self.assertTrue(strictly_increasing(seqs))
        for c in online:
            got = self.room_msgs(c, n, 60)
            self.assertEqual([f["seq"] for f in got], seqs)
            self.assertEqual([f["body"] for f in got], ["n%d" % i for i in range(n)])
        last = self.login(offline[-1], register=False)
        e = self.listed(last)[room]
        self.assertEqual((e["unread"], e["seq"]), (n, seqs[-1]))


class RoomHistoryLimitTest(RoomCalls, BrokerTest):
    """room_history_max 7: the history keeps the last seven messages of each room."""
    extra = ["room_history_max 7", "request_rate 0"]

    def test_history_pages_over_more_than_room_history_max(self):
        a = self.login(uname("a"))
        room = self.create(a)
        seqs = [self.say(a, room, "m%d" % i)["seq"] for i in range(25)]
        kept, before = [], None
        while True:
            kw = dict(limit=3) if before is None else dict(limit=3, before=before)
            page = self.history(a, room, **kw)["messages"]
            if not page:
                break
            self.assertLessEqual(len(page), 3)
            kept = page + kept
            before = page[0]["seq"]
        self.assertEqual([m["seq"] for m in kept], seqs[-7:])
        self.assertEqual([m["body"] for m in kept], ["m%d" % i for i in range(18, 25)])
        self.assertEqual(self.redis.cmd("ZCARD", "mp:room:{%s}:msgs" % room), 7)
        # unread counts what is kept, the seq goes on
        b = self.login(uname("b"))
        self.join(b, room)
        a_entry = self.listed(a)[room]
        self.assertEqual((a_entry["seq"], a_entry["unread"]), (seqs[-1], 7))


class RoomLimitsTest(RoomCalls, BrokerTest):
    extra = ["room_members_max 3", "rooms_per_user 3", "rooms_per_creator 2", "request_rate 0"]

    def test_a_full_room_answers_507(self):
        a = self.login(uname("a"))
        room = self.create(a)
        for _ in range(2):
            self.join(self.login(uname("m")), room)
        late = self.login(uname("late"))
        self.join(late, room, 507)
        self.assertNotIn(room, self.listed(late))
        self.say(late, room, "x", 403)

    def test_rooms_per_user_and_per_creator(self):
        a, b, c = self.login(uname("a")), self.login(uname("b")), self.login(uname("c"))
        r0, r1 = self.create(a), self.create(a)
        self.create(a, code=507)  # created two: the most
        self.ok(a, dict(type="room.leave", room=r0))
        self.create(a, code=507)  # still created two, for good
        r2, r3 = self.create(b), self.create(b)
        for room in (r0, r1, r2):
            self.join(c, room)
        self.join(c, r3, 507)  # a member of three rooms: the most
        self.create(c, code=507)
        self.assertEqual(set(self.listed(c)), {r0, r1, r2})
        self.ok(c, dict(type="room.leave", room=r1))
        self.join(c, r3)
        self.assertEqual(set(self.listed(c)), {r0, r2, r3})


class RoomsClusterTest(RoomCalls, ClusterTest):
    """Members on the three nodes of a cluster."""

    def test_members_on_every_node_get_messages_in_seq_order(self):
        nodes = self.cluster(3)
        senders = [self.login(b) for b in nodes]
        room = self.create(senders[0])
        for s in senders[1:]:
            self.join(s, room)
        listeners = [self.login(nodes[i % 3]) for i in range(6)]
        for c in listeners:
            self.join(c, room)
        per_sender = 150
        replies = {}

        def send_all(s):
            ids = [s.send(dict(type="room.send", room=room, body="%s:%d" % (s.user, i)))
                   for i in range(per_sender)]
            replies[s.user] = [s.wait_res(rid, 60) for rid in ids]

        threads = [threading.Thread(target=send_all, args=(s,)) for s in senders]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(len(replies), 3)
        seq_of = {}
        for user, rs in replies.items():
            self.assertTrue(all(r["code"] == 200 for r in rs), rs[:3])
            self.assertTrue(strictly_increasing([r["seq"] for r in rs]))  # one sender's order
            for i, r in enumerate(rs):
                seq_of[r["seq"]] = "%s:%d" % (user, i)
        all_seqs = sorted(seq_of)
        self.assertEqual(len(all_seqs), 3 * per_sender)
        for c in listeners + senders:
            expected = [q for q in all_seqs if not seq_of[q].startswith(c.user + ":")]
            got = self.room_msgs(c, len(expected), 60)
            self.assertEqual([f["seq"] for f in got], expected,
                             "%s on %s" % (c.user, c.node.node_id))
            self.assertEqual([f["body"] for f in got], [seq_of[q] for q in expected])

    def test_a_join_misses_nothing_sent_after_it(self):
        """While a member on n1 keeps sending, users join on n2 and n3: each gets pushed exactly
        the messages stored after its join (seq above the join's), none before, no gap."""
        n1, n2, n3 = self.cluster(3)
        sender = self.login(n1)
        room = self.create(sender)
        joiners = [self.login(n) for n in (n2, n3, n2, n3)]
        sent, stop = [], threading.Event()

        def chatter():
            while not stop.is_set():
                sent.append(self.say(sender, room, "m")["seq"])
        t = threading.Thread(target=chatter)
        t.start()
        try:
            def sent_at_least(n):  # so that the joins land between sends
                poll(lambda: len(sent) >= n, 60, interval=0.005, what="%d messages sent" % n)
            joined = []
            for c in joiners:
                sent_at_least(len(sent) + 5)
                joined.append(self.join(c, room)["seq"])
            # the second send after this point was sent after every join was stored
            sent_at_least(len(sent) + 5)
        finally:
            stop.set()
            t.join(60)
        for c, at in zip(joiners, joined):
            expected = [q for q in sent if q > at]
            self.assertTrue(expected, "no message was sent after the join")
            got = [f["seq"] for f in self.room_msgs(c, len(expected), 60)]
            self.assertEqual(got, expected, "%s joined at seq %d" % (c.user, at))
            self.no_room_msg(c, sender)  # and nothing more

    def test_a_login_follows_more_rooms_than_one_batch(self):
        """A member of MANY_ROOMS rooms (more than the 256 calls of one mp.redis_batch: on a
        Redis Cluster a login follows each room with a call of its own, from the room's
        master, in batches) logs in on n1: a message said by a member on n2 in the first room,
        a middle one, the first of the second batch and the last is pushed to it."""
        n1, n2 = self.cluster(2, extra=["rooms_per_creator %d" % MANY_ROOMS,
                                        "rooms_per_user %d" % MANY_ROOMS])
        creator = self.login(n1)
        rooms = ["%s.%03d" % (uname("many"), i) for i in range(MANY_ROOMS)]
        ids = [creator.send(dict(type="room.create", room=room)) for room in rooms]
        codes = [creator.wait_res(rid, 60)["code"] for rid in ids]
        self.assertEqual(codes, [200] * MANY_ROOMS)
        creator.close()
        self.clients.remove(creator)
        picked = [rooms[0], rooms[MANY_ROOMS // 2], rooms[256], rooms[-1]]
        speaker = self.login(n2)
        for room in picked:
            self.join(speaker, room)
        member = self.login(n1, creator.user, register=False)
        self.assertEqual(set(self.listed(member)), set(rooms))
        for room in picked:
            r = self.say(speaker, room, "in %s" % room)
            try:
                f = member.wait_push("room.msg", 30)
            except TimeoutError:
                self.fail("no room.msg from %s, room %d of %d: not followed at the login"
                          % (room, rooms.index(room) + 1, MANY_ROOMS))
            self.assertEqual((f["room"], f["seq"], f["from"], f["body"]),
                             (room, r["seq"], speaker.user, "in %s" % room), f)

    def test_membership_and_presence_across_nodes(self):
        n1, n2, n3 = self.cluster(3)
        a, b = self.login(n1), self.login(n2)
        room = self.create(a, private=True)
        self.join(b, room, 403)
        self.ok(a, dict(type="room.invite", room=room, user=b.user))
        self.join(b, room)
        c_user = self.register(n3)
        self.ok(b, dict(type="room.invite", room=room, user=c_user))
        c = self.login(n3, c_user, register=False)
        self.join(c, room)
        r = self.ok(c, dict(type="room.members", room=room))
        self.assertEqual(r["members"], sorted([a.user, b.user, c.user]))
        self.assertEqual(r["online"], sorted([a.user, b.user, c.user]))
        # c goes offline; messages wait in the history; c comes back on another node
        c.close()
        self.clients.remove(c)
        seqs = [self.say(a, room, "while away %d" % i)["seq"] for i in range(3)]
        self.assertEqual([f["seq"] for f in self.room_msgs(b, 3)], seqs)
        c = self.login(n1, c_user, register=False)
        e = self.listed(c)[room]
        self.assertEqual(e["unread"], 3)
        self.assertEqual([m["seq"] for m in self.history(c, room)["messages"]], seqs)
        r = self.say(b, room, "welcome back")
        self.assertEqual(c.wait_push("room.msg", 30)["seq"], r["seq"])
        self.assertEqual(a.wait_push("room.msg", 30)["seq"], r["seq"])


if __name__ == "__main__":
    unittest.main()
