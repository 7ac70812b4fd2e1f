# MQTT 3.1.1 codec (roadedge.mqtt.packet): round trips and malformed input.
from fwtest import raises
from roadedge.mqtt import packet as pk
from roadedge.mqtt import packet_server as ps


def _frame(data, max_packet=4096, chunk=None):
    """Feed data through a Decoder (optionally in small chunks); list of packets."""
    dec = ps.Decoder(max_packet)
    out = []
    step = chunk or len(data)
    for i in range(0, len(data), step):
        part = data[i:i + step]
        pos = 0
        while pos < len(part):
            pos = dec.feed(part, pos, len(part))
            if dec.ready:
                out.append((dec.kind, dec.flags, bytes(dec.body)))
                dec.reset()
    return out, dec


def test_varlen_boundaries():
    for n in (0, 1, 127, 128, 16383, 16384, 2097151, 2097152, 268435455):
        buf = bytearray(5)
        end = ps.put_varlen(buf, 0, n)
        assert end == ps.varlen_size(n)
        dec = ps.Decoder(200)
        # only the header: length without the body
        if n > 200:
            e = raises(pk.MalformedPacket, dec.feed, b"\x30" + bytes(buf[:end]))
            assert str(n) in str(e)
            continue
        dec.feed(b"\x30" + bytes(buf[:end]))
        if n == 0:
            assert dec.ready
        else:
            assert dec.held == n and not dec.ready
        if n < 100:  # put_head writes the same length bytes
            big = bytearray(n + 6)
            assert pk.put_head(big, 0x30, n) == end + 1 and big[1:end + 1] == buf[:end]
    raises(ValueError, ps.put_varlen, bytearray(5), 0, 268435456)
    raises(ValueError, pk.put_head, bytearray(5), 0x30, 268435456)
    raises(pk.MalformedPacket, pk.put_head, bytearray(5), 0x30, 4)


def test_publish_round_trip_qos0_and_qos1_any_chunking():
    buf = bytearray(512)
    n = pk.encode_publish(buf, b"re/dev1/tele", b'{"seq":1}', 0, True)
    n1 = pk.encode_publish(memoryview(buf)[n:], b"re/dev1/event", b"x" * 200, 1, False, True, 513)
    data = bytes(buf[:n + n1])
    for chunk in (None, 1, 3, 7):
        pkts, dec = _frame(data, chunk=chunk)
        assert len(pkts) == 2 and not dec.state
        kind, flags, body = pkts[0]
        assert kind == ps.PUBLISH
        topic, payload, qos, retain, dup, pid = pk.parse(ps.PUBLISH, flags, body)
        assert (topic, bytes(payload), qos, retain, dup, pid) == ("re/dev1/tele", b'{"seq":1}', 0, True, False, 0)
        topic, payload, qos, retain, dup, pid = pk.parse(ps.PUBLISH, pkts[1][1], pkts[1][2])
        assert (topic, bytes(payload), qos, retain, dup, pid) == ("re/dev1/event", b"x" * 200, 1, False, True, 513)


def test_publish_size_matches_encoding():
    buf = bytearray(300)
    for pl in (0, 100, 120, 130):
        for qos in (0, 1):
            n = pk.encode_publish(buf, b"t/x", b"p" * pl, qos, False, False, 7 if qos else 0)
            assert n == pk.publish_size(3, pl, qos)


def test_publish_too_big_for_buffer():
    raises(pk.MalformedPacket, pk.encode_publish, bytearray(20), b"topic", b"y" * 20)


def _connect(*a):
    buf = bytearray(256)
    return bytes(buf[:pk.encode_connect(buf, *a)])


def test_connect_round_trip():
    data = _connect("dev-1", 30, False, "dev-1", "s3cret", ("re/dev-1/status", b"offline", 1, True))
    (kind, flags, body), = _frame(data)[0]
    assert kind == ps.CONNECT
    c = ps.parse_connect(body)
    assert c["client_id"] == "dev-1" and c["keepalive"] == 30 and c["clean"] is False
    assert c["user"] == "dev-1" and c["password"] == b"s3cret"
    assert c["will"] == ("re/dev-1/status", b"offline", 1, True)
    c = ps.parse_connect(_frame(_connect("x", 5))[0][0][2])
    assert c["user"] is None and c["will"] is None and c["clean"] is True
    raises(ValueError, _connect, "x", 5, True, None, "pw")
    raises(pk.MalformedPacket, pk.encode_connect, bytearray(20), "a-long-client-id", 5, True, "u", "p")


