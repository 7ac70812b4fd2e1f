"""The incident lifecycle at the desk (issue 15) against a real Mosquitto: the form's fields, units sent ->
delivered -> accepted -> en route (ETA) -> on scene -> cleared as the tracker reports them, busy / SOS /
offline units never offered, close with a summary; every step in the timeline and every action audited."""
from __future__ import annotations

import json
import time

import pytest

from dispatch_support import location
from host_tools.dispatch.console import Refused
from support.waiting import first_from

from roadedge.core.auth import CommandAuth

DISP = {"user": "disp", "role": "dispatcher"}
VIEW = {"user": "view", "role": "viewer"}
SCENE = (30.3050, 120.0010)  # west end of the U's north arm (tests/dispatch/dispatch_support.py)


def body_of(keyring, dev, cmd, payload, tmp_path) -> dict:
    code, body = CommandAuth(keyring.command_key(dev), dev, str(tmp_path / f"{dev}-{cmd}.json")).check(
        cmd, payload, time.time())
    assert code == "ok", code
    return body


def offered(c, iid) -> list[str]:
    return [r["unit"] for r in c.rank(DISP, iid)]


def test_lifecycle_from_form_to_summary(console, publisher, collector_factory, mosquitto, keyring, tmp_path):
    c = console.console
    cmds = collector_factory(mosquitto.port, ["re/+/cmd/#"])
    bus = c.bus.subscribe()
    now = time.time()
    publisher.send("owntracks/roadedge/trk-a", location(1, 30.3000, 120.0010, now))
    publisher.send("owntracks/roadedge/trk-b", location(1, 30.3050, 120.0080, now, cog=270))
    publisher.send("owntracks/roadedge/trk-c", location(1, 30.3050, 120.0060, now))
    first_from(bus, lambda e: e[0] == "devices" and any(d["id"] == "trk-c" for d in e[1]), 10)

    with pytest.raises(Refused) as no:
        c.create_incident(DISP, *SCENE, 1, "x", type="volcano")
    assert no.value.status == 400
    with pytest.raises(Refused):
        c.create_incident(DISP, *SCENE, 1, "x", lanes=["lane_9"])
    with pytest.raises(Refused) as no:
        c.create_incident(VIEW, *SCENE, 1, "x")
    assert no.value.status == 403
    inc = c.create_incident(DISP, *SCENE, 1, "two cars, fog", type="collision", lanes=["lane_2", "lane_1"],
                            direction="increasing_km")
    iid = inc["id"]
    assert (inc["type"], inc["lanes"], inc["direction"], inc["source"], inc["status"]) == \
        ("collision", ["lane_1", "lane_2"], "increasing_km", "map", "open")

    # trk-c in SOS is never offered, nor sent
    publisher.send("re/trk-c/event", {"seq": 5, "ts": time.time(), "type": "sos", "id": 1, "lat": 30.3050,
                                      "lon": 120.0060})
    first_from(bus, lambda e: e[0] == "sos" and any(s["device"] == "trk-c" for s in e[1]), 10)
    assert offered(c, iid) == ["trk-b", "trk-a"]
    with pytest.raises(Refused) as no:
        c.dispatch(DISP, iid, "trk-c")
    assert no.value.status == 409 and "SOS" in str(no.value)

    d = c.dispatch(DISP, iid, "trk-b")
    assert d["status"] == "sent"
    _t, payload, *_ = cmds.wait_for(lambda t, *_: t == "re/trk-b/cmd/dispatch", timeout=5)
    args = body_of(keyring, "trk-b", "dispatch", payload, tmp_path)["args"]
    assert args["text"] == "collision: two cars, fog" and args["prio"] == 1
    ctr = json.loads(json.loads(payload)["body"])["ctr"]
    # busy: not offered, not sent twice; its status everywhere follows the dispatch
    assert offered(c, iid) == ["trk-a"]
    with pytest.raises(Refused) as no:
        c.dispatch(DISP, iid, "trk-b")
    assert no.value.status == 409 and "busy" in str(no.value)
    unit = next(u for u in c.snapshot()["units"] if u["id"] == "trk-b")
    assert unit["unit_status"] == "sent" and unit["assignment"]["incident"] == iid

    def step(status: str) -> dict:
        _k, dd = first_from(bus, lambda e: e[0] == "dispatch" and e[1]["unit"] == "trk-b" and e[1]["status"] == status,
                            10)
        return dd

    publisher.send("re/trk-b/ack", {"seq": 51, "ts": time.time(), "cmd": "dispatch", "ctr": ctr, "ok": True,
                                    "code": "ok"})
    step("delivered")
    publisher.send("re/trk-b/event", {"seq": 52, "ts": time.time(), "type": "dispatch_accept",
                                      "incident": str(iid), "prio": 1})
    step("accepted")
    publisher.send("owntracks/roadedge/trk-b", location(2, 30.3050, 120.0060, time.time() + 1, cog=270))
    moving = step("en_route")
    assert 20 < moving["eta_s"] < 60  # ~480 m at 80 km/h
    publisher.send("owntracks/roadedge/trk-b", location(3, 30.3050, 120.0040, time.time() + 2, cog=270))
    closer = first_from(bus, lambda e: e[0] == "dispatch" and e[1]["unit"] == "trk-b" and
                        e[1]["eta_s"] is not None and e[1]["eta_s"] < moving["eta_s"], 10)[1]
    assert closer["status"] == "en_route"  # the ETA is live
    # the tracker's own arrival report (firmware Duty.on_fix)
    publisher.send("re/trk-b/event", {"seq": 53, "ts": time.time(), "type": "duty", "status": "on_scene",
                                      "incident": str(iid)})
    step("on_scene")
    assert next(u for u in c.snapshot()["units"] if u["id"] == "trk-b")["unit_status"] == "on_scene"
    assert offered(c, iid) == ["trk-a"]

    publisher.send("re/trk-b/event", {"seq": 52, "ts": time.time(), "type": "dispatch_accept", "incident": str(iid),
                                      "prio": 1})  # a redelivery changes nothing
    c.desk.note(DISP, iid, "lane 1 reopened")
    with pytest.raises(Refused) as no:
        c.close_incident(DISP, iid, "  ")
    assert no.value.status == 400
    done = c.close_incident(DISP, iid, "two cars, no injuries; towed; all lanes open 10:40")
    assert done["released"] == ["trk-b"] and done["incident"]["summary"].startswith("two cars")
    _t, payload, *_ = cmds.wait_for(lambda t, pl, *_: t == "re/trk-b/cmd/dispatch" and
                                    body_of(keyring, "trk-b", "dispatch", pl, tmp_path / "close")["args"].get(
                                        "action") == "close", timeout=5)
    assert offered(c, iid) == ["trk-b", "trk-a"]  # free again
    with pytest.raises(Refused) as no:
        c.dispatch(DISP, iid, "trk-a")
    assert no.value.status == 409  # closed

    tl = c.desk.timeline(iid)
    steps = [(r["what"], r["who"]) for r in tl]
    assert steps == [("created", "disp"), ("sent", "disp"), ("delivered", "trk-b"), ("accepted", "trk-b"),
                     ("en_route", "trk-b"), ("on_scene", "trk-b"), ("note", "disp"), ("cleared", "disp"),
                     ("closed", "disp")], steps
    assert all(a["at"] <= b["at"] for a, b in zip(tl, tl[1:]))
    audit = [(a["user"], a["action"], a["result"]) for a in console.store.audit(100)]
    for want in [("disp", "incident_create", "ok"), ("view", "incident_create", "refused: role viewer may not "
                 "incident_create"), ("disp", "incident_create", "refused: bad type"), ("disp", "dispatch", "sent"),
                 ("disp", "dispatch", "refused: busy (sent)"), ("disp", "dispatch", "refused: in SOS"),
                 ("disp", "incident_note", "ok"), ("disp", "incident_close", "refused: no text"),
                 ("disp", "dispatch_clear", "sent"), ("disp", "incident_close", "ok")]:
        assert want in audit, want


