# MQTT 3.1.1 wire format: pure encoders and an incremental decoder, no I/O.
#
# Client side only: connect, publish (into a caller's preallocated buffer), puback,
# subscribe, pingreq, disconnect, and parsers for what a broker sends. The
# broker side (connack, suback, parse_connect...) is in packet_server.py so
# the device does not pay RAM for it.
#
# Every decode error raises MalformedPacket (PacketTooLarge for a packet over
# the decoder's limit): the session drops the connection and counts it.
from roadedge.core.compat import const

CONNECT = const(1)
CONNACK = const(2)
PUBLISH = const(3)
PUBACK = const(4)
PUBREC = const(5)
PUBREL = const(6)
PUBCOMP = const(7)
SUBSCRIBE = const(8)
SUBACK = const(9)
UNSUBSCRIBE = const(10)
UNSUBACK = const(11)
PINGREQ = const(12)
PINGRESP = const(13)
DISCONNECT = const(14)

PINGREQ_BYTES = b"\xc0\x00"
PINGRESP_BYTES = b"\xd0\x00"
DISCONNECT_BYTES = b"\xe0\x00"

# CONNACK return codes (3.1.1 table 3.1)
CONNACK_REASONS = ("accepted", "bad protocol", "id rejected", "server unavailable",
                   "bad user name or password", "not authorized")

_MAX_REMAINING = const(268435455)  # 4 length bytes


class MalformedPacket(ValueError):
    """The peer sent bytes that are not a valid MQTT 3.1.1 packet."""


class PacketTooLarge(MalformedPacket):
    """A packet's remaining length exceeds the configured maximum."""


def varlen_size(n):
    """Bytes needed to encode remaining length n."""
    if n < 128:
        return 1
    if n < 16384:
        return 2
    if n < 2097152:
        return 3
    return 4


def put_varlen(buf, pos, n):
    """Write remaining length n at buf[pos]; returns the next position."""
    if n < 0 or n > _MAX_REMAINING:
        raise ValueError("remaining length out of range")
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            buf[pos] = b | 0x80
            pos += 1
        else:
            buf[pos] = b
            return pos + 1


def _put_str(buf, pos, b):
    n = len(b)
    buf[pos] = n >> 8
    buf[pos + 1] = n & 0xFF
    buf[pos + 2:pos + 2 + n] = b
    return pos + 2 + n


def _b(x):
    if x is None:
        return b""
    if isinstance(x, str):
        return x.encode()
    return bytes(x)


def publish_size(topic_len, payload_len, qos):
    """Total bytes of a PUBLISH packet."""
    rem = 2 + topic_len + (2 if qos else 0) + payload_len
    return 1 + varlen_size(rem) + rem


def encode_publish(buf, topic, payload, qos=0, retain=False, dup=False, pid=0):
    """Write a whole PUBLISH into buf (a preallocated bytearray); returns its length.

    topic and payload are bytes-like. Raises PacketTooLarge if it does not fit.
    """
    tl = len(topic)
    pl = len(payload)
    rem = 2 + tl + (2 if qos else 0) + pl
    total = 1 + varlen_size(rem) + rem
    if total > len(buf):
        raise PacketTooLarge("publish of %d bytes exceeds buffer %d" % (total, len(buf)))
    if qos not in (0, 1, 2):
        raise ValueError("qos must be 0, 1 or 2")
    buf[0] = 0x30 | (0x08 if dup and qos else 0) | (qos << 1) | (1 if retain else 0)
    pos = put_varlen(buf, 1, rem)
    pos = _put_str(buf, pos, topic)
    if qos:
        if not 0 < pid < 65536:
            raise ValueError("packet id must be 1..65535")
        buf[pos] = pid >> 8
        buf[pos + 1] = pid & 0xFF
        pos += 2
    buf[pos:pos + pl] = payload
    return pos + pl


def encode_connect(client_id, keepalive=30, clean=True, user=None, password=None, will=None):
    """CONNECT packet as bytes. will = (topic, payload, qos, retain) or None."""
    cid = _b(client_id)
    flags = 0x02 if clean else 0
    size = 10 + 2 + len(cid)
    if will:
        wt, wp = _b(will[0]), _b(will[1])
        flags |= 0x04 | ((will[2] & 3) << 3) | (0x20 if will[3] else 0)
        size += 4 + len(wt) + len(wp)
    if user is not None:
        u = _b(user)
        flags |= 0x80
        size += 2 + len(u)
        if password is not None:
            pw = _b(password)
            flags |= 0x40
            size += 2 + len(pw)
    elif password is not None:
        raise ValueError("password needs a user name (MQTT 3.1.1)")
    if not 0 <= keepalive < 65536:
        raise ValueError("keepalive must be 0..65535 s")
    buf = bytearray(1 + varlen_size(size) + size)
    buf[0] = 0x10
    pos = put_varlen(buf, 1, size)
    pos = _put_str(buf, pos, b"MQTT")
    buf[pos] = 4  # protocol level 3.1.1
    buf[pos + 1] = flags
    buf[pos + 2] = keepalive >> 8
    buf[pos + 3] = keepalive & 0xFF
    pos = _put_str(buf, pos + 4, cid)
    if will:
        pos = _put_str(buf, pos, wt)  # type: ignore
        pos = _put_str(buf, pos, wp)  # type: ignore
    if flags & 0x80:
        pos = _put_str(buf, pos, u)  # type: ignore
    if flags & 0x40:
        pos = _put_str(buf, pos, pw)  # type: ignore
    return bytes(buf)


