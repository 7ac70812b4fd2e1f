# MQTT 3.1.1 client codec: encoders that write into the caller's buffer and
# one parser for what a broker sends; no I/O. (The client frames the byte
# stream itself, in its read buffer: client._reader.)
#
# Small on purpose: a board that loads this as .mpy pays heap for every
# function (~90 bytes besides its bytecode), class (~200) and string constant
# (its length + ~40), so there are few of each and error messages are short
# (issue 18: the client's RAM). The broker side and test helpers (connack,
# suback, puback, parse_connect, the Decoder framer...) are in
# packet_server.py, never loaded by a device. Every decode error raises MalformedPacket, a packet over the buffer
# too ("too large").
from roadedge.core.compat import const

# Packet types: private consts cost no heap (the public names, for the broker
# side and tests, are in packet_server.py).
_CONNACK = const(2)
_PUBLISH = const(3)
_PUBACK = const(4)
_SUBACK = const(9)
_UNSUBACK = const(11)
_PINGRESP = const(13)


class MalformedPacket(ValueError):
    """The peer sent bytes that are not a valid MQTT 3.1.1 packet (or one
    over the buffer), or a packet to encode does not fit the buffer."""


def put_head(buf, first, rem):
    """Fixed header (type byte, remaining length rem) at buf[0]; returns the
    next position. MalformedPacket("too large") if the packet does not fit buf."""
    pos = 2 if rem < 128 else 3 if rem < 16384 else 4 if rem < 2097152 else 5
    if not 0 <= rem < 268435456 or pos + rem > len(buf):
        raise MalformedPacket("too large")
    buf[0] = first
    pos = 1
    while rem > 127:
        buf[pos] = (rem & 127) | 128
        rem >>= 7
        pos += 1
    buf[pos] = rem
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
        raise ValueError("qos or pid")
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
        raise ValueError("password without user")
    rem = 10
    for i in range(len(fields)):  # (loops, not comprehensions: each of those is a function)
        fields[i] = f = _b(fields[i])
        rem += 2 + len(f)
    pos = _put_str(buf, put_head(buf, 0x10, rem), b"MQTT")
    buf[pos:pos + 4] = bytes((4, flags, keepalive >> 8, keepalive & 255))
    pos += 4
    for f in fields:
        pos = _put_str(buf, pos, f)
    return pos


def encode_subscribe(buf, pid, topics):
    """Write SUBSCRIBE for [(topic, qos), ...] into buf; returns its length."""
    rem = 2
    for t, q in topics:
        rem += 3 + len(_b(t))
    pos = put_head(buf, 0x82, rem)
    buf[pos] = pid >> 8
    buf[pos + 1] = pid & 255
    pos += 2
    for t, q in topics:
        pos = _put_str(buf, pos, _b(t))
        buf[pos] = q
        pos += 1
    return pos


def parse(kind, flags, body):
    """Check and decode a packet a broker sends (PUBLISH either way):
    CONNACK -> (session_present, return_code); PUBLISH -> (topic str, payload
    memoryview, qos, retain, dup, pid); PUBACK, UNSUBACK -> pid; SUBACK ->
    (pid, [0..2 granted QoS or 0x80 failure]); PINGRESP -> None."""
    n = len(body)
    if kind == _PUBLISH:
        qos = flags >> 1 & 3
        tl = body[0] << 8 | body[1] if n > 1 else n
        pos = 2 + tl + (2 if qos else 0)
        try:
            topic = str(bytes(body[2:2 + tl]), "utf-8")
        except Exception:
            topic = ""
        if pos > n or not topic or "+" in topic or "#" in topic:
            raise MalformedPacket("topic")
        pid = body[pos - 2] << 8 | body[pos - 1] if qos else 0
        if qos and not pid:
            raise MalformedPacket("pid 0")
        return topic, body[pos:], qos, bool(flags & 1), bool(flags & 8), pid
    if kind == _CONNACK and n == 2 and not body[0] & 0xFE and body[1] < 6:
        return bool(body[0]), body[1]
    if kind in (_PUBACK, _UNSUBACK) and n == 2:
        return body[0] << 8 | body[1]
    if kind == _SUBACK and n > 2:
        codes = list(body[2:])
        for c in codes:
            if 2 < c != 0x80:
                break
        else:
            return body[0] << 8 | body[1], codes
    if kind == _PINGRESP and not n:
        return None
    raise MalformedPacket("type %d, %d bytes" % (kind, n))
