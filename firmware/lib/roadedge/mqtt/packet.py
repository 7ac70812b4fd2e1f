# MQTT 3.1.1 client codec: encoders that write into the caller's buffer, an
# incremental framer and one parser for what a broker sends; no I/O.
#
# Few functions on purpose: a board that loads this as .mpy pays ~90 bytes of
# heap per function besides its bytecode (issue 18: the client's RAM). The
# broker side and test helpers (connack, suback, puback, parse_connect...) are
# in packet_server.py, never loaded by a device.
# Every decode error raises MalformedPacket (PacketTooLarge over the limit).
from roadedge.core.compat import const

CONNECT = const(1)
CONNACK = const(2)
PUBLISH = const(3)
PUBACK = const(4)
PUBREL = const(6)
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


class MalformedPacket(ValueError):
    """The peer sent bytes that are not a valid MQTT 3.1.1 packet."""


class PacketTooLarge(MalformedPacket):
    """A packet over the configured maximum."""


def put_head(buf, first, rem):
    """Fixed header (type byte, remaining length rem) at buf[0]; returns the
    next position. PacketTooLarge if the whole packet does not fit buf."""
    if not 0 <= rem <= 268435455:
        raise ValueError("remaining length")
    pos = 1
    n = rem
    while n > 127:
        buf[pos] = (n & 127) | 128
        n >>= 7
        pos += 1
    if pos + 1 + rem > len(buf):
        raise PacketTooLarge("%d > %d" % (pos + 1 + rem, len(buf)))
    buf[0] = first
    buf[pos] = n
    return pos + 1


def _put_str(buf, pos, b):
    n = len(b)
    buf[pos] = n >> 8
    buf[pos + 1] = n & 255
    buf[pos + 2:pos + 2 + n] = b
    return pos + 2 + n


def _b(x):
    return x.encode() if isinstance(x, str) else b"" if x is None else bytes(x)


def publish_size(topic_len, payload_len, qos):
    """Total bytes of a PUBLISH packet."""
    rem = 2 + topic_len + (2 if qos else 0) + payload_len
    return rem + (2 if rem < 128 else 3 if rem < 16384 else 4)


def encode_publish(buf, topic, payload, qos=0, retain=0, dup=0, pid=0):
    """Write a whole PUBLISH into buf; returns its length (one write per
    packet: see client.py on Nagle)."""
    if qos not in (0, 1, 2) or qos and not 0 < pid < 65536:
        raise ValueError("qos or packet id")
    pos = _put_str(buf, put_head(buf, 0x30 | (8 if dup and qos else 0) | qos << 1 | (1 if retain else 0),
                                 2 + len(topic) + (2 if qos else 0) + len(payload)), topic)
    if qos:
        buf[pos] = pid >> 8
        buf[pos + 1] = pid & 255
        pos += 2
    buf[pos:pos + len(payload)] = payload
    return pos + len(payload)


def encode_connect(buf, client_id, keepalive=30, clean=True, user=None, password=None, will=None):
    """Write CONNECT into buf; returns its length. will = (topic, payload, qos, retain)."""
    flags = 2 if clean else 0
    fields = [client_id]
    if will:
        flags |= 4 | (will[2] & 3) << 3 | (0x20 if will[3] else 0)
        fields += (will[0], will[1])
    if user is not None:
        flags |= 0x80
        fields.append(user)
        if password is not None:
            flags |= 0x40
            fields.append(password)
    elif password is not None:
        raise ValueError("password needs a user name")
    if not 0 <= keepalive < 65536:
        raise ValueError("keepalive")
    fields = [_b(f) for f in fields]
    pos = _put_str(buf, put_head(buf, 0x10, 10 + sum(2 + len(f) for f in fields)), b"MQTT")
    buf[pos:pos + 4] = bytes((4, flags, keepalive >> 8, keepalive & 255))
    pos += 4
    for f in fields:
        pos = _put_str(buf, pos, f)
    return pos


def encode_subscribe(buf, pid, topics):
    """Write SUBSCRIBE for [(topic, qos), ...] into buf; returns its length."""
    parts = [(_b(t), q) for t, q in topics]
    pos = put_head(buf, 0x82, 2 + sum(3 + len(t) for t, _ in parts))
    buf[pos] = pid >> 8
    buf[pos + 1] = pid & 255
    pos += 2
    for t, q in parts:
        pos = _put_str(buf, pos, t)
        buf[pos] = q
        pos += 1
    return pos


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
        self.kind = self.flags = self.state = self.held = self._nlen = self._got = 0

    def feed(self, data, pos=0, end=-1):
        if end < 0:
            end = len(data)
        while pos < end and not self.ready:
            st = self.state
            if st == 2:
                n = min(end - pos, self.held - self._got)
                self.mv[self._got:self._got + n] = data[pos:pos + n]
                self._got += n
                pos += n
                if self._got == self.held:
                    self.state = 0
                    self.ready = True
                    self.body = self.mv[:self.held]
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
            self.held += (b & 127) << (7 * self._nlen)
            self._nlen += 1
            if b & 128:
                if self._nlen >= 4:
                    raise MalformedPacket("length")
                continue
            if self.held > len(self.mv):
                raise PacketTooLarge("packet of %d bytes over limit %d" % (self.held, len(self.mv)))
            self.state = 2 if self.held else 0
            self.ready = not self.held
        return pos


def parse(kind, flags, body):
    """Check and decode a packet a broker sends (PUBLISH either way):
    CONNACK -> (session_present, return_code); PUBLISH -> (topic str, payload
    memoryview, qos, retain, dup, pid); PUBACK, UNSUBACK -> pid; SUBACK ->
    (pid, [0..2 granted QoS or 0x80 failure]); PINGRESP -> None."""
    n = len(body)
    if kind == PUBLISH:
        qos = flags >> 1 & 3
        tl = body[0] << 8 | body[1] if n > 1 else n
        pos = 2 + tl + (2 if qos else 0)
        try:
            topic = str(bytes(body[2:2 + tl]), "utf-8")
        except Exception:
            topic = ""
        if pos > n or not topic or "+" in topic or "#" in topic:
            raise MalformedPacket("PUBLISH topic")
        pid = body[pos - 2] << 8 | body[pos - 1] if qos else 0
        if qos and not pid:
            raise MalformedPacket("PUBLISH id 0")
        return topic, body[pos:], qos, bool(flags & 1), bool(flags & 8), pid
    if kind == CONNACK and n == 2 and not body[0] & 0xFE and body[1] < 6:
        return bool(body[0]), body[1]
    if kind in (PUBACK, UNSUBACK) and n == 2:
        return body[0] << 8 | body[1]
    if kind == SUBACK and n > 2:
        codes = list(body[2:])
        if all(c < 3 or c == 0x80 for c in codes):
            return body[0] << 8 | body[1], codes
    if kind == PINGRESP and not n:
        return None
    raise MalformedPacket("packet type %d, %d bytes" % (kind, n))
