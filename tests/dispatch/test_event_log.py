"""The event log (host_tools/dispatch/events.py, device_events.py): written in the ingest transaction,
once per stored message, with filters and pages; alarms acknowledged with who and when."""
from __future__ import annotations

import json
import time

from host_tools.dispatch.decode import decode
from host_tools.dispatch.device_events import derive
from host_tools.dispatch.events import EventLog, IngestEvents
from host_tools.dispatch.ingest import Ingest
from host_tools.dispatch.store import Store


def setup(tmp_path):
    store = Store(tmp_path / "d.db")
    log = EventLog(store)
    seen: list = []
    log.listeners.append(lambda kind, row: seen.append((kind, row["type"], row["phase"])))
    store.observers.append(IngestEvents(log, {"vsl-1": "sign"}))
    ingest = Ingest(store, "mqtt://127.0.0.1:1")  # not started: process() is the writer's step
    return store, log, ingest, seen


def msg(topic, body):
    return (topic, body if isinstance(body, bytes) else json.dumps(body).encode(), time.time())


def test_device_messages_become_log_lines_and_alarms(tmp_path):
    store, log, ingest, seen = setup(tmp_path)
    ingest.process([msg("re/trk-1/status", b"online"), msg("re/vsl-1/state", {"limit": 80, "source": "central"})])
    ingest.process([msg("re/trk-1/status", b"offline"),
                    msg("re/vsl-1/state", {"limit": None, "source": "powerRecovery", "comm": "lost"})])
    ev = log.query()["events"]
    texts = [e["text"] for e in ev]
    assert any("vsl-1 shows blank (was 80 km/h): fail-safe message after a power cut" in t for t in texts), texts
    assert any("vsl-1 shows 80 km/h: set by the zone controller" in t for t in texts), texts
    alarms = {a["type"]: a for a in log.alarms()}
    assert set(alarms) == {"offline", "sign_comm_lost"}
    assert alarms["offline"]["device"] == "trk-1" and alarms["offline"]["severity"] == "warning"
    # back online: the alarm is cleared (and stays listed until acknowledged)
    ingest.process([msg("re/trk-1/status", b"online")])
    off = log.rows([alarms["offline"]["id"]])[0]
    assert off["cleared_at"] is not None and off["acked_at"] is None
    assert any(e["phase"] == "clear" and e["ref"] == off["id"] for e in log.query(type_="offline")["events"])
    acked = log.acknowledge(off["id"], "disp", "checked")
    assert acked and acked["acked_by"] == "disp" and acked["acked_at"] is not None
    assert [a["type"] for a in log.alarms()] == ["sign_comm_lost"]
    assert ("event", "offline", "raise") in seen and ("update", "offline", "raise") in seen


def test_a_redelivered_message_is_logged_once(tmp_path):
    store, log, ingest, _ = setup(tmp_path)
    sos = msg("re/trk-1/event", {"seq": 5, "ts": time.time(), "type": "sos", "id": 3, "lat": 30.3, "lon": 120.0})
    ingest.process([sos])
    ingest.process([sos, sos])
    rows = log.query(type_="sos")["events"]
    assert len(rows) == 1 and rows[0]["count"] == 1 and rows[0]["severity"] == "critical"
    assert "SOS from trk-1 at 30.30000, 120.00000" in rows[0]["text"]
    # the same SOS re-sent after a reconnect (new seq, same id): one alarm, counted, acknowledgement undone
    log.acknowledge(rows[0]["id"], "disp")
    ingest.process([msg("re/trk-1/event", {"seq": 6, "ts": time.time(), "type": "sos", "id": 3})])
    a = log.rows([rows[0]["id"]])[0]
    assert a["count"] == 2 and a["acked_at"] is None
    # the tracker confirms it got the acknowledgement: cleared
    ingest.process([msg("re/trk-1/event", {"seq": 7, "ts": time.time(), "type": "sos_ack", "id": 3, "by": "disp"})])
    assert log.rows([rows[0]["id"]])[0]["cleared_at"] is not None


def test_rejects_are_summed_per_reason_not_one_line_each(tmp_path):
    store, log, ingest, _ = setup(tmp_path)
    for _ in range(3):
        ingest.process([msg("owntracks/roadedge/t", b"{bad"), msg("owntracks/roadedge/t", b"[1]"),
                        msg("owntracks/roadedge/t", b"{bad")])
    rows = log.query(type_="ingest_reject")["events"]
    assert {r["key"]: r["count"] for r in rows} == {"bad_json": 6, "not_object": 3}
    assert "rejected 6 message(s): bad_json" in next(r["text"] for r in rows if r["key"] == "bad_json")


