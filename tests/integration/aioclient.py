"""aioclient: asyncio clients for the tests that drive many users at once (test_chaos,
test_cluster, test_cluster_faults).

- Conn: one connection whose requests carry ids and are matched to their replies, every other
  frame handed to a callback as it comes.
- Viewer: what a client that follows libmoonpost (clients/c) shows of the `msg` pushes: it
  remembers the highest mid it has shown, across reconnects, and drops a push whose mid is not
  above it as a repeat, so it shows each mid at most once, in increasing order."""
import asyncio
import struct

from mpwire import frame, unpackb

CALL_TIMEOUT = 15.0  # one request; past it the caller gives up (asyncio.TimeoutError)


class Conn:
    """One connection. ON_PUSH(frame) gets every frame that is not a reply to a request of
    this connection, a `bye` included (reading stops after it); ON_REPLY(frame), if given, sees
    each reply before the caller does."""

    def __init__(self, reader, writer, on_push, on_reply=None):
        self.reader, self.writer = reader, writer
        self.on_push, self.on_reply = on_push, on_reply
        self.waiting = {}
        self.next_id = 1
        self.closed = False
        self.acked = 0
        self.reading = asyncio.ensure_future(self.read_loop())

    async def read_loop(self):
        try:
            while True:
                n = struct.unpack(">I", await self.reader.readexactly(4))[0]
                f = unpackb(await self.reader.readexactly(n))
                if f.get("type") == "res" and "id" in f:
                    if self.on_reply is not None:
                        self.on_reply(f)
                    fut = self.waiting.pop(f["id"], None)
                    if fut is not None and not fut.done():
                        fut.set_result(f)
                else:
                    self.on_push(f)
                    if f.get("type") == "bye":
                        break
        except (OSError, EOFError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            self.close()

    def close(self):
        if self.closed:
            return
        self.closed = True
        if self.reading is not asyncio.current_task():
            self.reading.cancel()
        for fut in self.waiting.values():
            if not fut.done():
                fut.set_exception(ConnectionError("connection closed"))
        self.waiting.clear()
        self.writer.close()

    def post(self, msg):
        """Sends MSG as it is (no id: silent when it works)."""
        if self.closed:
            raise ConnectionError("connection closed")
        self.writer.write(frame(msg))

    async def call(self, msg, timeout=CALL_TIMEOUT):
        msg = dict(msg, id=self.next_id)
        self.next_id += 1
        fut = asyncio.get_running_loop().create_future()
        self.waiting[msg["id"]] = fut
        self.post(msg)
        return await asyncio.wait_for(fut, timeout)


async def connect(port, on_push, on_reply=None, src=None, host="127.0.0.1", timeout=5.0):
    """A Conn to HOST:PORT (from the local address SRC, when given)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(
        host, port, local_addr=(src, 0) if src else None), timeout)
    return Conn(reader, writer, on_push, on_reply)


async def connect_unix(path, on_push=lambda f: None, timeout=5.0):
    """A Conn to the Unix socket PATH (an admin socket)."""
    reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), timeout)
    return Conn(reader, writer, on_push)


class Viewer:
    """The messages a libmoonpost-like client has shown: on_msg(push) shows a `msg` whose mid
    is above every mid shown so far and drops the others as repeats."""

    def __init__(self):
        self.last_mid = 0        # the highest mid shown, kept across reconnects
        self.shown = {}          # mid -> (from, body)
        self.shown_order = []    # mids in the order shown
        self.shown_content = set()
        self.reused = []         # (mid, content shown, other content pushed later)
        self.dropped_unseen = 0  # repeats whose mid was never shown

    def on_msg(self, m):
        mid, content = m["mid"], (m["from"], m["body"])
        if mid <= self.last_mid:
            first = self.shown.get(mid)
            if first is None:
                self.dropped_unseen += 1
            elif first != content:
                self.reused.append((mid, first, content))
            return
        self.last_mid = mid
        self.shown[mid] = content
        self.shown_order.append(mid)
        self.shown_content.add(content)