def test_connack_suback_puback_subscribe_round_trip():
    (k, f, b), = _frame(ps.encode_connack(True, 0))[0]
    assert k == ps.CONNACK and pk.parse(k, f, b) == (True, 0)
    (k, f, b), = _frame(ps.encode_suback(9, [1, 0x80]))[0]
    assert k == ps.SUBACK and pk.parse(k, f, b) == (9, [1, 0x80])
    (k, f, b), = _frame(ps.encode_pid(ps.PUBACK, 65535))[0]
    assert k == ps.PUBACK and pk.parse(k, f, b) == 65535
    buf = bytearray(64)
    (k, f, b), = _frame(bytes(buf[:pk.encode_subscribe(buf, 3, [("re/d/cmd/#", 1), ("re/sys/#", 0)])]))[0]
    assert k == ps.SUBSCRIBE and f == 2
    assert ps.parse_subscribe(b) == (3, [("re/d/cmd/#", 1), ("re/sys/#", 0)])
    (k, f, b), = _frame(ps.encode_unsubscribe(4, ["a/b"]))[0]
    assert k == ps.UNSUBSCRIBE and f == 2
    pkts = _frame(ps.PINGREQ_BYTES + ps.PINGRESP_BYTES + ps.DISCONNECT_BYTES)[0]
    assert [p[0] for p in pkts] == [ps.PINGREQ, ps.PINGRESP, ps.DISCONNECT]
    assert pk.parse(ps.PINGRESP, 0, b"") is None


def test_truncated_packet_is_mid_packet():
    buf = bytearray(64)
    n = pk.encode_publish(buf, b"a/b", b"hello", 1, False, False, 1)
    for cut in range(1, n):
        pkts, dec = _frame(bytes(buf[:cut]))
        assert not pkts and (dec.state or dec.ready)


def test_malformed_framing_raises():
    dec = ps.Decoder(64)
    raises(pk.MalformedPacket, dec.feed, b"\x00\x00")            # reserved type 0
    raises(pk.MalformedPacket, ps.Decoder(64).feed, b"\xf0\x00")  # reserved type 15
    raises(pk.MalformedPacket, ps.Decoder(64).feed, b"\x36\x00")  # PUBLISH QoS 3
    raises(pk.MalformedPacket, ps.Decoder(64).feed, b"\x21\x02\x00\x00")  # CONNACK flags
    raises(pk.MalformedPacket, ps.Decoder(64).feed, b"\x80\x02\x00\x01")  # SUBSCRIBE without flag 2
    raises(pk.MalformedPacket, ps.Decoder(64).feed, b"\x30\xff\xff\xff\xff\x7f")  # 5 length bytes
    e = raises(pk.MalformedPacket, ps.Decoder(64).feed, b"\x30\x41")  # 65 > 64
    assert "too large" in str(e)
    ps.Decoder(64).feed(b"\x30\x40")  # exactly the limit is fine


def test_malformed_bodies_raise():
    C, P = ps.CONNACK, ps.PUBLISH
    for kind, flags, body in ((C, 0, b"\x00"), (C, 0, b"\x00\x00\x00"), (C, 0, b"\x02\x00"), (C, 0, b"\x00\x06"),
                              (P, 0, b"\x00\x09ab"),        # topic past the end
                              (P, 0, b"\x00\x00xy"),        # empty topic
                              (P, 0, b"\x00"),               # no room for the topic length
                              (P, 2, b"\x00\x01a\x00"),     # no room for pid
                              (P, 2, b"\x00\x01a\x00\x00"),  # pid 0
                              (P, 0, b"\x00\x03a/#"),       # wildcard
                              (P, 0, b"\x00\x02\xff\xfe"),  # not UTF-8
                              (ps.PUBACK, 0, b"\x00"), (ps.SUBACK, 0, b"\x00\x01"),
                              (ps.SUBACK, 0, b"\x00\x01\x05"), (ps.PINGRESP, 0, b"x"),
                              (ps.SUBSCRIBE, 2, b"\x00\x01\x00\x01a\x00")):  # not sent by a broker
        raises(pk.MalformedPacket, pk.parse, kind, flags, body)
    raises(pk.MalformedPacket, ps.parse_connect, b"\x00\x04MQTX\x04\x02\x00\x05\x00\x01x")
    raises(pk.MalformedPacket, ps.parse_connect, b"\x00\x04MQTT\x03\x02\x00\x05\x00\x01x")
    raises(pk.MalformedPacket, ps.parse_connect, b"\x00\x04MQTT\x04\x02\x00\x05\x00\x05x")
    raises(pk.MalformedPacket, ps.parse_subscribe, b"\x00\x01")


def test_garbage_never_escapes_as_other_errors():
    # Deterministic pseudo-random bytes: only MalformedPacket (or nothing) may come out.
    x = 12345
    for _ in range(300):
        data = bytearray(24)
        for i in range(24):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            data[i] = (x >> 16) & 0xFF
        dec = ps.Decoder(256)
        try:
            pos = 0
            while pos < len(data):
                pos = dec.feed(data, pos, len(data))
                if dec.ready:
                    pk.parse(dec.kind, dec.flags, dec.body)
                    dec.reset()
        except pk.MalformedPacket:
            pass