def test_filters_and_pages(tmp_path):
    store, log, ingest, _ = setup(tmp_path)
    for i in range(30):
        ingest.process([msg(f"re/d{i % 3}/status", b"offline"), msg(f"re/d{i % 3}/status", b"online")])
    all_ = log.query(limit=1000)
    assert all_["total"] == 60 and all_["next"] is None
    p1 = log.query(limit=25)
    p2 = log.query(limit=25, before=p1["next"])
    p3 = log.query(limit=25, before=p2["next"])
    ids = [e["id"] for p in (p1, p2, p3) for e in p["events"]]
    assert len(ids) == 60 == len(set(ids)) and ids == sorted(ids, reverse=True) and p3["next"] is None
    assert {e["device"] for e in log.query(device="d1", limit=500)["events"]} == {"d1"}
    assert log.query(device="d1")["total"] == 20
    unacked = log.query(acked=False, limit=500)["events"]
    assert len(unacked) == 30 and all(e["phase"] == "raise" for e in unacked)
    log.acknowledge(unacked[0]["id"], "sup")
    assert log.query(acked=True)["total"] == 1 and log.query(acked=False)["total"] == 29
    assert log.query(severity="warning")["total"] == 30
    t = log.rows([unacked[-1]["id"]])[0]["at"]
    assert log.query(t_to=t - 1)["total"] == 0 and log.query(t_from=t)["total"] == 61  # + the acknowledgement


def test_bad_device_data_is_never_fatal_and_still_stored(tmp_path):
    store, log, ingest, _ = setup(tmp_path)
    junk = [msg("re/vsl-1/state", {"limit": {"x": 1}, "source": ["central"], "faults": "over_temp", "comm": 3}),
            msg("re/vsl-1/state", {"limit": "x" * 5000, "legend": 7, "faults": [None, 5, "over_temp"]}),
            msg("re/trk-1/state", {"duty": ["x"], "batt": "low", "sos": 5}),
            msg("re/trk-1/state", {"duty": "patrol", "batt": 1e308}),
            msg("re/b-1/event", {"seq": 1, "type": "fault", "what": {"deep": 1}, "status": None}),
            msg("re/b-1/event", {"seq": 2, "type": "battery", "state": None, "volts": "x"}),
            msg("re/trk-1/event", {"seq": 3, "type": "sos", "id": True, "lat": "x", "lon": 1e400}),
            msg("re/trk-1/event", {"seq": 4, "type": "store_overflow", "dropped": "many"})]
    ch = ingest.process(junk)
    assert ch["stored"] == len(junk)
    rows = log.query(limit=100)["events"]
    assert any(r["type"] == "sign_fault" for r in rows)  # the one well-formed fault in the list
    assert any("position unknown" in r["text"] for r in rows if r["type"] == "sos")
    for kind, dev, body in (("state", "x", None), ("state", "x", []), ("event", "x", {"type": 5}),
                            ("status", "x", {"status": 1})):
        assert derive(kind, dev, None, None, None, body) == []


def test_low_battery_with_hysteresis_and_beacon_battery_events(tmp_path):
    store, log, ingest, _ = setup(tmp_path)
    for b in (50, 19, 15, 25, 31):
        ingest.process([msg("re/trk-1/state", {"duty": "patrol", "batt": b})])
    rows = log.query(type_="low_battery")["events"]
    assert [r["phase"] for r in reversed(rows)] == ["raise", "clear"]
    ingest.process([msg("re/b-1/event", {"seq": 1, "ts": 1, "type": "battery", "state": "cutoff", "volts": 3.1})])
    a = next(a for a in log.alarms() if a["device"] == "b-1")
    assert a["severity"] == "critical" and "3.10 V" in a["text"]


def test_decode_is_the_only_door(tmp_path):
    """The observer sees records as decode() made them: a rejected message has no device line."""
    store, log, ingest, _ = setup(tmp_path)
    ingest.process([msg("re/trk-1/status", b"maybe")])
    assert log.query(type_="offline")["total"] == 0
    assert decode("re/trk-1/status", b"offline").body == {"status": "offline"}


def test_a_worse_repeat_of_an_open_alarm_raises_its_severity_and_words(tmp_path):
    store, log, ingest, _ = setup(tmp_path)
    ingest.process([msg("re/b-1/event", {"seq": 1, "ts": 1, "type": "battery", "state": "dim", "volts": 3.5})])
    ingest.process([msg("re/b-1/event", {"seq": 2, "ts": 2, "type": "battery", "state": "cutoff", "volts": 3.2})])
    ingest.process([msg("re/b-1/event", {"seq": 3, "ts": 3, "type": "battery", "state": "dim", "volts": 3.4})])
    [a] = log.alarms()
    assert a["count"] == 3 and a["severity"] == "critical" and "3.40 V" in a["text"]
