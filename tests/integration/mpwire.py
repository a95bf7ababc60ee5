"""mpwire: a small MessagePack codec and the moonpost framing, for the integration tests.

Only the standard library is used, so the tests run wherever python3 does. str and bytes stay
apart (msgpack str vs bin), as the protocol requires."""
import struct


class Ext:
    def __init__(self, code, data):
        self.code, self.data = code, data


def packb(obj):
    out = bytearray()
    _pack(obj, out)
    return bytes(out)


def _pack(o, out):
    if o is None:
        out.append(0xC0)
    elif o is True:
        out.append(0xC3)
    elif o is False:
        out.append(0xC2)
    elif isinstance(o, int):
        if 0 <= o < 128:
            out.append(o)
        elif -32 <= o < 0:
            out.append(o & 0xFF)
        elif o >= 0:
            out += b"\xcf" + struct.pack(">Q", o)
        else:
            out += b"\xd3" + struct.pack(">q", o)
    elif isinstance(o, float):
        out += b"\xcb" + struct.pack(">d", o)
    elif isinstance(o, str):
        b = o.encode()
        if len(b) < 32:
            out.append(0xA0 | len(b))
        elif len(b) < 256:
            out += bytes([0xD9, len(b)])
        elif len(b) < 65536:
            out += b"\xda" + struct.pack(">H", len(b))
        else:
            out += b"\xdb" + struct.pack(">I", len(b))
        out += b
    elif isinstance(o, (bytes, bytearray)):
        if len(o) < 256:
            out += bytes([0xC4, len(o)])
        elif len(o) < 65536:
            out += b"\xc5" + struct.pack(">H", len(o))
        else:
            out += b"\xc6" + struct.pack(">I", len(o))
        out += o
    elif isinstance(o, (list, tuple)):
        if len(o) < 16:
            out.append(0x90 | len(o))
        else:
            out += b"\xdd" + struct.pack(">I", len(o))
        for x in o:
            _pack(x, out)
    elif isinstance(o, dict):
        if len(o) < 16:
            out.append(0x80 | len(o))
        else:
            out += b"\xdf" + struct.pack(">I", len(o))
        for k, v in o.items():
            _pack(k, out)
            _pack(v, out)
    elif isinstance(o, Ext):
        out += bytes([0xC7, len(o.data), o.code & 0xFF]) + o.data
    else:
        raise TypeError(type(o))


class Truncated(Exception):
    pass


def unpackb(data):
    v, pos = _unpack(data, 0)
    if pos != len(data):
        raise ValueError("trailing bytes")
    return v


def _take(data, pos, n):
    if pos + n > len(data):
        raise Truncated()
    return data[pos:pos + n], pos + n


def _unpack(d, pos):
    b, pos = d[pos], pos + 1
    if b <= 0x7F:
        return b, pos
    if b >= 0xE0:
        return b - 256, pos
    if 0x80 <= b <= 0x8F:
        return _map(d, pos, b & 0x0F)
    if 0x90 <= b <= 0x9F:
        return _arr(d, pos, b & 0x0F)
    if 0xA0 <= b <= 0xBF:
        s, pos = _take(d, pos, b & 0x1F)
        return s.decode(), pos
    if b == 0xC0:
        return None, pos
    if b in (0xC2, 0xC3):
        return b == 0xC3, pos
    sizes = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4}
    if b in sizes:
        n, pos = _uint(d, pos, sizes[b])
        s, pos = _take(d, pos, n)
        return (s.decode() if b >= 0xD9 else bytes(s)), pos
    if b == 0xCA:
        s, pos = _take(d, pos, 4)
        return struct.unpack(">f", s)[0], pos
    if b == 0xCB:
        s, pos = _take(d, pos, 8)
        return struct.unpack(">d", s)[0], pos
    if 0xCC <= b <= 0xCF:
        return _uint(d, pos, 1 << (b - 0xCC))
    if 0xD0 <= b <= 0xD3:
        n = 1 << (b - 0xD0)
        s, pos = _take(d, pos, n)
        return int.from_bytes(s, "big", signed=True), pos
    if b in (0xDC, 0xDD):
        n, pos = _uint(d, pos, 2 if b == 0xDC else 4)
        return _arr(d, pos, n)
    if b in (0xDE, 0xDF):
        n, pos = _uint(d, pos, 2 if b == 0xDE else 4)
        return _map(d, pos, n)
    raise ValueError("unsupported byte %#x" % b)


def _uint(d, pos, n):
    s, pos = _take(d, pos, n)
    return int.from_bytes(s, "big"), pos


def _arr(d, pos, n):
    out = []
    for _ in range(n):
        v, pos = _unpack(d, pos)
        out.append(v)
    return out, pos


def _map(d, pos, n):
    out = {}
    for _ in range(n):
        k, pos = _unpack(d, pos)
        v, pos = _unpack(d, pos)
        out[k] = v
    return out, pos


def frame(obj_or_bytes):
    body = obj_or_bytes if isinstance(obj_or_bytes, (bytes, bytearray)) else packb(obj_or_bytes)
    return struct.pack(">I", len(body)) + body
