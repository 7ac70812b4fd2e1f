"""Event log and alarm API (events_api.py) over HTTP, and dispatch states in the log whoever changed them."""
from __future__ import annotations

import time

from test_console_http import Client
from dispatch_support import location
from support.waiting import first_from

DISP = {"user": "disp", "role": "dispatcher", "csrf": "x", "token": "t"}


def wait_until(fn, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.1)


def test_log_and_alarm_api_needs_a_login_and_checks_its_input(console, publisher):
    c = Client(console.url)
    assert c.req("GET", "/api/eventlog")[0] == 401
    assert c.req("GET", "/api/alarms")[0] == 401
    assert c.req("POST", "/api/alarms/ack", {"id": 1})[0] == 401
    assert c.login("view", "view-pass-123") == 200
    for bad in ("limit=x", "from=yesterday", "before=1.5", "to=nan", "from=inf"):
        st, body = c.req("GET", "/api/eventlog?" + bad)
        assert st == 400, (bad, st, body)
    publisher.send("re/trk-a/status", "online", retain=True)
    publisher.send("re/trk-a/status", "offline", retain=True)
    st, body = wait_until(lambda: (r := c.req("GET", "/api/alarms")) and r[1]["alarms"] and r)
    assert st == 200 and body["alarms"][0]["type"] == "offline" and body["types"]["offline"] == "Device offline"
    aid = body["alarms"][0]["id"]
    st, body = c.req("GET", "/api/eventlog?type=offline&acked=no&limit=10")
    assert st == 200 and [e["id"] for e in body["events"]] == [aid] and body["total"] == 1

    d = Client(console.url)
    assert d.login("disp", "disp-pass-123") == 200
    assert d.req("POST", "/api/alarms/ack", {"id": aid}, csrf=False)[0] == 403
    assert d.req("POST", "/api/alarms/ack", {"id": "1"})[0] == 400
    assert d.req("POST", "/api/alarms/ack", {"id": 99999})[0] == 404
    st, row = d.req("POST", "/api/alarms/ack", {"id": aid, "note": "link checked"})
    assert st == 200 and row["acked_by"] == "disp"
    st, again = d.req("POST", "/api/alarms/ack", {"id": aid})
    assert st == 200 and again["acked_at"] == row["acked_at"]  # the first acknowledgement stands
    ack_rows = [e for e in c.req("GET", "/api/eventlog?type=offline")[1]["events"] if e["phase"] == "ack"]
    assert len(ack_rows) == 1 and "link checked" in ack_rows[0]["text"]

    # a burst acknowledged in one request: each alarm audited; never an SOS; input checked
    for dev in ("trk-b", "trk-c"):
        publisher.send(f"re/{dev}/status", "online", retain=True)
        publisher.send(f"re/{dev}/status", "offline", retain=True)
    publisher.send("re/trk-d/event", {"seq": 1, "ts": time.time(), "type": "sos", "id": 3, "since": time.time(),
                                      "duty": "patrol", "lat": 30.3, "lon": 120.0})
    st, body = wait_until(lambda: (r := c.req("GET", "/api/alarms")) and len(
        [a for a in r[1]["alarms"] if not a["acked_at"]]) >= 3 and r)
    burst = [a["id"] for a in body["alarms"] if a["type"] == "offline" and not a["acked_at"]]
    sos = [a["id"] for a in body["alarms"] if a["type"] == "sos"]
    assert len(burst) == 2 and len(sos) == 1
    assert c.req("POST", "/api/alarms/ack", {"ids": burst})[0] == 403  # a viewer
    for bad in ([], ["1"], [True], list(range(1, 1002)), "1,2"):
        assert d.req("POST", "/api/alarms/ack", {"ids": bad})[0] == 400, bad
    assert d.req("POST", "/api/alarms/ack", {"ids": burst + sos})[0] == 400
    st, out = d.req("POST", "/api/alarms/ack", {"ids": burst, "note": "section power cut"})
    assert st == 200 and sorted(a["id"] for a in out["alarms"]) == sorted(burst)
    assert all(a["acked_by"] == "disp" for a in out["alarms"])
    audited = [a for a in console.store.audit() if a["action"] == "alarm_ack" and a["result"] == "ok"]
    assert len(audited) == 3  # the single one above and each of the burst
    assert not [a for a in d.req("GET", "/api/alarms")[1]["alarms"] if a["type"] == "sos" and a["acked_at"]]


def test_dispatch_states_are_logged_from_console_and_device(console, publisher):
    con = console.console
    bus = con.bus.subscribe()
    publisher.send("owntracks/roadedge/trk-b", location(1, 30.3050, 120.0080, time.time()))
    first_from(bus, lambda e: e[0] == "devices" and any(d["id"] == "trk-b" for d in e[1]), 10)
    inc = con.create_incident(DISP, 30.3050, 120.0010, 2, "breakdown")
    d = con.dispatch(DISP, inc["id"], "trk-b")
    log = console.events.log
    texts = lambda: [e["text"] for e in log.query(type_="dispatch", limit=50)["events"]]  # noqa: E731
    wait_until(lambda: any(f"dispatch #{d['id']}: trk-b to incident {inc['id']} sent" in t for t in texts()))
    publisher.send("re/trk-b/ack", {"seq": 1, "ts": time.time(), "cmd": "dispatch", "ctr": d["ctr"], "ok": True,
                                    "code": "ok"})
    wait_until(lambda: any("delivered to the unit (was sent)" in t for t in texts()))
    publisher.send("re/trk-b/event", {"seq": 2, "ts": time.time(), "type": "dispatch_accept",
                                      "incident": str(inc["id"]), "prio": 2})
    wait_until(lambda: any("accepted by the rider (was delivered)" in t for t in texts()))
    con.close_incident(DISP, inc["id"], "towed away")
    wait_until(lambda: any("cleared (was " in t for t in texts()))
    rows = log.query(type_="dispatch", limit=50)["events"]
    assert all(r["device"] == "trk-b" and r["detail"]["incident"] == inc["id"] for r in rows)
    assert len(rows) == 4  # one line per state, never repeated


def test_the_log_exports_as_csv_with_the_filters(console, publisher):
    import csv
    import io

    publisher.send("re/trk-a/status", "online", retain=True)
    publisher.send("re/trk-a/status", "offline", retain=True)
    c = Client(console.url)
    assert c.login("view", "view-pass-123") == 200
    wait_until(lambda: console.events.log.query(type_="offline")["total"] >= 1)
    st, raw = c.req("GET", "/api/eventlog?format=csv&type=offline")
    assert st == 200
    rows = list(csv.DictReader(io.StringIO(raw.decode())))
    assert [(r["device"], r["type"], r["phase"]) for r in rows] == [("trk-a", "offline", "raise")]
    assert rows[0]["time_utc"] and "went offline" in rows[0]["text"]
    # a cell a spreadsheet would run as a formula is kept as text
    from host_tools.dispatch.events_api import to_csv

    cells = next(csv.reader(io.StringIO(to_csv([{"text": "=HYPERLINK(1)", "device": "@x", "at": None}])
                                        .splitlines()[1])))
    assert "'=HYPERLINK(1)" in cells and "'@x" in cells
