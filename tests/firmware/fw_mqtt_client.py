# MQTTClient outbound queue and drop policy: publish() is pure bookkeeping, so
# it is checked here without a broker (the session is tested in
# tests/test_mqtt_client.py against Mosquitto and a fake broker).
import asyncio

from fwtest import raises
from roadedge.mqtt.client import MQTTClient


def _client(**kw):
    return MQTTClient("dev", "127.0.0.1", **kw)


def _queued(c):
    return [bytes(c._q[(c._qhead + i) % len(c._q)][1]) for i in range(c.queued())]


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
    c._q[c._qhead][0] = None
    c._qhead = (c._qhead + 1) % len(c._q)
    c._qlen -= 1
    c._space.set()
    await asyncio.wait_for(waiter, 1)
    assert c.publish("t", b"y", 1)


def test_ack_bookkeeping_out_of_order():
    c = _client(window=3)
    for pid in (1, 2, 3):
        s = c._win[(c._whead + c._wlen) % 3]
        s[0], s[1], s[2] = pid, b"t", b"p"
        c._wlen += 1
    c._acked(2)
    assert c.in_flight() == 3  # head (1) still unacked
    c._acked(1)
    assert c.in_flight() == 1
    c._acked(9)  # unknown id: ignored
    c._acked(3)
    assert c.in_flight() == 0 and c.stats["acked"] == 3
