# MQTTClient outbound queue and drop policy: publish() is pure bookkeeping, so
# it is checked here without a broker (the session is tested in
# tests/test_mqtt_client.py against Mosquitto and a fake broker).
import asyncio

from fwtest import raises
from roadedge.mqtt import client as cm
from roadedge.mqtt import packet as pk
from roadedge.mqtt.client import MQTTClient


def _client(**kw):
    return MQTTClient("dev", "127.0.0.1", **kw)


def _queued(c):
    return [bytes(c._qp[(c._qh + i) % len(c._qp)]) for i in range(c.queued())]


def test_accepts_until_full_then_refuses_qos0():
    c = _client(queue_size=3)
    assert c.publish("a/b", b"1") and c.publish("a/b", b"2", 1) and c.publish("a/b", "3")
    assert not c.publish("a/b", b"4")
    assert c.stats["dropped"] == 1 and c.stats["refused"] == 1 and c.stats["evicted"] == 0
    assert _queued(c) == [b"1", b"2", b"3"]


def test_qos1_evicts_oldest_qos0_keeping_order():
    c = _client(queue_size=3)
    c.publish("t", b"a", 1)
    c.publish("t", b"b", 0)
    c.publish("t", b"c", 0)
    assert c.publish("t", b"d", 1)
    assert _queued(c) == [b"a", b"c", b"d"]
    assert c.stats["evicted"] == 1 and c.stats["dropped"] == 1
    assert c.publish("t", b"e", 1)
    assert _queued(c) == [b"a", b"d", b"e"]
    assert not c.publish("t", b"f", 1)  # only QoS 1 left: the new one is refused
    assert c.stats["refused"] == 1 and c.stats["dropped"] == 3
    assert _queued(c) == [b"a", b"d", b"e"]


def test_too_large_refused_and_bad_input_raises():
    c = _client(max_packet=64)
    assert not c.publish("t", b"x" * 100, 1)
    assert c.stats["too_large"] == 1 and c.stats["dropped"] == 1
    raises(ValueError, c.publish, "a/#", b"x")
    raises(ValueError, c.publish, "", b"x")
    raises(ValueError, c.publish, "a", b"x", 2)
    raises(ValueError, MQTTClient, "", "h")


def test_closed_client_refuses():
    c = _client()
    c.close()
    assert not c.publish("t", b"x")


async def test_wait_space_returns_when_a_slot_frees():
    c = _client(queue_size=1)
    c.publish("t", b"x", 1)
    waiter = asyncio.create_task(c.wait_space())
    await asyncio.sleep(0)
    assert not waiter.done()
    # what the writer does when it takes a message off the queue
    c._qp[c._qh] = None
    c._qh = (c._qh + 1) % len(c._qp)
    c._qn -= 1
    c._space.set()
    await asyncio.wait_for(waiter, 1)
    assert c.publish("t", b"y", 1)


class _Sock:
    """Stands in for the socket: hands the read loop the given bytes (step at
    a time), then EOF; keeps what is written."""

    def __init__(self, data, step=0):
        self.data = data
        self.step = step
        self.out = b""

    def readinto(self, buf):
        k = min(len(buf), self.step or len(buf))
        d, self.data = self.data[:k], self.data[k:]
        buf[:len(d)] = d
        return len(d)

    def write(self, b):
        self.out += bytes(b)
        return len(b)

    def close(self):
        pass


async def _ready(s, w):
    pass


async def _read(c, data, step=0):
    """Run the client's reader task over one socket until it reports to the
    writer; the socket (what the reader wrote is in .out)."""
    io = cm._io
    cm._io = _ready  # the fake socket is always readable
    try:
        c._fail = None
        s = c._s = _Sock(data, step)
        t = asyncio.create_task(c._reader())
        while c._fail is None:
            await asyncio.sleep(0)
        t.cancel()
    finally:
        cm._io = io
    return s


def _ack(pid):
    return bytes((0x40, 2, pid >> 8, pid & 255))


