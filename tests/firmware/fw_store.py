# roadedge.core.store.RecordLog: framing, segments, acks, overflow, torn tails.
import os
import fwtest
from roadedge.core.store import RecordLog, HDR


def _rec(i, n=40):
    # Deterministic payload per id so any misread shows.
    b = bytearray(n)
    for k in range(n):
        b[k] = (i * 31 + k * 7) & 0xFF
    return bytes(b)


def _segs(d):
    return sorted(f for f in os.listdir(d) if f.endswith(".seg"))


def _size(p):
    return os.stat(p)[6]


def _truncate(path, n):
    with open(path, "rb") as f:
        data = f.read(n)
    with open(path, "wb") as f:
        f.write(data)


def test_append_peek_ack_and_reopen():
    d = fwtest.tmpdir("rl")
    log = RecordLog(d)
    ids = [log.append(_rec(i)) for i in range(10)]
    assert ids == list(range(1, 11))
    assert len(log) == 10
    got = log.peek(3)
    assert got == [(1, _rec(0)), (2, _rec(1)), (3, _rec(2))]
    assert log.peek(3) == got  # peek does not consume
    log.ack(3)
    assert len(log) == 7
    assert log.peek(2) == [(4, _rec(3)), (5, _rec(4))]
    log.close()
    log = RecordLog(d)
    assert len(log) == 7
    assert log.peek(1) == [(4, _rec(3))]
    assert log.append(b"x") == 11  # ids keep rising after reopen
    assert [i for i, _ in log.peek(100)] == list(range(4, 12))
    log.ack(1000)  # beyond the newest: clamps
    assert len(log) == 0 and log.peek(5) == []
    log.close()
    log = RecordLog(d)
    assert len(log) == 0 and log.append(b"y") == 12


def test_partial_acks_and_empty_payload():
    d = fwtest.tmpdir("rl")
    log = RecordLog(d, seg_bytes=300, max_segs=50)
    for i in range(40):
        log.append(_rec(i, i % 9))
    seen = []
    while len(log):
        batch = log.peek(3)
        assert batch
        seen.extend(batch)
        log.ack(batch[0][0])  # ack only the first one of each batch
        seen = seen[: len(seen) - len(batch) + 1]
    assert [i for i, _ in seen] == list(range(1, 41))
    for i, data in seen:
        assert data == _rec(i - 1, (i - 1) % 9)


def test_segments_roll_and_consumed_ones_are_deleted():
    d = fwtest.tmpdir("rl")
    per = 4
    log = RecordLog(d, seg_bytes=per * (HDR + 40), max_segs=10)
    for i in range(20):
        log.append(_rec(i))
    assert len(_segs(d)) == 5
    for name in _segs(d):
        assert _size(d + "/" + name) <= per * (HDR + 40)
    log.ack(9)  # segments 1-4, 5-8 fully consumed; 9-12 partly
    assert len(_segs(d)) == 3
    assert log.peek(1)[0][0] == 10
    log.ack(20)
    assert len(_segs(d)) == 1  # the segment being written stays
    log.append(b"z")
    assert log.peek(5) == [(21, b"z")]


def test_overflow_drops_oldest_segment_and_counts_persistently():
    d = fwtest.tmpdir("rl")
    log = RecordLog(d, seg_bytes=5 * (HDR + 40), max_segs=3)
    for i in range(15):
        log.append(_rec(i))
    assert log.dropped == 0 and len(log) == 15
    log.append(_rec(15))  # a 4th segment is needed: the oldest goes
    assert log.dropped == 5
    assert len(log) == 11
    assert log.peek(1) == [(6, _rec(5))]
    log.ack(7)
    for i in range(16, 21):
        log.append(_rec(i))  # drops segment 6..10, of which 8..10 were unacked
    assert log.dropped == 8
    assert log.peek(1)[0][0] == 11
    log.close()
    log = RecordLog(d, seg_bytes=5 * (HDR + 40), max_segs=3)
    assert log.dropped == 8
    assert [i for i, _ in log.peek(100)] == list(range(11, 22))
    assert len(_segs(d)) <= 3


def test_torn_tail_is_dropped_counted_and_earlier_records_kept():
    d = fwtest.tmpdir("rl")
    log = RecordLog(d)
    for i in range(20):
        log.append(_rec(i))
    log.close()
    seg = d + "/" + _segs(d)[-1]
    _truncate(seg, _size(seg) - 20)  # cut the 20th record in half
    log = RecordLog(d)
    assert log.corrupt == 1
    assert len(log) == 19
    assert log.peek(100) == [(i + 1, _rec(i)) for i in range(19)]
    assert _size(seg) == 19 * (HDR + 40)  # torn bytes cut off
    assert log.append(_rec(99)) == 20  # the torn record's id was never handed out
    log.close()
    log = RecordLog(d)
    assert log.corrupt == 1  # counted once, persisted
    assert log.peek(100)[-1] == (20, _rec(99))