def test_offline_and_off_duty_units_are_not_offered_and_a_recall_frees_a_unit(console, publisher):
    c = console.console
    bus = c.bus.subscribe()
    now = time.time()
    for u, lon in (("trk-a", 120.0030), ("trk-b", 120.0080), ("trk-c", 120.0060)):
        publisher.send(f"owntracks/roadedge/{u}", location(1, 30.3050, lon, now))
    publisher.send("re/trk-a/status", "offline", retain=True)
    publisher.send("re/trk-c/state", {"duty": "off_duty", "sos": {"latched": False}}, retain=True)
    heard: dict[str, dict] = {}

    def both_heard(e) -> bool:
        heard.update({d["id"]: d for d in (e[1] if e[0] == "devices" else [])})
        return (heard.get("trk-a") or {}).get("status") == "offline" and bool((heard.get("trk-c") or {}).get("state"))

    first_from(bus, both_heard, 10)
    inc = c.create_incident(DISP, *SCENE, 2, "debris", type="debris", source="alarm:F1")
    assert inc["source"] == "alarm:F1"
    assert offered(c, inc["id"]) == ["trk-b"]
    units = {u["id"]: u["unit_status"] for u in c.snapshot()["units"]}
    assert units == {"trk-a": "offline", "trk-b": "patrol", "trk-c": "off_duty"}
    d = c.dispatch(DISP, inc["id"], "trk-b")
    assert offered(c, inc["id"]) == []
    with pytest.raises(Refused):
        c.desk.end_dispatch(VIEW, d["id"], "cancel")
    out = c.desk.end_dispatch(DISP, d["id"], "cancel")
    assert out["status"] == "cancelled" and offered(c, inc["id"]) == ["trk-b"]
    with pytest.raises(Refused) as no:
        c.desk.end_dispatch(DISP, d["id"], "clear")
    assert no.value.status == 409
    assert [r["what"] for r in c.desk.timeline(inc["id"])] == ["created", "sent", "cancelled"]