def encode_pid(kind, pid, buf=None):
    """A 4-byte packet carrying only a packet id (PUBACK, UNSUBACK...)."""
    if buf is None:
        buf = bytearray(4)
    buf[0] = (kind << 4) | (2 if kind in (PUBREL, SUBSCRIBE, UNSUBSCRIBE) else 0)
    buf[1] = 2
    buf[2] = pid >> 8
    buf[3] = pid & 0xFF
    return buf


def encode_subscribe(pid, topics):
    """SUBSCRIBE for [(topic, qos), ...] as bytes."""
    parts = [(_b(t), q) for t, q in topics]
    rem = 2 + sum(3 + len(t) for t, _ in parts)
    buf = bytearray(1 + varlen_size(rem) + rem)
    buf[0] = 0x82
    pos = put_varlen(buf, 1, rem)
    buf[pos] = pid >> 8
    buf[pos + 1] = pid & 0xFF
    pos += 2
    for t, q in parts:
        pos = _put_str(buf, pos, t)
        buf[pos] = q
        pos += 1
    return bytes(buf)


# --- decoding ---------------------------------------------------------------

class Decoder:
    """Incremental packet framer over a preallocated body buffer.

    Feed whatever the socket gave: `pos = dec.feed(data, pos, end)` consumes
    bytes until one packet is complete (then `dec.ready` is true, `dec.kind`,
    `dec.flags` and `dec.body()` describe it; call `dec.reset()` before
    feeding on) or the data runs out. No allocation per packet except the
    memoryview returned by body().
    """

    def __init__(self, max_packet=4096):
        self.max_packet = max_packet
        self._buf = bytearray(max_packet)
        self._mv = memoryview(self._buf)
        self.reset()

    def reset(self):
        self.ready = False
        self.kind = 0
        self.flags = 0
        self._state = 0  # 0 = first byte, 1 = length, 2 = body
        self._len = 0
        self._mult = 1
        self._nlen = 0
        self._got = 0

    def mid_packet(self):
        """True when part of a packet has been read (EOF now = truncated)."""
        return self._state != 0 or self.ready

    def body(self):
        return self._mv[:self._len]

    def feed(self, data, pos=0, end=-1):
        if end < 0:
            end = len(data)
        while pos < end and not self.ready:
            b = data[pos]
            if self._state == 0:
                kind = b >> 4
                flags = b & 0x0F
                if kind == 0 or kind == 15:
                    raise MalformedPacket("reserved packet type %d" % kind)
                if kind == PUBLISH:
                    if (flags >> 1) & 3 == 3:
                        raise MalformedPacket("PUBLISH with QoS 3")
                elif flags != (2 if kind in (PUBREL, SUBSCRIBE, UNSUBSCRIBE) else 0):
                    raise MalformedPacket("bad flags 0x%x for type %d" % (flags, kind))
                self.kind = kind
                self.flags = flags
                self._state = 1
                pos += 1
            elif self._state == 1:
                self._len += (b & 0x7F) * self._mult
                self._mult <<= 7
                self._nlen += 1
                pos += 1
                if b & 0x80:
                    if self._nlen >= 4:
                        raise MalformedPacket("remaining length over 4 bytes")
                    continue
                if self._len > self.max_packet:
                    raise PacketTooLarge("packet of %d bytes over limit %d" % (self._len, self.max_packet))
                if self._len:
                    self._state = 2
                else:
                    self._state = 0
                    self.ready = True
            else:
                n = min(end - pos, self._len - self._got)
                self._mv[self._got:self._got + n] = data[pos:pos + n]
                self._got += n
                pos += n
                if self._got == self._len:
                    self._state = 0
                    self.ready = True
        return pos


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


def parse_connack(body):
    """-> (session_present, return_code)."""
    if len(body) != 2:
        raise MalformedPacket("CONNACK length %d != 2" % len(body))
    if body[0] & 0xFE:
        raise MalformedPacket("CONNACK reserved flags set")
    rc = body[1]
    if rc > 5:
        raise MalformedPacket("CONNACK return code %d" % rc)
    return bool(body[0] & 1), rc


def parse_publish(flags, body):
    """-> (topic str, payload memoryview, qos, retain, dup, pid)."""
    qos = (flags >> 1) & 3
    t, pos = _str_at(body, 0, "PUBLISH topic")
    if not len(t):
        raise MalformedPacket("PUBLISH with empty topic")
    topic = _text(t, "PUBLISH topic")
    if "+" in topic or "#" in topic:
        raise MalformedPacket("PUBLISH topic has a wildcard")
    pid = 0
    if qos:
        _need(body, pos + 2, "PUBLISH packet id")
        pid = (body[pos] << 8) | body[pos + 1]
        if not pid:
            raise MalformedPacket("PUBLISH packet id 0")
        pos += 2
    return topic, body[pos:], qos, bool(flags & 1), bool(flags & 8), pid


def parse_pid(body, what="ack"):
    """Packet id of PUBACK / PUBREC / PUBREL / PUBCOMP / UNSUBACK."""
    if len(body) != 2:
        raise MalformedPacket("%s length %d != 2" % (what, len(body)))
    return (body[0] << 8) | body[1]


def parse_suback(body):
    """-> (pid, list of return codes: 0..2 granted QoS, 0x80 failure)."""
    if len(body) < 3:
        raise MalformedPacket("SUBACK truncated")
    codes = list(body[2:])
    for c in codes:
        if c > 2 and c != 0x80:
            raise MalformedPacket("SUBACK return code 0x%x" % c)
    return (body[0] << 8) | body[1], codes
