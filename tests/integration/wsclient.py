"""wsclient: a minimal RFC 6455 client for the tests: the opening handshake on the broker's
HTTP listener, masked frames out, frames in. WsClient speaks the moonpost protocol with the
same methods as harness.Client, one binary message per frame body."""
import base64
import hashlib
import os
import socket
import struct

from harness import Client
from mpwire import packb, unpackb

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class HandshakeRefused(Exception):
    def __init__(self, status, head):
        super().__init__("handshake refused: %s" % status)
        self.status = status
        self.head = head


def request_head(port, key, protocol="moonpost", version="13", path="/ws", extra=""):
    lines = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1:%d" % port, "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: %s" % key,
             "Sec-WebSocket-Version: %s" % version]
    if protocol is not None:
        lines.append("Sec-WebSocket-Protocol: %s" % protocol)
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def encode(opcode, payload, fin=True, mask=True, rsv=0):
    """One client frame (masked unless MASK is false)."""
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    bit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([bit | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class WsClient(Client):
    """A moonpost connection over WebSocket. `close_code` is the code of the broker's close
    frame once one came; `pongs` the payloads of the pongs received."""

    def __init__(self, http_port, timeout=10.0, protocol="moonpost", pipelined=b"",
                 ssl_context=None):
        self.sock = socket.create_connection(("127.0.0.1", http_port), timeout=timeout)
        if ssl_context is not None:  # WSS: the same handshake inside TLS
            self.sock = ssl_context.wrap_socket(self.sock, server_hostname="localhost")
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(request_head(http_port, key, protocol) + pipelined)
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise HandshakeRefused(None, raw)
            raw += chunk
        head, self.wire = raw.split(b"\r\n\r\n", 1)
        self.head = head.decode()
        status = int(self.head.split(" ")[1])
        if status != 101:
            self.sock.close()
            raise HandshakeRefused(status, raw.decode(errors="replace"))
        headers = {line.split(":", 1)[0].lower(): line.split(":", 1)[1].strip()
                   for line in self.head.split("\r\n")[1:]}
        if headers.get("sec-websocket-accept") != accept_for(key):
            raise AssertionError("bad Sec-WebSocket-Accept in %r" % self.head)
        self.headers = headers
        self.buf = b""
        self.next_id = 1
        self.pushes = []
        self.replies = {}
        self.close_code = None
        self.pongs = []
        self.text_seen = []

    # ---- frames ----

    def send_frame(self, opcode, payload, **kw):
        self.sock.sendall(encode(opcode, payload, **kw))

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, msg, with_id=True):
        msg = self.with_id(msg, with_id)
        self.send_frame(BINARY, packb(msg))
        return msg.get("id")

    def _fill(self, n):
        while len(self.wire) < n:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("connection closed")
            self.wire += data

    def read_ws(self, timeout=None):
        """The next frame from the broker: (fin, opcode, payload)."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        self._fill(2)
        b0, b1 = self.wire[0], self.wire[1]
        if b1 & 0x80:
            raise AssertionError("the broker sent a masked frame")
        n, at = b1 & 0x7F, 2
        if n == 126:
            self._fill(4)
            n, at = struct.unpack(">H", self.wire[2:4])[0], 4
        elif n == 127:
            self._fill(10)
            n, at = struct.unpack(">Q", self.wire[2:10])[0], 10
        self._fill(at + n)
        payload, self.wire = self.wire[at:at + n], self.wire[at + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def read_frame(self, timeout=None):
        """The next moonpost frame (a binary message); pongs are noted, a close frame is
        noted and the connection read to its end (EOFError)."""
        while True:
            fin, op, payload = self.read_ws(timeout)
            if op == PONG:
                self.pongs.append(payload)
            elif op == CLOSE:
                self.close_code = struct.unpack(">H", payload[:2])[0] if payload else None
                self.close_reason = payload[2:]
                self._drain_to_eof()
                raise EOFError("close frame %s" % self.close_code)
            elif op == BINARY:
                if not fin:
                    raise AssertionError("the broker fragmented a message")
                return unpackb(payload)
            else:
                raise AssertionError("unexpected opcode %d" % op)

    def _drain_to_eof(self):
        try:
            while self.sock.recv(65536):
                pass
        except (ConnectionResetError, socket.timeout):
            pass

    def close_and_wait(self, code=1000):
        """Sends a close frame; returns the code of the broker's close frame."""
        self.send_frame(CLOSE, struct.pack(">H", code))
        try:
            while True:
                self.read_frame()
        except EOFError:
            return self.close_code
