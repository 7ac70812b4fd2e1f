# Store and forward under both runtimes: oldest first, deleted only after the
# link confirms, nothing lost across a reopen (reboot), live vs catch-up.
import json

import fwtest
from roadedge.core.store import RecordLog
from roadedge.tracker import forward, record


class Link:
    def __init__(self):
        self.up = True
        self.sent = []
        self.ok = True

    def connected(self):
        return self.up

    def publish(self, payload):
        self.sent.append(json.loads(payload))
        return True

    async def confirm(self):
        return self.ok


def _rep(seq):
    return record.Report(seq=seq, tst=1795000000 + seq, lat=1, lon=2, hdop=100, sats=7, fix=3)


async def test_offline_then_catch_up_then_live():
    d = fwtest.tmpdir("fwd")
    seg, n = forward.store_geometry(100, 1024)
    st = RecordLog(d, seg, n)
    f = forward.Forwarder(st, "IC", 4)
    link = Link()
    for s in range(1, 11):
        f.add(_rep(s), False)
    st.close()
    st = RecordLog(d, seg, n)  # reboot: everything still there
    f = forward.Forwarder(st, "IC", 4)
    assert f.backlog() == 10
    link.ok = False  # no PUBACK: nothing is deleted
    assert await f.pump_once(link, 1795000100) == 0 and f.backlog() == 10
    link.ok = True
    link.sent = []
    while f.backlog():
        await f.pump_once(link, 1795000100)
    assert [m["seq"] for m in link.sent] == list(range(1, 11))
    assert all(m["live"] is False and m["created_at"] == 1795000100 for m in link.sent)
    assert await f.pump_once(link) == 0  # drained: from now on reports are live
    f.add(_rep(11), True)
    await f.pump_once(link)
    assert link.sent[-1]["seq"] == 11 and link.sent[-1]["live"] is True
    assert f.sent == 11 and len(st) == 0


def test_geometry_covers_capacity():
    for recs, seg in ((100, 1024), (12000, 16384), (10, 512)):
        b, n = forward.store_geometry(recs, seg)
        assert (n - 1) * (b // (record.SIZE + 8)) >= recs