def test_incident_routes_need_a_session_the_token_and_the_role(console):
    from test_console_http import Client

    anon, d, v = Client(console.url), Client(console.url), Client(console.url)
    assert d.login("disp", "disp-pass-123") == 200 and v.login("view", "view-pass-123") == 200
    st, inc = d.req("POST", "/api/incidents", {"lat": SCENE[0], "lon": SCENE[1], "priority": 2, "text": "debris",
                                               "type": "debris", "lanes": ["shoulder"], "direction": "both"})
    assert st == 200 and inc["lanes"] == ["shoulder"]
    iid = inc["id"]
    assert d.req("POST", "/api/incidents", {"lat": 30.3, "lon": 120.0, "lanes": "all"})[0] == 400
    assert anon.req("GET", f"/api/incidents/{iid}")[0] == 401
    st, det = v.req("GET", f"/api/incidents/{iid}")  # a viewer may read it
    assert st == 200 and [r["what"] for r in det["timeline"]] == ["created"] and det["dispatches"] == []
    assert d.req("GET", "/api/incidents/999")[0] == 404
    assert d.req("POST", f"/api/incidents/{iid}/note", {"text": "x"}, csrf=False)[0] == 403
    assert v.req("POST", f"/api/incidents/{iid}/note", {"text": "x"})[0] == 403
    assert v.req("POST", f"/api/incidents/{iid}/close", {"summary": "x"})[0] == 403
    assert d.req("POST", f"/api/incidents/{iid}/close", {})[0] == 400  # no summary
    assert d.req("POST", "/api/dispatch/999/clear")[0] == 404
    assert d.req("POST", f"/api/incidents/{iid}/note", {"text": "shoulder clear"})[0] == 200
    st, out = d.req("POST", f"/api/incidents/{iid}/close", {"summary": "swept"})
    assert st == 200 and out["incident"]["status"] == "closed" and out["incident"]["closed_by"] == "disp"
    assert d.req("POST", f"/api/incidents/{iid}/note", {"text": "late"})[0] == 409
    st, det = d.req("GET", f"/api/incidents/{iid}")
    assert [r["what"] for r in det["timeline"]] == ["created", "note", "closed"]
    assert det["timeline"][-1]["detail"]["summary"] == "swept"


