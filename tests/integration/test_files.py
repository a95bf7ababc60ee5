"""Integration tests of file transfer (file.offer, file.chunk, file.status, file.get; PROTOCOL.md
"File transfer"), over real sockets against a real broker and a real redis-server, and across
two nodes of a cluster."""
import hashlib
import os
import random
import re
import struct
import time

from cluster_harness import ClusterTest
from harness import ALL_SCRIPTS, BrokerTest
from helpers import is_int, poll, uname
from mpwire import frame

FILE_SCRIPTS = ALL_SCRIPTS + ["files"]
MAX_FILE_SIZE = 6 * 1024 * 1024
FILE_QUOTA = 8 * 1024 * 1024
MAILBOX_PER_SENDER = 3
MiB = 1024 * 1024


class FileClient:
    """What a client does with files, on harness clients (sync)."""

    def __init__(self, test):
        self.t = test

    def offer(self, c, to, data, name="f.bin", sha256=True, code=200):
        msg = dict(type="file.offer", to=to, name=name, size=len(data))
        if sha256:
            msg["sha256"] = hashlib.sha256(data).digest()
        r = c.call(msg, 30)
        self.t.assertEqual(r["code"], code, r)
        return r

    def chunks(self, c, fid, data, start, chunk_max, upto=None, window=8):
        """Sends DATA[start:upto] in chunks of CHUNK_MAX, WINDOW in flight; returns the replies
        in order."""
        upto = len(data) if upto is None else upto
        offsets = list(range(start, upto, chunk_max))
        replies, ids = [], []
        for off in offsets:
            ids.append(c.send(dict(type="file.chunk", fid=fid, offset=off,
                                   data=data[off:min(off + chunk_max, upto)])))
            if len(ids) >= window:
                replies.append(c.wait_res(ids.pop(0), 60))
        replies += [c.wait_res(i, 60) for i in ids]
        return replies

    def upload(self, c, to, data, name="f.bin", sha256=True):
        """Offers and uploads DATA whole; returns (fid, last chunk reply)."""
        r = self.offer(c, to, data, name, sha256)
        replies = self.chunks(c, r["fid"], data, 0, r["chunk_max"])
        for x in replies:
            self.t.assertEqual(x["code"], 200, x)
        self.t.assertEqual(replies[-1]["received"], len(data))
        return r["fid"], replies[-1]

    def download(self, c, fid, size, length):
        out = bytearray()
        while len(out) < size:
            r = c.call(dict(type="file.get", fid=fid, offset=len(out), length=length), 30)
            self.t.assertEqual(r["code"], 200, r)
            self.t.assertIsInstance(r["data"], bytes)
            self.t.assertGreater(len(r["data"]), 0)
            out += r["data"]
        return bytes(out)

    def status(self, c, fid, code=200):
        r = c.call(dict(type="file.status", fid=fid), 30)
        self.t.assertEqual(r["code"], code, r)
        return r