async def test_ack_bookkeeping_out_of_order():
    c = _client(window=3)
    for pid in (1, 2, 3):
        j = (c._wh + c._wn) % 3
        c._wid[j], c._wt[j], c._wp[j] = pid, b"t", b"p"
        c._wn += 1
    c._connack = (False, 0)
    await _read(c, _ack(2))
    assert c.in_flight() == 3  # head (1) still unacked
    await _read(c, _ack(1) + _ack(9))  # 9: unknown id, ignored
    assert c.in_flight() == 1 and c.stats["acked"] == 2
    await _read(c, _ack(3))
    assert c.in_flight() == 0 and c.stats["acked"] == 3
    assert "closed by broker" in str(c._fail)  # each EOF handed to the writer loop


async def test_repeated_memory_errors_shed_qos0_never_qos1():
    c = _client(queue_size=6)
    for i in range(3):
        c.publish("re/d/tele", b"t%d" % i, 0)
        c.publish("re/d/event", b"e%d" % i, 1)
    c._oom()  # one MemoryError: a reconnect, nothing shed yet
    assert c.queued() == 6 and c.stats["mem_errors"] == 1
    c._oom()  # repeated: every queued QoS 0 goes, oldest first; QoS 1 stays in order
    assert _queued(c) == [b"e0", b"e1", b"e2"]
    assert c.stats["shed"] == 3 and c.stats["dropped"] == 3
    assert not c.publish("re/d/tele", b"new", 0) and c.stats["shed"] == 4  # new QoS 0 refused
    assert c.publish("re/d/event", b"e3", 1)  # QoS 1 still accepted
    for _ in range(3):
        c._oom()
    assert c.wedged() and _queued(c) == [b"e0", b"e1", b"e2", b"e3"]
    # a PINGRESP: the session works again; pressure over
    c._connack = (False, 0)
    await _read(c, b"\xd0\x00")
    assert not c.wedged() and c.oom_streak == 0
    assert c.publish("re/d/tele", b"ok", 0)


async def test_reader_frames_any_chunking_and_acks_incoming_qos1():
    # The client frames the stream in its own buffer: packets split anywhere,
    # several in one read, a QoS 1 PUBLISH answered with its PUBACK.
    buf = bytearray(64)
    n = pk.encode_publish(buf, b"re/d/cmd/x", b"hello", 1, False, False, 7)
    data = b"\xd0\x00" + bytes(buf[:n]) + _ack(1) + b"\xd0\x00"
    for step in (0, 1, 3, 5):
        c = _client(window=2)
        got = []
        c.on_message = lambda t, p, r, got=got: got.append((t, p, r))
        c._wid[0], c._wn = 1, 1
        c._connack = (False, 0)
        s = await _read(c, data, step)
        assert got == [("re/d/cmd/x", b"hello", False)], step
        assert s.out == _ack(7) and c.in_flight() == 0 and c.stats["received"] == 1
        assert "closed by broker" in str(c._fail) and c._n == 0


async def test_reader_refuses_malformed_streams():
    for data, why in ((b"\x30\x05\x00\x01a", "truncated"),             # EOF inside a packet
                      (b"\x40", "truncated"),                              # ... inside its header
                      (b"\x36\x00", "header"),                            # PUBLISH QoS 3
                      (b"\x21\x02\x00\x00", "header"),                  # CONNACK with flags
                      (b"\x30\xff\xff\xff\xff\x7f", "length"),        # 5 length bytes
                      (b"\x30\xa0\x8d\x06" + b"\x00" * 8, "too large"),  # 100000 > max_packet
                      (b"\x30\x3f" + b"\x00" * 63, "too large"),         # 65 bytes with its header
                      (b"\xc0\x00", "type"),                              # PINGREQ: not a broker's
                      (b"\x20\x02\x00\x00", "second CONNACK")):
        c = _client(max_packet=64)
        c._connack = (False, 0)
        await _read(c, data, 2)
        assert isinstance(c._fail, pk.MalformedPacket) and why in str(c._fail), (data, c._fail)
    c = _client()
    await _read(c, b"\xd0\x00")
    assert "not CONNACK first" in str(c._fail)