def test_a_database_from_before_the_lifecycle_gains_its_columns(tmp_path):
    import sqlite3

    from host_tools.dispatch import incidents
    from host_tools.dispatch.store import Store

    db = tmp_path / "old.db"
    con = sqlite3.connect(db)  # the tables as they were (store.SCHEMA before issue 15)
    con.executescript("CREATE TABLE incidents(id INTEGER PRIMARY KEY, created REAL, by TEXT, lat REAL, lon REAL, "
                      "priority INTEGER, text TEXT, status TEXT DEFAULT 'open');"
                      "CREATE TABLE dispatches(id INTEGER PRIMARY KEY, incident INTEGER, unit TEXT, by TEXT, sent REAL, "
                      "ctr INTEGER, status TEXT, delivered REAL, accepted REAL, on_scene REAL, detail TEXT);"
                      "INSERT INTO incidents(created,by,lat,lon,priority,text) VALUES(1,'old',30.3,120.0,2,'kept');")
    con.commit()
    con.close()
    store = Store(db)
    incidents.migrate(store)
    incidents.migrate(store)  # again: nothing to add, no error
    row = store.incident(1)
    assert row["text"] == "kept" and row["summary"] is None and "lanes" in row
    assert {"en_route", "eta_s", "cleared"} <= {r[1] for r in store.db.execute("PRAGMA table_info(dispatches)")}


def test_two_desks_sending_one_unit_at_once_send_it_once(console, publisher):
    from concurrent.futures import ThreadPoolExecutor

    c = console.console
    bus = c.bus.subscribe()
    publisher.send("owntracks/roadedge/trk-b", location(1, 30.3050, 120.0080, time.time()))
    first_from(bus, lambda e: e[0] == "devices" and any(d["id"] == "trk-b" for d in e[1]), 10)
    a = c.create_incident(DISP, *SCENE, 1, "one")["id"]
    b = c.create_incident({"user": "sup", "role": "supervisor"}, 30.3000, 120.0100, 2, "two")["id"]

    def send(iid):
        try:
            return c.dispatch(DISP, iid, "trk-b")["status"]
        except Refused as e:
            return e.status

    with ThreadPoolExecutor(2) as ex:
        got = sorted(map(str, ex.map(send, [a, b])))
    assert got == ["409", "sent"], got
    assert len([d for d in c.store.dispatches() if d["unit"] == "trk-b"]) == 1


def test_a_tracker_that_acks_at_once_is_delivered_after_it_was_sent(console, publisher):
    """The timeline has the dispatch sent before delivered even when the tracker's ack is in before the desk has
    finished sending (it works out the ETA after the command went out)."""
    c = console.console
    bus = c.bus.subscribe()
    publisher.send("owntracks/roadedge/trk-b", location(1, 30.3050, 120.0080, time.time()))
    first_from(bus, lambda e: e[0] == "devices" and any(d["id"] == "trk-b" for d in e[1]), 10)
    iid = c.create_incident(DISP, *SCENE, 1, "ack at once")["id"]
    eta = c.desk._eta

    def eta_while_the_ack_arrives(inc, unit):
        ctr = next(d for d in c.store.dispatches() if d["unit"] == "trk-b")["ctr"]
        publisher.send("re/trk-b/ack", {"seq": 60, "ts": time.time(), "cmd": "dispatch", "ctr": ctr, "ok": True,
                                        "code": "ok"})
        first_from(bus, lambda e: e[0] == "timeline" and e[1].get("what") == "delivered", 10)  # logged
        return eta(inc, unit)

    c.desk._eta = eta_while_the_ack_arrives
    try:
        c.dispatch(DISP, iid, "trk-b")
    finally:
        c.desk._eta = eta
    assert [e["what"] for e in c.desk.timeline(iid)] == ["created", "sent", "delivered"]