class FilesTest(BrokerTest):
    scripts = FILE_SCRIPTS
    extra = ["max_file_size %d" % MAX_FILE_SIZE, "file_quota %d" % FILE_QUOTA,
             "mailbox_per_sender %d" % MAILBOX_PER_SENDER, "request_rate 0"]

    def setUp(self):
        super().setUp()
        self.f = FileClient(self)

    def pair(self, prefix="f"):
        """A logged-in sender and a logged-in recipient."""
        return self.login(uname(prefix + "s")), self.login(uname(prefix + "r"))

    def file_msg(self, c, fid):
        return c.wait_push("msg", 30, lambda m: m.get("file", {}).get("fid") == fid)

    def test_offer_answers_fid_and_chunk_max(self):
        a, b = self.pair()
        r = self.f.offer(a, b.user, b"hello")
        self.assertRegex(r["fid"], r"^[0-9a-f]{32}$")
        self.assertTrue(is_int(r["chunk_max"]) and 1024 <= r["chunk_max"] < 65536, r)
        self.assertNotEqual(self.f.offer(a, b.user, b"hello")["fid"], r["fid"])
        self.assertEqual(self.f.offer(a, b.user, b"x", sha256=False)["code"], 200)

    def test_offer_invalid_fields_400(self):
        a, b = self.pair()
        good = dict(type="file.offer", to=b.user, name="a.txt", size=10)
        bad = [dict(to=None), dict(to=5), dict(name=None), dict(name=""), dict(name="x" * 256),
               dict(name="a/b"), dict(name="../x"), dict(name="a\0b"), dict(name=b"bin"),
               dict(size=None), dict(size=0), dict(size=-1), dict(size="10"), dict(size=1.5),
               dict(size=True), dict(sha256=b"\0" * 31), dict(sha256=b"\0" * 33),
               dict(sha256="x" * 32)]
        for change in bad:
            msg = dict(good, **change)
            msg = {k: v for k, v in msg.items() if v is not None}
            r = a.call(msg)
            self.assertEqual(r["code"], 400, (change, r))
            self.assertIn("error", r)
        self.assertEqual(a.call(dict(good, name="x" * 255))["code"], 200)
        self.assertEqual(a.call(dict(good, name="..\x01\x7f \u00e9"))["code"], 200)

    def test_offer_unknown_user_404_too_large_413(self):
        a, _ = self.pair()
        for to in (uname("nobody"), "bad name!", "x" * 33):
            r = a.call(dict(type="file.offer", to=to, name="a", size=1))
            self.assertEqual(r["code"], 404, r)
        r = a.call(dict(type="file.offer", to=a.user, name="a", size=MAX_FILE_SIZE + 1))
        self.assertEqual(r["code"], 413, r)
        r = a.call(dict(type="file.offer", to=a.user, name="a", size=MAX_FILE_SIZE))
        self.assertEqual(r["code"], 200, r)

    def test_file_types_need_login_401(self):
        c = self.connect()
        for t in ("file.offer", "file.chunk", "file.status", "file.get"):
            self.assertEqual(c.call(dict(type=t, fid="0" * 32))["code"], 401, t)

    def test_five_mib_random_file_arrives_byte_exact(self):
        a, b = self.pair()
        data = os.urandom(5 * MiB + 12345)
        fid, last = self.f.upload(a, b.user, data, name="photo.raw")
        m = self.file_msg(b, fid)
        # chunks in order were hashed as they came: nothing was left to read back at the end
        self.assertEqual(self.redis.cmd("HGET", "mp:file:{%s}" % fid, "hs_at"),
                         str(len(data)).encode())
        self.assertEqual(m["from"], a.user)
        self.assertEqual(m["to"], b.user)
        self.assertEqual(m["body"], "photo.raw")
        self.assertIs(m["offline"], False)
        self.assertEqual(m["file"], {"fid": fid, "name": "photo.raw", "size": len(data)})
        self.assertTrue(is_int(m["mid"]) and is_int(m["ts"]))
        st = self.f.status(b, fid)
        self.assertEqual((st["name"], st["size"], st["received"], st["from"], st["to"],
                          st["complete"]), ("photo.raw", len(data), len(data), a.user, b.user,
                                            True))
        got = self.f.download(b, fid, len(data), st["chunk_max"])
        self.assertEqual(hashlib.sha256(got).digest(), hashlib.sha256(data).digest())
        self.assertEqual(got, data)
        # the sender may read it back too, with other lengths
        self.assertEqual(self.f.download(a, fid, len(data), 40000), data)

    def test_chunks_of_any_size_and_reads_across_them(self):
        a, b = self.pair()
        data = os.urandom(MiB + 99)
        r = self.f.offer(a, b.user, data)
        replies = self.f.chunks(a, r["fid"], data, 0, 40001)
        self.assertEqual({x["code"] for x in replies}, {200})
        self.file_msg(b, r["fid"])
        self.assertEqual(self.f.download(b, r["fid"], len(data), r["chunk_max"]), data)
        self.assertEqual(self.f.download(b, r["fid"], len(data), 777), data)

    def test_chunk_invalid_fields_400(self):
        a, b = self.pair()
        r = self.f.offer(a, b.user, b"0123456789")
        fid, cmax = r["fid"], r["chunk_max"]
        for msg in (dict(offset=0, data=b"x"), dict(fid=fid, data=b"x"),
                    dict(fid=fid, offset=0), dict(fid=fid, offset=-1, data=b"x"),
                    dict(fid=fid, offset="0", data=b"x"), dict(fid=fid, offset=0, data="x"),
                    dict(fid=fid, offset=0, data=b""), dict(fid=5, offset=0, data=b"x")):
            r = a.call(dict(msg, type="file.chunk"))
            self.assertEqual(r["code"], 400, (msg, r))
        r = a.call(dict(type="file.chunk", fid=fid, offset=0, data=b"x" * (cmax + 1)))
        self.assertEqual(r["code"], 400, r)
        self.assertEqual(self.f.status(a, fid)["received"], 0)

    def test_chunk_unknown_fid_404_not_sender_403(self):
        a, b = self.pair()
        for fid in ("0" * 32, "nope", "A" * 32, "../" * 10 + "ab"):
            r = a.call(dict(type="file.chunk", fid=fid, offset=0, data=b"x"))
            self.assertEqual(r["code"], 404, r)
        fid = self.f.offer(a, b.user, b"0123456789")["fid"]
        for other in (b, self.login(uname("fx"))):
            r = other.call(dict(type="file.chunk", fid=fid, offset=0, data=b"x"))
            self.assertEqual(r["code"], 403, r)
        self.assertEqual(self.f.status(a, fid)["received"], 0)

    def test_chunk_out_of_order_409_carries_received_past_size_400(self):
        a, b = self.pair()
        data = b"0123456789"
        fid = self.f.offer(a, b.user, data)["fid"]
        r = a.call(dict(type="file.chunk", fid=fid, offset=0, data=data[:4]))
        self.assertEqual((r["code"], r["received"]), (200, 4))
        for off in (0, 3, 5, 10, 11):
            r = a.call(dict(type="file.chunk", fid=fid, offset=off, data=data[off:off + 2] or b"z"))
            self.assertEqual((r["code"], r["received"]), (409, 4), (off, r))
        r = a.call(dict(type="file.chunk", fid=fid, offset=4, data=b"x" * 7))
        self.assertEqual((r["code"], r["received"]), (400, 4), r)
        r = a.call(dict(type="file.chunk", fid=fid, offset=4, data=data[4:]))
        self.assertEqual((r["code"], r["received"]), (200, 10), r)
        # the refused chunks did not stop the hashing as the chunks came
        self.assertEqual(self.redis.cmd("HGET", "mp:file:{%s}" % fid, "hs_at"), b"10")
        self.file_msg(b, fid)
        r = a.call(dict(type="file.chunk", fid=fid, offset=9, data=b"9"))
        self.assertEqual((r["code"], r["received"]), (409, 10), r)
        r = a.call(dict(type="file.chunk", fid=fid, offset=10, data=b"x"))
        self.assertEqual((r["code"], r["received"]), (400, 10), r)

    def test_status_and_get_only_for_sender_and_recipient(self):
        a, b = self.pair()
        third = self.login(uname("ft"))
        data = os.urandom(3000)
        fid = self.f.offer(a, b.user, data)["fid"]
        for c in (a, b):
            st = self.f.status(c, fid)
            self.assertEqual((st["received"], st["complete"], st["size"]), (0, False, 3000))
        self.assertEqual(self.f.status(third, fid, 403)["code"], 403)
        for c in (a, b):  # not complete yet
            r = c.call(dict(type="file.get", fid=fid, offset=0, length=100))
            self.assertEqual(r["code"], 409, r)
        self.f.chunks(a, fid, data, 0, 1000)
        self.file_msg(b, fid)
        r = third.call(dict(type="file.get", fid=fid, offset=0, length=100))
        self.assertEqual(r["code"], 403, r)
        self.assertEqual(self.f.status(third, fid, 403)["code"], 403)
        r = b.call(dict(type="file.get", fid=fid, offset=2900, length=1000))
        self.assertEqual((r["code"], r["data"]), (200, data[2900:]))  # shorter at the end
        self.assertEqual(b.call(dict(type="file.get", fid=fid, offset=3000, length=5))["data"],
                         b"")
        self.assertEqual(b.call(dict(type="file.get", fid=fid, offset=3001, length=5))["code"],
                         400)

    def test_status_and_get_invalid_or_unknown(self):
        a, _ = self.pair()
        self.assertEqual(a.call(dict(type="file.status"))["code"], 400)
        self.assertEqual(a.call(dict(type="file.status", fid=1))["code"], 400)
        self.assertEqual(self.f.status(a, "f" * 32, 404)["code"], 404)
        self.assertEqual(self.f.status(a, "zz", 404)["code"], 404)
        for msg in (dict(fid="f" * 32, offset=0), dict(fid="f" * 32, length=5),
                    dict(fid="f" * 32, offset=0, length=0),
                    dict(fid="f" * 32, offset=0, length=10 ** 6),
                    dict(fid="f" * 32, offset=-5, length=5), dict(offset=0, length=5)):
            self.assertEqual(a.call(dict(msg, type="file.get"))["code"], 400, msg)
        r = a.call(dict(type="file.get", fid="f" * 32, offset=0, length=5))
        self.assertEqual(r["code"], 404, r)

    def test_upload_cut_at_random_chunk_resumes_on_new_connection(self):
        a, b = self.pair()
        data = os.urandom(1 * MiB + 777)
        r = self.f.offer(a, b.user, data)
        fid, cmax = r["fid"], r["chunk_max"]
        nchunks = (len(data) + cmax - 1) // cmax
        cut = random.randrange(1, nchunks - 1)
        self.f.chunks(a, fid, data, 0, cmax, upto=cut * cmax)
        # the next chunk's frame half-written, then the connection is gone
        partial = frame(dict(type="file.chunk", id=999, fid=fid, offset=cut * cmax,
                             data=data[cut * cmax:(cut + 1) * cmax]))
        a.send_raw(partial[:len(partial) // 2])
        a.close()
        a2 = self.login(a.user, register=False)
        st = self.f.status(a2, fid)
        self.assertEqual((st["received"], st["complete"]), (cut * cmax, False))
        replies = self.f.chunks(a2, fid, data, st["received"], st["chunk_max"])
        self.assertEqual({x["code"] for x in replies}, {200})
        self.file_msg(b, fid)
        self.assertEqual(self.f.download(b, fid, len(data), cmax), data)

    def test_sha256_mismatch_discards_the_file_400(self):
        a, b = self.pair()
        data = os.urandom(200000)
        r = a.call(dict(type="file.offer", to=b.user, name="x", size=len(data),
                        sha256=hashlib.sha256(data + b"!").digest()))
        fid = r["fid"]
        replies = self.f.chunks(a, fid, data, 0, r["chunk_max"])
        self.assertEqual({x["code"] for x in replies[:-1]}, {200})
        self.assertEqual(replies[-1]["code"], 400, replies[-1])
        self.assertIn("sha256", replies[-1]["error"])
        self.f.status(a, fid, 404)
        self.assertEqual(self.redis.cmd("EXISTS", "mp:file:{%s}:data" % fid), 0)
        # nothing reached the recipient: the next msg b gets is a marker
        a.call(dict(type="send", to=b.user, body="marker"))
        self.assertEqual(b.wait_push("msg", 10)["body"], "marker")

    def test_quota_bytes_in_flight_507(self):
        a, b = self.pair()
        big = os.urandom(5 * MiB)
        fid = self.f.offer(a, b.user, big)["fid"]
        r = a.call(dict(type="file.offer", to=b.user, name="y", size=4 * MiB))
        self.assertEqual(r["code"], 507, r)
        self.f.offer(a, b.user, b"x" * (3 * MiB))  # 8 MiB in flight: exactly the quota
        self.assertEqual(a.call(dict(type="file.offer", to=b.user, name="z", size=1))["code"],
                         507)
        # completing the first gives its bytes back
        self.f.chunks(a, fid, big, 0, 60000)
        self.file_msg(b, fid)
        self.assertEqual(a.call(dict(type="file.offer", to=b.user, name="y",
                                     size=4 * MiB))["code"], 200)

    def test_quota_many_offers_at_once_cannot_exceed_it(self):
        a, b = self.pair()
        ids = [a.send(dict(type="file.offer", to=b.user, name="p%d" % i, size=3 * MiB))
               for i in range(6)]
        codes = sorted(a.wait_res(i, 30)["code"] for i in ids)
        self.assertEqual(codes, [200, 200, 507, 507, 507, 507])
        # another connection of the same sender shares the quota
        other = self.login(a.user, register=False)
        r = other.call(dict(type="file.offer", to=b.user, name="q", size=3 * MiB))
        self.assertEqual(r["code"], 507, r)

    def test_recipient_offline_at_the_end_gets_msg_at_login(self):
        a = self.login(uname("fs"))
        bob = uname("fr")
        self.assertEqual(self.register(bob)["code"], 200)
        data = os.urandom(70000)
        fid, _ = self.f.upload(a, bob, data, name="report.pdf")
        b = self.login(bob, register=False)
        m = self.file_msg(b, fid)
        self.assertIs(m["offline"], True)
        self.assertEqual((m["from"], m["body"], m["file"]),
                         (a.user, "report.pdf", {"fid": fid, "name": "report.pdf",
                                                 "size": len(data)}))
        self.assertEqual(self.f.download(b, fid, len(data), 65000), data)

    def test_full_mailbox_holds_the_file_until_status_delivers_it(self):
        """The last chunk's delivery fails (the sender has mailbox_per_sender unread messages
        in the recipient's mailbox): the chunk answers 429 with received = size; once the
        recipient acks, the sender's file.status delivers it."""
        a = self.login(uname("fs"))
        bob = uname("fr")
        self.assertEqual(self.register(bob)["code"], 200)
        for i in range(MAILBOX_PER_SENDER):
            self.assertEqual(a.call(dict(type="send", to=bob, body="m%d" % i))["code"], 200)
        data = os.urandom(5000)
        r = self.f.offer(a, bob, data)
        fid = r["fid"]
        last = self.f.chunks(a, fid, data, 0, r["chunk_max"])[-1]
        self.assertEqual((last["code"], last["received"]), (429, len(data)), last)
        st = self.f.status(a, fid, 429)
        self.assertEqual((st["received"], st["complete"]), (len(data), False))
        b = self.login(bob, register=False)
        msgs = b.read_msgs(MAILBOX_PER_SENDER)
        self.assertEqual(b.call(dict(type="ack", upto=msgs[-1]["mid"]))["code"], 200)
        st = self.f.status(a, fid)
        self.assertIs(st["complete"], True)
        m = self.file_msg(b, fid)
        self.assertIs(m["offline"], False)
        self.assertIs(self.f.status(a, fid)["complete"], True)
        self.assertEqual(self.f.download(b, fid, len(data), 4096), data)


class FileExpiryTest(BrokerTest):
    scripts = FILE_SCRIPTS
    extra = ["file_ttl 2", "file_quota %d" % MiB, "request_rate 0"]

    def test_expired_file_is_404_and_its_quota_comes_back(self):
        a, b = self.login(uname("es")), self.login(uname("er"))
        data = os.urandom(MiB)
        f = FileClient(self)
        r = f.offer(a, b.user, data)
        fid = r["fid"]
        f.chunks(a, fid, data, 0, r["chunk_max"], upto=r["chunk_max"])
        self.assertEqual(a.call(dict(type="file.offer", to=b.user, name="n", size=1))["code"],
                         507)
        poll(lambda: a.call(dict(type="file.status", fid=fid))["code"] == 404, 10,
             what="the file expired")
        r = a.call(dict(type="file.chunk", fid=fid, offset=r["chunk_max"], data=b"x"))
        self.assertEqual(r["code"], 404, r)
        self.assertEqual(self.redis.cmd("EXISTS", "mp:file:{%s}:data" % fid), 0)
        # a complete file is kept file_ttl from its completion, then 404 for the recipient too
        small = os.urandom(1000)
        fid2 = f.offer(a, b.user, small)["fid"]
        self.assertEqual(f.chunks(a, fid2, small, 0, 1000)[-1]["code"], 200)
        self.assertEqual(b.wait_push("msg", 10, lambda m: "file" in m)["file"]["fid"], fid2)
        self.assertEqual(a.call(dict(type="file.offer", to=b.user, name="n",
                                     size=MiB))["code"], 200)  # the whole quota again
        poll(lambda: b.call(dict(type="file.get", fid=fid2, offset=0, length=10))["code"] == 404,
             10, what="the complete file expired")


class FilesClusterTest(ClusterTest):
    default_scripts = FILE_SCRIPTS

    def test_upload_cut_on_one_node_resumes_on_another_and_reaches_a_third(self):
        n1, n2, n3 = self.cluster(3)
        bob = self.login(n3)
        a = self.login(n1)
        f = FileClient(self)
        data = os.urandom(MiB + 4321)
        r = f.offer(a, bob.user, data)
        fid, cmax = r["fid"], r["chunk_max"]
        cut = random.randrange(1, len(data) // cmax)
        f.chunks(a, fid, data, 0, cmax, upto=cut * cmax)
        a.close()
        a2 = self.login(n2, a.user, register=False)
        st = f.status(a2, fid)
        self.assertEqual(st["received"], cut * cmax)
        last = f.chunks(a2, fid, data, st["received"], cmax)[-1]
        self.assertEqual((last["code"], last["received"]), (200, len(data)))
        m = bob.wait_push("msg", 30, lambda m: m.get("file", {}).get("fid") == fid)
        self.assertEqual((m["from"], m["offline"]), (a.user, False))
        self.assertEqual(f.download(bob, fid, len(data), cmax), data)
