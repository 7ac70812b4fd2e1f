"""Ingest: dedupe, malformed input counted (never fatal), shared-subscription workers."""
from __future__ import annotations

import json
import time

from host_tools.dispatch.decode import Reject, decode
from host_tools.dispatch.ingest import Ingest
from host_tools.dispatch.store import Store

from dispatch_support import Publisher, location

BAD = [
    ("owntracks/roadedge/trk-a", b"{not json", "bad_json"),
    ("owntracks/roadedge/trk-a", b"[1, 2]", "not_object"),
    ("owntracks/roadedge/trk-a", json.dumps({"_type": "location", "lat": "31.2", "lon": 121.0, "tst": 5}).encode(), "bad_type"),
    ("owntracks/roadedge/trk-a", json.dumps({"_type": "location", "lat": 95.0, "lon": 121.0, "tst": 5}).encode(), "out_of_range"),
    ("owntracks/roadedge/trk-a", json.dumps({"_type": "location", "lon": 121.0, "tst": 5}).encode(), "missing_field"),
    ("re/trk-a/event", json.dumps({"seq": "7", "type": "sos"}).encode(), "bad_type"),
    ("re/trk-a/event", json.dumps({"seq": 7, "type": 5}).encode(), "bad_type"),
    ("re/trk-a/tele", b"{" + b" " * 20000 + b"}", "too_large"),
    ("re/trk-a/whatever", b"{}", "unknown_topic"),
    ("owntracks/someone/phone", b"{}", "unknown_topic"),
    ("re/trk-a/state/extra/deep", b"{}", "unknown_topic"),
    ("re/trk-a/status", b"maybe", "bad_status"),
    ("re/trk-a/state", b"\xff\xfe\x00", "bad_json"),
]


def test_decoder_rejects_each_malformed_payload_with_its_reason():
    for topic, payload, reason in BAD:
        try:
            decode(topic, payload)
        except Reject as e:
            assert e.reason == reason, (topic, payload[:40], e.reason)
        else:
            raise AssertionError(f"accepted {topic} {payload[:40]!r}")
    r = decode("owntracks/roadedge/trk-a", json.dumps(location(3, 30.3, 120.0, 1000)).encode())
    assert (r.kind, r.device, r.seq) == ("location", "trk-a", 3)


def test_malformed_payloads_are_counted_and_ingest_keeps_going(mosquitto, tmp_path):
    store = Store(tmp_path / "d.db")
    ing = Ingest(store, mosquitto.url).start()
    pub = Publisher(mosquitto.port)
    try:
        n = 0
        for topic, payload, _ in BAD:
            pub.send(topic, payload)
            n += 1
        pub.send("owntracks/roadedge/trk-a", location(1, 30.3, 120.0, time.time()))
        assert ing.wait_idle(n + 1)
        counts = {k: v["count"] for k, v in store.rejects().items()}
        expected: dict[str, int] = {}
        for _t, _p, reason in BAD:
            expected[reason] = expected.get(reason, 0) + 1
        assert counts == expected
        assert ing.stats["rejected"] == len(BAD)
        assert store.devices(["trk-a"])[0]["lat"] == 30.3  # the good message after them was stored
    finally:
        pub.close()
        ing.stop()


def test_redelivered_messages_are_stored_once(mosquitto, tmp_path):
    store = Store(tmp_path / "d.db")
    ing = Ingest(store, mosquitto.url).start()
    pub = Publisher(mosquitto.port)
    try:
        now = time.time()
        for seq in (1, 2, 2, 3, 1):
            pub.send("owntracks/roadedge/trk-a", location(seq, 30.3 + seq / 1000, 120.0, now + seq))
        pub.send("re/trk-a/event", {"seq": 10, "ts": now, "type": "duty", "duty": "on"})
        pub.send("re/trk-a/event", {"seq": 10, "ts": now, "type": "duty", "duty": "on"})
        assert ing.wait_idle(7)
        assert store.counts() == {"positions": 3, "history": 1}
        assert ing.stats["dupes"] == 3
    finally:
        pub.close()
        ing.stop()


