# MQTT 3.1.1 broker-side codec: what a server sends and parses, and an
# incremental framer (Decoder). Never imported by the device (it would only
# cost RAM there: the client frames in its own read buffer); used by the fake
# brokers in tests and the codec round-trip tests, on top of
# roadedge.mqtt.packet.
# (UNSUBSCRIBE is here too: the device client never unsubscribes.)
from roadedge.mqtt.packet import MalformedPacket, _b, _put_str

# Packet types (packet.py keeps its own as private consts: no heap on a device)
CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
PUBREL = 6
SUBSCRIBE = 8
SUBACK = 9
UNSUBSCRIBE = 10
UNSUBACK = 11
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14

PINGREQ_BYTES = b"\xc0\x00"
PINGRESP_BYTES = b"\xd0\x00"
DISCONNECT_BYTES = b"\xe0\x00"


def varlen_size(n):
    """Bytes needed to encode remaining length n."""
    return 1 if n < 128 else 2 if n < 16384 else 3 if n < 2097152 else 4


def put_varlen(buf, pos, n):
    """Write remaining length n at buf[pos]; returns the next position."""
    if not 0 <= n <= 268435455:
        raise ValueError("remaining length out of range")
    while n > 127:
        buf[pos] = (n & 127) | 128
        n >>= 7
        pos += 1
    buf[pos] = n
    return pos + 1


def encode_pid(kind, pid):
    """A 4-byte packet carrying only a packet id (PUBACK, UNSUBACK...)."""
    return bytes((kind << 4 | (2 if kind in (PUBREL, SUBSCRIBE, UNSUBSCRIBE) else 0), 2, pid >> 8, pid & 255))


def _need(body, n, what):
    if len(body) < n:
        raise MalformedPacket("%s truncated" % what)


def _str_at(body, pos, what):
    _need(body, pos + 2, what)
    n = (body[pos] << 8) | body[pos + 1]
    _need(body, pos + 2 + n, what)
    return body[pos + 2:pos + 2 + n], pos + 2 + n


def _text(mv, what):
    try:
        return str(bytes(mv), "utf-8")
    except Exception:
        raise MalformedPacket("%s is not UTF-8" % what)


def encode_unsubscribe(pid, topics):
    parts = [_b(t) for t in topics]
    rem = 2 + sum(2 + len(t) for t in parts)
    buf = bytearray(1 + varlen_size(rem) + rem)
    buf[0] = 0xA2
    pos = put_varlen(buf, 1, rem)
    buf[pos] = pid >> 8
    buf[pos + 1] = pid & 0xFF
    pos += 2
    for t in parts:
        pos = _put_str(buf, pos, t)
    return bytes(buf)


def encode_connack(session_present, rc):
    return bytes((0x20, 2, 1 if session_present else 0, rc))


def encode_suback(pid, codes):
    rem = 2 + len(codes)
    buf = bytearray(1 + varlen_size(rem) + rem)
    buf[0] = 0x90
    pos = put_varlen(buf, 1, rem)
    buf[pos] = pid >> 8
    buf[pos + 1] = pid & 0xFF
    buf[pos + 2:pos + 2 + len(codes)] = bytes(codes)
    return bytes(buf)


def parse_connect(body):
    """Server side: -> dict(client_id, keepalive, clean, user, password, will)."""
    name, pos = _str_at(body, 0, "CONNECT protocol name")
    if bytes(name) != b"MQTT":
        raise MalformedPacket("protocol name %r" % bytes(name))
    _need(body, pos + 4, "CONNECT header")
    level, flags = body[pos], body[pos + 1]
    if level != 4:
        raise MalformedPacket("protocol level %d" % level)
    if flags & 1:
        raise MalformedPacket("CONNECT reserved flag set")
    ka = (body[pos + 2] << 8) | body[pos + 3]
    cid, pos = _str_at(body, pos + 4, "client id")
    out = {"client_id": _text(cid, "client id"), "keepalive": ka, "clean": bool(flags & 2),
           "user": None, "password": None, "will": None}
    if flags & 4:
        wt, pos = _str_at(body, pos, "will topic")
        wp, pos = _str_at(body, pos, "will payload")
        out["will"] = (_text(wt, "will topic"), bytes(wp), (flags >> 3) & 3, bool(flags & 0x20))
    if flags & 0x80:
        u, pos = _str_at(body, pos, "user name")
        out["user"] = _text(u, "user name")
    if flags & 0x40:
        p, pos = _str_at(body, pos, "password")
        out["password"] = bytes(p)
    if pos != len(body):
        raise MalformedPacket("CONNECT has trailing bytes")
    return out


def parse_subscribe(body):
    """Server side: -> (pid, [(topic, qos), ...])."""
    _need(body, 2, "SUBSCRIBE")
    pid = (body[0] << 8) | body[1]
    pos = 2
    subs = []
    while pos < len(body):
        t, pos = _str_at(body, pos, "SUBSCRIBE topic")
        _need(body, pos + 1, "SUBSCRIBE qos")
        q = body[pos]
        if q > 2:
            raise MalformedPacket("SUBSCRIBE qos %d" % q)
        subs.append((_text(t, "SUBSCRIBE topic"), q))
        pos += 1
    if not subs:
        raise MalformedPacket("SUBSCRIBE without topics")
    return pid, subs


class Decoder:
    """Incremental packet framer into a body buffer (a bytearray, or its size).

    `pos = dec.feed(data, pos, end)` consumes bytes until a packet is complete
    (`dec.ready`; `dec.kind`, `dec.flags`, `dec.body` describe it; `reset()`
    before feeding on) or the data runs out. `dec.state` is 0 between packets
    (EOF elsewhere = truncated). `dec.held` = bytes at the buffer's start that
    the packet being read occupies: the client encodes its own packets behind.
    """

    def __init__(self, buf):
        self.mv = memoryview(bytearray(buf) if isinstance(buf, int) else buf)
        self.reset()

    def reset(self):
        self.ready = False
        self.body = b""
        # _n: length bytes read (state 1), then body bytes copied (state 2)
        self.kind = self.flags = self.state = self.held = self._n = 0

    def feed(self, data, pos=0, end=-1):
        if end < 0:
            end = len(data)
        while pos < end and not self.ready:
            st = self.state
            if st == 2:
                got = self._n
                n = min(end - pos, self.held - got)
                self.mv[got:got + n] = data[pos:pos + n]
                self._n = got = got + n
                pos += n
                if got == self.held:
                    self.state = 0
                    self.ready = True
                    self.body = self.mv[:got]
                continue
            b = data[pos]
            pos += 1
            if st == 0:
                kind = b >> 4
                flags = b & 15
                if kind in (0, 15) or ((flags & 6) == 6 if kind == PUBLISH else
                                       flags != (2 if kind in (PUBREL, SUBSCRIBE, UNSUBSCRIBE) else 0)):
                    raise MalformedPacket("header 0x%x" % b)
                self.kind = kind
                self.flags = flags
                self.state = 1
                continue
            self.held += (b & 127) << (7 * self._n)
            self._n += 1
            if b & 128:
                if self._n >= 4:
                    raise MalformedPacket("length")
                continue
            if self.held > len(self.mv):
                raise MalformedPacket("too large: %d > %d" % (self.held, len(self.mv)))
            self._n = 0
            self.state = 2 if self.held else 0
            self.ready = not self.held
        return pos
