"""RecordLog against a reference model: random appends, peeks, acks and
reopens (with and without overflow) must keep ids rising, payloads intact,
order kept and every record accounted for as pending, acked or dropped."""
from __future__ import annotations

import random
from pathlib import Path

import pytest



from roadedge.core.store import RecordLog  # noqa: E402


def _payload(i: int) -> bytes:
    return i.to_bytes(4, "little") + bytes((i * 7 + k) & 0xFF for k in range(i % 53))


@pytest.mark.parametrize("seed,seg_bytes,max_segs", [(1, 400, 64), (2, 256, 3), (3, 400, 2), (4, 120, 5)])
def test_random_operations_match_model(tmp_path: Path, seed: int, seg_bytes: int, max_segs: int) -> None:
    rnd = random.Random(seed)
    d = str(tmp_path / "rl")
    log = RecordLog(d, seg_bytes=seg_bytes, max_segs=max_segs)
    appended = acked_count = 0
    last_id = 0
    for _ in range(2000):
        op = rnd.random()
        if op < 0.55:
            rid = log.next_id
            assert log.append(_payload(rid)) == rid
            assert rid > last_id
            last_id = rid
            appended += 1
        elif op < 0.75:
            got = log.peek(rnd.randint(1, 30))
            ids = [i for i, _ in got]
            assert ids == sorted(ids) and len(set(ids)) == len(ids)
            for i, data in got:
                assert data == _payload(i)
        elif op < 0.93:
            pending = [i for i, _ in log.peek(100000)]
            if pending:
                upto = rnd.choice(pending + [pending[-1] + 5])
                acked_count += sum(1 for i in pending if i <= upto)
                log.ack(upto)
                assert not log.peek(1) or log.peek(1)[0][0] > upto
        else:
            before = log.peek(100000)
            dropped = log.dropped
            log.close()
            log = RecordLog(d, seg_bytes=seg_bytes, max_segs=max_segs)
            assert log.peek(100000) == before
            assert log.dropped == dropped and log.corrupt == 0
        assert len(log) + log.dropped + acked_count == appended
        assert log.segments() <= max_segs
    if max_segs == 64:
        assert log.dropped == 0
    else:
        assert log.dropped > 0