def test_two_shared_subscription_workers_store_each_message_exactly_once(mosquitto, tmp_path):
    db = tmp_path / "shared.db"
    workers = [Ingest(Store(db), mosquitto.url, shared_group="ingest").start() for _ in range(2)]
    pub = Publisher(mosquitto.port)
    try:
        n_units, n_fixes = 5, 40
        now = time.time()
        for i in range(n_fixes):
            for u in range(n_units):
                pub.c.publish(f"owntracks/roadedge/trk-{u}", json.dumps(location(i, 30.3, 120.0 + i / 1e4, now + i)), qos=1)
        pub.send("re/trk-0/event", {"seq": 1000, "ts": now, "type": "sos", "lat": 30.3, "lon": 120.0})
        total = n_units * n_fixes + 1
        deadline = time.monotonic() + 30
        while sum(w.stats["received"] for w in workers) < total and time.monotonic() < deadline:
            for w in workers:
                w.wait_idle(w.stats["received"] + 1, timeout=0.5)
        assert sum(w.stats["received"] for w in workers) == total  # the broker split, not copied
        assert all(w.stats["received"] > 0 for w in workers)  # both workers took a share
        assert Store(db).counts() == {"positions": n_units * n_fixes, "history": 1}
        assert len(Store(db).sos()) == 1
    finally:
        pub.close()
        for w in workers:
            w.stop()


def test_a_message_the_store_chokes_on_is_counted_and_the_rest_of_its_batch_kept(tmp_path, monkeypatch):
    store = Store(tmp_path / "d.db")
    real = store._apply_one

    def apply_one(c, rec, rx, ch):
        if rec.device == "trk-poison":
            raise RuntimeError("simulated store bug")
        return real(c, rec, rx, ch)

    monkeypatch.setattr(store, "_apply_one", apply_one)
    ing = Ingest(store, "mqtt://127.0.0.1:1")  # never started: process() is the writer's step
    now = time.time()
    items = [(f"owntracks/roadedge/{d}", json.dumps(location(1, 30.3, 120.0, now)).encode(), now)
             for d in ("trk-a", "trk-poison", "trk-b")]
    ing.process(items)
    assert store.counts()["positions"] == 2
    assert store.rejects()["store_error"]["count"] == 1
    assert ing.stats["received"] == 3


def test_with_a_client_id_nothing_published_while_ingest_is_down_is_lost(mosquitto, tmp_path):
    store = Store(tmp_path / "d.db")
    ing = Ingest(store, mosquitto.url, client_id="dispatch-test-1").start()
    ing.stop()
    pub = Publisher(mosquitto.port)
    try:
        now = time.time()
        for seq in range(1, 6):  # the console is down (restart, upgrade)
            pub.send("owntracks/roadedge/trk-a", location(seq, 30.3, 120.0 + seq / 1e4, now + seq))
        ing = Ingest(store, mosquitto.url, client_id="dispatch-test-1").start()
        assert ing.wait_idle(5)
        assert store.counts()["positions"] == 5
        ing.stop()
    finally:
        pub.close()


def test_shared_workers_get_retained_state_and_log_each_change_once(mosquitto, tmp_path):
    pub = Publisher(mosquitto.port)
    db = tmp_path / "shared.db"
    pub.send("re/vsl-1/state", {"limit": 80, "source": "central"}, retain=True)  # before any worker runs
    workers = [Ingest(Store(db), mosquitto.url, shared_group="ingest").start() for _ in range(2)]
    try:
        for w in workers:  # each worker receives the retained copy on its plain subscription
            assert w.wait_idle(1)
        assert Store(db).devices(["vsl-1"])[0]["state"]["limit"] == 80
        pub.send("re/vsl-1/state", {"limit": 60, "source": "central"}, retain=True)
        pub.send("owntracks/roadedge/trk-a", location(1, 30.3, 120.0, time.time()))  # a marker after it
        deadline = time.monotonic() + 10
        st = Store(db)
        while (st.counts()["positions"] < 1 or st.devices(["vsl-1"])[0]["state"]["limit"] != 60) \
                and time.monotonic() < deadline:
            for w in workers:
                w.wait_idle(w.stats["received"] + 1, timeout=0.2)
        assert Store(db).devices(["vsl-1"])[0]["state"]["limit"] == 60
        log = Store(db)._q("SELECT body FROM state_log WHERE device='vsl-1'")
        assert [json.loads(r["body"])["limit"] for r in log] == [80, 60]
    finally:
        pub.close()
        for w in workers:
            w.stop()
