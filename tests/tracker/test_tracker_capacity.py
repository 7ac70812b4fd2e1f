"""Store-and-forward capacity: the default tracker ring holds at least 10,000
reports inside a Pico W's 1.5 MB filesystem (record size x config), shown on
the real RecordLog."""
from __future__ import annotations


from roadedge.core.store import HDR, RecordLog  # noqa: E402
from roadedge.tracker import app, forward, record  # noqa: E402

PICO_W_FS = 1_441_792  # 1.5 MB region minus the firmware's share (rp2 littlefs: 1408 KiB)


def test_default_ring_holds_10000_reports_within_the_pico_w_budget(tmp_path):
    records, seg = app.DEFAULTS["store_records"], app.DEFAULTS["seg_bytes"]
    seg_bytes, max_segs = forward.store_geometry(records, seg)
    per_seg = seg_bytes // (record.SIZE + HDR)
    assert record.SIZE == 32 and HDR == 8
    assert (max_segs - 1) * per_seg >= records >= 10_000  # the oldest segment may be dropped whole
    assert seg_bytes * max_segs <= PICO_W_FS // 2  # half the filesystem, the rest for state and logs
    store = RecordLog(str(tmp_path / "track"), seg_bytes, max_segs)
    r = record.Report(seq=0, tst=1_795_000_000, lat=523700000, lon=48900000, hdop=90, sats=11, fix=3)
    for i in range(10_500):
        r.seq = i + 1
        store.append(r.pack())
    assert len(store) == 10_500 and store.dropped == 0
    assert store.disk_bytes() == 10_500 * (record.SIZE + HDR)
    first = store.peek(1)[0]
    assert record.unpack(first[1]).seq == 1
