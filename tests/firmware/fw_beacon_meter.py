# Visibility meter and radar decoders, meter health: under MicroPython and CPython.
from fwtest import raises
from roadedge.beacon import meter as V
from roadedge.beacon import detector as D


def test_roundtrip_and_known_frames():
    assert V.poll_command(1) == b"$VMPOL,01*65\r\n"
    line = V.reply_line(1, 150, 0)
    assert line == b"$VMMOR,01,150,00*52\r\n"
    assert V.parse(line) == (1, 150, 0)
    assert V.parse(V.reply_line(7, None, V.WARMUP)) == (7, None, V.WARMUP)
    assert V.parse(V.reply_line(99, 20000, V.WINDOW | V.EMITTER)) == (99, 20000, 5)


def test_bad_lines_are_named():
    good = V.reply_line(1, 150, 0)
    assert str(raises(ValueError, V.parse, b"")) == "format"
    assert str(raises(ValueError, V.parse, b"VMMOR,01,150,00*52")) == "format"
    assert str(raises(ValueError, V.parse, good.replace(b"150", b"151"))) == "checksum"
    assert str(raises(ValueError, V.parse, good[:-4] + b"ZZ\r\n")) == "format"
    assert str(raises(ValueError, V.parse, V.frame(b"VMXXX,01,150,00"))) == "sentence"
    assert str(raises(ValueError, V.parse, V.frame(b"VMMOR,01,150"))) == "field"
    assert str(raises(ValueError, V.parse, V.frame(b"VMMOR,01,abc,00"))) == "field"
    assert str(raises(ValueError, V.parse, V.frame(b"VMMOR,01,99999,00"))) == "range"
    assert str(raises(ValueError, V.parse, b"$" + b"A" * 80 + b"*00")) == "format"


def test_health_fault_silence_recovery():
    h = V.MeterHealth(miss_polls=1)
    assert h.status == V.INIT and not h.usable()
    h.polled()
    assert h.reply(300, 0) and h.usable() and h.mor == 300
    assert not h.reply_due()
    h.polled()
    assert h.reply(300, V.WINDOW) is False and h.usable()  # a warning keeps the reading
    h.polled()
    assert h.reply(None, V.RECEIVER) and h.status == V.FAULT and h.reason == "receiver"
    h.polled()
    assert h.reply(280, 0) and h.usable()
    h.polled()
    assert h.reply_due() and h.status == V.SILENT and h.reason == "no_reply"
    h.polled()
    assert h.reply_due() is False  # still silent, no new change
    assert h.reply(250, 0) and h.usable()


def test_poller_counts_bad_lines():
    ctr = {}
    seen = []
    changes = []
    p = V.MeterPoller(None, {"addr": 1}, ctr, lambda m, f: seen.append(m), lambda h: changes.append(h.status))
    p.line(b"garbage\r\n")
    p.line(V.reply_line(2, 100, 0))
    p.line(V.reply_line(1, 100, 0).replace(b"100", b"101"))
    p.line(V.reply_line(1, 120, 0))
    assert seen == [120] and changes == [V.OK]
    assert ctr["meter_bad_format"] == 1 and ctr["meter_bad_addr"] == 1 and ctr["meter_bad_checksum"] == 1
    assert ctr["meter_replies"] == 1


def test_radar_speed_sentence():
    assert D.parse_speed(V.frame(b"RDSPD,082,A")) == 82.0
    assert D.parse_speed(V.frame(b"RDSPD,000,V")) is None
    assert str(raises(ValueError, D.parse_speed, V.frame(b"RDSPD,082,Q"))) == "field"
    assert str(raises(ValueError, D.parse_speed, V.frame(b"RDSPD,999,A"))) == "range"
    assert str(raises(ValueError, D.parse_speed, V.frame(b"RDSPD,082,A")[:-4] + b"00")) == "checksum"
    m = D.SpeedMemory(1500)
    assert m.speed_at(1000) is None
    m.put(1000, 80.0)
    assert m.speed_at(2000) == 80.0 and m.speed_at(3000) is None