def test_torn_header_and_garbage_tail():
    d = fwtest.tmpdir("rl")
    log = RecordLog(d)
    for i in range(3):
        log.append(_rec(i))
    log.close()
    seg = d + "/" + _segs(d)[-1]
    with open(seg, "ab") as f:
        f.write(b"\xa5\x01\x28")  # half a header
    log = RecordLog(d)
    assert log.corrupt == 1 and len(log) == 3
    log.close()
    with open(seg, "ab") as f:
        f.write(bytes(range(200)))  # flash garbage
    log = RecordLog(d)
    assert log.corrupt == 2 and log.peek(10) == [(i + 1, _rec(i)) for i in range(3)]


def test_flipped_byte_in_last_segment_never_misread():
    d = fwtest.tmpdir("rl")
    log = RecordLog(d)
    for i in range(10):
        log.append(_rec(i))
    log.close()
    seg = d + "/" + _segs(d)[-1]
    with open(seg, "rb") as f:
        data = bytearray(f.read())
    data[6 * (HDR + 40) + HDR + 3] ^= 0x10  # payload of record 7
    with open(seg, "wb") as f:
        f.write(data)
    log = RecordLog(d)
    got = log.peek(100)
    assert got == [(i + 1, _rec(i)) for i in range(6)]
    assert log.corrupt >= 1


def test_flipped_byte_in_closed_segment_detected_at_peek():
    d = fwtest.tmpdir("rl")
    sb = 5 * (HDR + 40)
    log = RecordLog(d, seg_bytes=sb, max_segs=8)
    for i in range(15):
        log.append(_rec(i))
    log.close()
    first = d + "/" + _segs(d)[0]
    with open(first, "rb") as f:
        data = bytearray(f.read())
    data[2 * (HDR + 40) + HDR] ^= 0xFF  # record 3
    with open(first, "wb") as f:
        f.write(data)
    log = RecordLog(d, seg_bytes=sb, max_segs=8)
    got = log.peek(100)
    ids = [i for i, _ in got]
    assert ids == [1, 2] + list(range(6, 16)), ids  # 3..5 unreadable, never misread
    for i, data in got:
        assert data == _rec(i - 1)
    assert log.corrupt == 3
    assert len(log) == 12


def test_leftover_fix_file_recovered():
    # Cut between removing a segment and renaming its repaired copy (FAT).
    d = fwtest.tmpdir("rl")
    log = RecordLog(d)
    for i in range(5):
        log.append(_rec(i))
    log.close()
    name = _segs(d)[0]
    os.rename(d + "/" + name, d + "/" + name[:8] + ".fix")
    log = RecordLog(d)
    assert log.peek(10) == [(i + 1, _rec(i)) for i in range(5)]
    assert _segs(d) == [name]


def test_oversized_record_refused():
    d = fwtest.tmpdir("rl")
    log = RecordLog(d, seg_bytes=1024, max_segs=2)
    fwtest.raises(ValueError, log.append, bytes(1024))
    assert log.append(bytes(1024 - HDR)) == 1
    fwtest.raises(ValueError, RecordLog, d, 1024, 1)


def test_capacity_10000_tracker_records_within_1mb():
    d = fwtest.tmpdir("rl")
    log = RecordLog(d, seg_bytes=65536, max_segs=16)
    rec = _rec(1, 40)
    for _ in range(10000):
        log.append(rec)
    assert log.dropped == 0 and len(log) == 10000
    total = sum(_size(d + "/" + n) for n in _segs(d))
    assert total <= 1024 * 1024, total
    assert log.peek(2) == [(1, rec), (2, rec)]
    log.ack(9998)
    assert len(log) == 2 and log.peek(5) == [(9999, rec), (10000, rec)]


def test_torn_record_before_an_empty_newer_segment():
    # Cut right after a roll-over created the next (empty) segment while the
    # previous one's last record was still torn.
    d = fwtest.tmpdir("rl")
    log = RecordLog(d)
    for i in range(5):
        log.append(_rec(i))
    log.close()
    open(d + "/%08x.seg" % 6, "wb").close()
    seg = d + "/%08x.seg" % 1
    _truncate(seg, _size(seg) - 24)
    log = RecordLog(d)
    assert log.corrupt == 1 and len(log) == 4
    assert log.peek(10) == [(i + 1, _rec(i)) for i in range(4)]
    assert log.append(b"y") == 6
    assert log.peek(10)[-1] == (6, b"y")
    log.close()
    log = RecordLog(d)
    assert log.corrupt == 1 and [i for i, _ in log.peek(10)] == [1, 2, 3, 4, 6]
