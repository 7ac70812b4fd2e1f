"""RecordLog survives power cuts: a real MicroPython process appending and
acking records is SIGKILLed at random moments, again and again; after each
cut every record whose append returned and that was not acked is read back
intact and in order, acked records never come back, and ids keep rising. A
torn last record (a segment cut mid-record, as a power failure during a
flash write leaves it) is dropped and counted, never misread.

A cut inside ack() (after it wrote the cursor, before it returned) may have
consumed the batch or not: the ack is one atomic cursor write, so the store
holds either every record of the batch or none of them. Kill points pin the
cut to the windows inside ack and the segment purge every time."""
from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from host_tools import fw

sys.path.insert(0, str(Path(__file__).parent / "support"))

from roadedge.core.store import HDR, RecordLog  # noqa: E402
from store_writer import MAX_SEGS, SEG_BYTES, payload  # noqa: E402

WRITER = Path(__file__).parent / "support" / "store_writer.py"


def _run_and_kill(d: Path, seed: int, lines_before_kill: int = 0, point: str | None = None) -> list[str]:
    """Start the writer, read until it reported enough (or, with a kill
    point, until it stopped there), SIGKILL it, return every line it managed
    to print (including those still in the pipe)."""
    p = fw.spawn("micropython", WRITER, [str(d), str(seed)] + ([point] if point else []), heap="96K",
                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert p.stdout is not None

    def enough(buf: bytes) -> bool:
        if point:
            return buf.startswith(b"P ") or b"\nP " in buf
        return buf.count(b"\n") >= lines_before_kill

    buf = b""
    deadline = time.monotonic() + 60
    try:
        while not enough(buf):
            left = deadline - time.monotonic()
            assert left > 0, "writer too slow:\n" + buf.decode()[-2000:]
            r, _, _ = select.select([p.stdout], [], [], left)
            if r:
                chunk = os.read(p.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError("writer exited early:\n" + buf.decode()[-2000:])
                buf += chunk
    finally:
        p.send_signal(signal.SIGKILL)
        rest = p.stdout.read()
        p.wait(timeout=30)
    buf += rest
    text = buf.decode(errors="replace")
    lines = text.split("\n")
    if not text.endswith("\n"):
        lines = lines[:-1]  # a line cut by the kill proves nothing
    for ln in lines:
        assert not ln.startswith("E "), ln
    return [ln for ln in lines if ln]


def _ids(lines: list[str], tag: str) -> list[int]:
    return [int(ln.split()[1]) for ln in lines if ln.startswith(tag + " ")]


def _acks(lines: list[str], acked: int) -> tuple[int, int | None]:
    """(highest ack that returned, the ack the cut interrupted or None)."""
    done = _ids(lines, "K")
    started = _ids(lines, "k")
    reported = max([acked] + done)
    inflight = started[-1] if started and started[-1] > reported else None
    return reported, inflight


def _check(d: Path, appended: list[int], acked: int, inflight: int | None = None,
           phantoms: set[int] | None = None) -> RecordLog:
    """Reopen and verify; `inflight` is an ack the cut interrupted (it may
    have landed, all or nothing); `phantoms` collects ids written by an
    append that was killed before it reported (allowed once, then expected
    to stay)."""
    phantoms = set() if phantoms is None else phantoms
    log = RecordLog(str(d), seg_bytes=SEG_BYTES, max_segs=MAX_SEGS)
    assert log.acked in (acked, inflight), f"cursor {log.acked}: acks returned up to {acked}, in flight {inflight}"
    got = log.peek(100000)
    ids = [i for i, _ in got]
    assert ids == sorted(ids) and len(set(ids)) == len(ids), "records out of order"
    for i, data in got:
        assert data == payload(i), f"record {i} misread"
    assert not ids or ids[0] > acked, f"acked record {ids[0]} came back (acked up to {acked})"
    expected = [i for i in appended if i > log.acked]
    present = set(ids)
    missing = [i for i in expected if i not in present]
    assert not missing, f"records lost: {missing[:10]} ({len(missing)} in all)"
    # At most one extra: an append killed after its write, before it reported.
    exp_set = set(expected)
    extra = [i for i in ids if i not in exp_set and i not in phantoms]
    top = max(appended) if appended else acked
    assert extra in ([], [top + 1]), f"unexpected records {extra[:10]}"
    phantoms.update(extra)
    assert log.dropped == 0
    assert len(log) == len(ids)
    return log


def test_store_survives_repeated_sigkill(tmp_path: Path) -> None:
    d = tmp_path / "store"
    rnd = random.Random(20261122)
    appended: list[int] = []
    acked = 0
    kills = 0
    phantoms: set[int] = set()
    for round_ in range(20):
        lines = _run_and_kill(d, seed=round_, lines_before_kill=rnd.randint(20, 600))
        kills += 1
        new = _ids(lines, "A")
        assert new, "writer appended nothing"
        # ids keep rising across restarts, even past a record lost in the cut
        assert not appended or new[0] > appended[-1]
        assert new == sorted(new)
        appended += new
        acked, inflight = _acks(lines, acked)
        log = _check(d, appended, acked, inflight, phantoms)
        acked = log.acked
        log.close()
    assert kills == 20 and len(appended) > 100 and acked > 0


def test_torn_tail_dropped_counted_earlier_intact(tmp_path: Path) -> None:
    d = tmp_path / "store"
    lines = _run_and_kill(d, seed=7, lines_before_kill=300)
    appended = _ids(lines, "A")
    log = _check(d, appended, *_acks(lines, 0))
    pending = log.peek(100000)
    corrupt0 = log.corrupt
    log.close()
    assert pending, "nothing pending to tear"
    last_id, last_data = pending[-1]
    # The segment holding it (the kill may have left a newer, empty one).
    seg = max((p for p in d.iterdir() if p.suffix == ".seg" and int(p.stem, 16) <= last_id),
              key=lambda p: int(p.stem, 16))
    size = seg.stat().st_size
    # Cut the newest record in half, as a power failure mid-write would.
    with open(seg, "r+b") as f:
        f.truncate(size - (HDR + len(last_data)) // 2)
    log = RecordLog(str(d), seg_bytes=SEG_BYTES, max_segs=MAX_SEGS)
    after = log.peek(100000)
    assert after == pending[:-1], "earlier records must survive a torn tail untouched"
    assert log.corrupt == corrupt0 + 1
    # The store stays usable: the next append gets a fresh id (the torn
    # record's own id may be reused: no one ever saw it) and reads back.
    rid = log.next_id
    assert rid >= last_id
    assert log.append(payload(rid)) == rid
    assert log.peek(100000)[-1] == (rid, payload(rid))
    log.close()
    # And the writer carries on from there after another cut.
    lines = _run_and_kill(d, seed=8, lines_before_kill=50)
    new = _ids(lines, "A")
    assert new and new[0] == rid + 1


# Cursor writes: the first acks (seed 7 acks up to 6, 25, 46, ...). Segment
# removals: the purges after acks that emptied whole 1 KiB segments.
@pytest.mark.parametrize("point", ["cursor:1", "cursor:3", "cursor:6", "rm:1", "rm:2", "rm:4"])
def test_cut_inside_ack_and_purge(tmp_path: Path, point: str) -> None:
    """The cut lands right after ack() persisted its cursor (before it
    returned) or right after the purge removed a segment: the batch is
    consumed, every later record whose append returned is intact, and the
    writer carries on with rising ids after the restart."""
    d = tmp_path / "store"
    lines = _run_and_kill(d, seed=7, point=point)
    assert lines[-1] == "P " + point
    appended = _ids(lines, "A")
    acked, inflight = _acks(lines, 0)
    assert inflight is not None, "the kill point lies inside an ack"
    log = _check(d, appended, acked, inflight)
    # The cursor was on flash before the cut: the batch is gone for good.
    assert log.acked == inflight
    assert [i for i, _ in log.peek(100000)] == [i for i in appended if i > inflight]
    log.close()
    lines = _run_and_kill(d, seed=8, lines_before_kill=100)
    new = _ids(lines, "A")
    assert new and new[0] == appended[-1] + 1
    _check(d, appended + new, *_acks(lines, inflight)).close()
