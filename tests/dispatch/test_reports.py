"""Shift and section reports on known tracks (host_tools/dispatch/reports.py): the figures a
supervisor reads, and what bad or missing data does to them (nothing but counted rejections)."""
from __future__ import annotations

import calendar
import datetime as dt

import pytest
from dispatch_support import U_ROAD

from host_tools.deployment.scenario import parse
from host_tools.dispatch import reports as R
from host_tools.dispatch.reports_db import window

SC = parse(U_ROAD)
ROAD = SC.roads["U"]
SECTIONS = R.Section.from_scenario(SC)  # F1: km 0.5-1.5 of the south arm (straight, due east)
T0 = 1_764_547_200.0  # 2025-12-01 00:00 UTC
DAY = 86400.0


def at(km: float) -> tuple[float, float]:
    return ROAD.latlon_at_km(km)


def fix(t: float, km: float, vel: float | None) -> dict:
    lat, lon = at(km)
    return {"tst": T0 + t, "lat": lat, "lon": lon, "vel": vel}


def ride_a() -> list[dict]:
    """Out along the south arm at 36 km/h (100 m every 10 s) from km 0 to 1.8, stopped there
    180-790 s (fixes every minute wandering a few metres), back to km 0.8 by 880 s."""
    out = [fix(10 * i, 0.1 * i, 36.0) for i in range(18)]
    out += [fix(180 + 60 * i, 1.8 + (0.004 if i % 2 else -0.004), 0.0) for i in range(11)]  # 180..780
    out += [fix(790 + 10 * i, 1.7 - 0.1 * i, 36.0) for i in range(10)]  # 790..880
    return out


def clean(rows):
    counts: dict = {}
    return list(R.clean_track(rows, counts, SC.proj)), counts


def test_distance_stops_and_fix_counts_on_a_known_ride():
    fixes, counts = clean(ride_a())
    row = R.unit_day("trk-a", fixes, [], T0, T0 + DAY, counts)
    assert row["distance_km"] == pytest.approx(2.8, abs=0.01)  # 1.8 out + 1.0 back; the wander is not distance
    assert row["stops"] == 1 and row["stopped_s"] == 610  # first fix at rest 180 s -> moving again 790 s
    assert row["stop_list"][0]["start"] == T0 + 180 and row["stop_list"][0]["end"] == T0 + 790
    assert row["fixes"] == 39 and row["first_fix"] == T0 and row["last_fix"] == T0 + 880
    assert row["bad_fixes"] == 0 and row["jumps"] == 0 and row["duty"] is None  # no duty state: unknown, not 0


def test_a_stop_counts_from_more_than_120_s_and_a_silence_does_not_stretch_it():
    def parked(seconds: float) -> list:
        return clean([fix(0, 0.5, 40.0), fix(10, 0.6, 0.0), fix(10 + seconds, 0.6, 0.0), fix(20 + seconds, 0.7, 40)])[0]

    assert R.track_summary(parked(110), T0, T0 + DAY)["stops"] == []  # 10 -> 130 s: 120 s, not more
    assert [s.duration_s for s in R.track_summary(parked(111), T0, T0 + DAY)["stops"]] == [121]
    # at rest, then nothing for two hours (longer than the hourly stopped report): the stop is what we saw
    f = clean([fix(0, 0.6, 0.0), fix(600, 0.6, 0.0), fix(7800, 0.6, 0.0), fix(7900, 0.6, 0.0), fix(8000, 0.7, 40.0)])[0]
    assert [s.duration_s for s in R.track_summary(f, T0, T0 + DAY)["stops"]] == [600, 200]


def test_bad_fixes_and_glitches_are_left_out_and_counted():
    rows = ride_a()
    lat, lon = at(0.95)
    rows.insert(10, {"tst": T0 + 95, "lat": lat + 1.0, "lon": lon, "vel": 36.0})  # 111 km away for 5 s
    rows.insert(3, {"tst": T0 + 25, "lat": float("nan"), "lon": lon, "vel": 1.0})
    rows.insert(3, {"tst": T0 + 26, "lat": None, "lon": lon, "vel": 1.0})
    rows.insert(3, {"tst": "x", "lat": lat, "lon": lon})
    rows.insert(3, {"tst": T0 + 27, "lat": 95.0, "lon": lon, "vel": 1.0})
    rows.insert(3, {"lat": 1})
    fixes, counts = clean(rows)
    row = R.unit_day("trk-a", fixes, [], T0, T0 + DAY, counts)
    assert row["distance_km"] == pytest.approx(2.8, abs=0.01)
    assert row["bad_fixes"] == 5 and row["jumps"] == 1


def test_a_confirmed_jump_restarts_the_track_without_its_distance():
    # a catch-up after a tunnel: two fixes agree on the new place
    rows = [fix(0, 0.0, 40.0), fix(10, 0.1, 40.0), {**fix(20, 0.2, 40.0), "lat": at(0.2)[0] + 0.5},
            {**fix(30, 0.3, 40.0), "lat": at(0.3)[0] + 0.5}, {**fix(40, 0.4, 40.0), "lat": at(0.4)[0] + 0.5}]
    fixes, counts = clean(rows)
    s = R.track_summary(fixes, T0, T0 + DAY)
    assert counts["jumps"] == 1 and s["distance_m"] == pytest.approx(300, rel=0.01)  # 0->0.1, then 0.2->0.4


def test_a_ride_across_midnight_is_split_between_the_days():
    rows = clean([fix(-50, 0.0, 36.0), fix(50, 1.0, 36.0)])[0]
    assert R.track_summary(rows, T0, T0 + DAY)["distance_m"] == pytest.approx(500, rel=0.01)
    assert R.track_summary(rows, T0 - DAY, T0)["distance_m"] == pytest.approx(500, rel=0.01)


def test_duty_times_from_state_changes_offline_wins():
    changes = [(T0 - 100, "duty", "patrol"), (T0 + 500, "duty", "dispatched"), (T0 + 800, "duty", "on_scene"),
               (T0 + 1400, "link", "offline"), (T0 + 1600, "link", "online"), (T0 + 2000, "duty", "patrol"),
               (float("nan"), "duty", "off_duty"), (T0 + 2500, "duty", 7)]
    d = R.duty_times(changes, T0, T0 + 3000)
    assert d == {"patrol_s": 1000.0, "en_route_s": 300.0, "on_scene_s": 1000.0, "off_duty_s": 0.0,
                 "offline_s": 200.0, "unknown_s": 500.0}  # a duty value that is not one: unknown
    assert R.duty_times([(T0, "link", "online")], T0, T0 + 10) is None


def test_section_presence_and_longest_gap_from_two_units():
    a = clean(ride_a())[0]
    # trk-b parked inside F1 (km 1.0) reporting hourly-ish, then silent; a fix 90 min later is no evidence
    b = clean([fix(1000, 1.0, 0.0), fix(2800, 1.0, 0.0), fix(4600, 1.0, 0.0), fix(10000, 1.0, 0.0)])[0]
    per = {"trk-a": R.presence_intervals(a, SECTIONS, T0, T0 + DAY),
           "trk-b": R.presence_intervals(b, SECTIONS, T0, T0 + DAY)}
    # trk-a is within 200 m of km 0.5-1.5 from km 0.3 to 1.7: 30 -> 170 s out, 790 -> 880 s back
    assert per["trk-a"]["F1"] == [(T0 + 30, T0 + 170), (T0 + 790, T0 + 880)]
    p = R.section_presence(per, SECTIONS, T0, T0 + DAY)["F1"]
    assert p == {"presence_s": 140 + 90 + 3600, "longest_gap_s": DAY - 4600, "units_seen": ["trk-a", "trk-b"],
                 "unit_s": 230 + 3600}
    # overlapping presence is counted once
    both = R.section_presence({"x": per["trk-b"], "y": per["trk-b"]}, SECTIONS, T0, T0 + DAY)["F1"]
    assert both["presence_s"] == 3600 and both["unit_s"] == 7200


def test_response_times_per_incident_and_section():
    inc = [{"id": 1, "created": T0 + 100, "lat": at(1.0)[0], "lon": at(1.0)[1], "priority": 1, "text": "crash"},
           {"id": 2, "created": T0 + 200, "lat": 30.305, "lon": 120.004, "priority": 3, "text": "north arm"},
           {"id": 3, "created": T0 + 300, "lat": at(0.6)[0], "lon": at(0.6)[1], "priority": 2, "text": "bad clock"},
           {"id": 4, "created": None, "lat": None, "lon": "x", "priority": None, "text": None}]
    disp = [{"incident": 1, "unit": "trk-b", "sent": T0 + 130, "accepted": T0 + 150, "on_scene": T0 + 400},
            {"incident": 1, "unit": "trk-a", "sent": T0 + 140, "accepted": None, "on_scene": None},
            {"incident": 2, "unit": "trk-a", "sent": T0 + 260, "accepted": T0 + 270, "on_scene": None},
            {"incident": 3, "unit": "trk-a", "sent": T0 + 250, "accepted": "x", "on_scene": T0 + 290}]
    rows = [R.incident_response(i, disp, SECTIONS) for i in inc]
    r1, r2, r3, r4 = rows
    assert (r1["section"], r1["to_dispatch_s"], r1["to_accept_s"], r1["response_s"]) == ("F1", 30, 50, 300)
    assert r1["units"] == ["trk-a", "trk-b"]
    assert (r2["section"], r2["to_dispatch_s"], r2["response_s"]) == (None, 60, None)  # 555 m off: no section
    assert (r3["section"], r3["to_dispatch_s"], r3["to_accept_s"], r3["response_s"]) == ("F1", None, None, None)
    assert r4["section"] is None and r4["response_s"] is None
    sec = R.section_rows(SECTIONS, {}, rows, T0, T0 + DAY)[0]
    assert (sec["incidents"], sec["reached"], sec["median_response_s"], sec["max_response_s"]) == (2, 1, 300, 300)
    assert sec["presence_s"] == 0 and sec["longest_gap_s"] == DAY and sec["presence_pct"] == 0


def test_report_window_is_the_local_calendar_day_and_never_the_future():
    t0, t1, until = window("2025-12-01", 1, 480, now=T0 + 10 * 3600)
    assert t0 == calendar.timegm(dt.date(2025, 12, 1).timetuple()) - 8 * 3600 and t1 == t0 + DAY
    assert until == T0 + 10 * 3600
    for bad in (("2025-13-01", 1, 0), ("x", 1, 0), ("2025-12-01", 0, 0), ("2025-12-01", 32, 0),
                ("2025-12-01", 1, 900)):
        with pytest.raises(ValueError):
            window(*bad)


def test_csv_cells_cannot_run_as_formulas():
    from host_tools.dispatch.export import to_csv

    text = to_csv(["a", "b", "c"], [{"a": "=HYPERLINK(\"http://x\")", "b": -3.5, "c": "+1"},
                                    {"a": "@SUM(A1)", "b": None, "c": "plain, \"quoted\"\nline"}])
    assert text.startswith("\ufeff")
    import csv
    import io

    rows = list(csv.reader(io.StringIO(text[1:])))
    assert rows[1] == ["'=HYPERLINK(\"http://x\")", "-3.5", "'+1"]
    assert rows[2] == ["'@SUM(A1)", "", "plain, \"quoted\"\nline"]


def test_report_and_csv_over_http_from_the_store(console, publisher):
    """Through the console: the stored fixes of a known ride, a dispatch's response time, the CSV with
    a safe file name and cells."""
    import csv
    import io
    import time
    import urllib.request

    from dispatch_support import location
    from test_console_http import Client

    now = time.time()
    midnight = now - now % DAY
    t0 = now - 600 if now - midnight > 700 else midnight - 700  # the ride within one UTC day
    for i in range(11):  # km 0 -> 1.0 at 36 km/h
        lat, lon = at(0.1 * i)
        publisher.send("owntracks/roadedge/trk-a", location(i + 1, lat, lon, t0 + 10 * i, vel=36.0))
    publisher.send("owntracks/roadedge/trk-a", {**location(20, 95.0, 0.0, t0 + 200)})  # refused at ingest
    assert console.ingest.wait_idle(10)
    c = Client(console.url)
    assert c.login("disp", "disp-pass-123") == 200
    st, inc = c.req("POST", "/api/incidents", {"lat": at(1.0)[0], "lon": at(1.0)[1], "text": "=cmd|' /C calc'!A0"})
    assert st == 200
    console.store.add_dispatch(inc["id"], "trk-a", "disp", 1, "on_scene")
    console.store._exec("UPDATE incidents SET created=? WHERE id=?", (t0 + 50, inc["id"]))
    console.store._exec("UPDATE dispatches SET sent=?, on_scene=? WHERE incident=?", (t0 + 70, t0 + 190, inc["id"]))
    day = dt.datetime.fromtimestamp(t0, dt.UTC).date().isoformat()
    st, rep = c.req("GET", f"/api/reports?day={day}&tz=0")
    assert st == 200
    units = {u["unit"]: u for d in rep["days"] for u in d["units"]}
    assert units["trk-a"]["distance_km"] == pytest.approx(1.0, abs=0.01) and units["trk-a"]["fixes"] == 11
    incs = [i for d in rep["days"] for i in d["incidents"]]
    assert [(i["section"], i["to_dispatch_s"], i["response_s"]) for i in incs] == [("F1", 20, 140)]
    f1 = next(s for d in rep["days"] for s in d["sections"] if s["section"] == "F1")
    assert (f1["incidents"], f1["reached"], f1["median_response_min"]) == (1, 1, 2.3)

    for bad in ("", "?day=2025-02-30", f"?day={day}&days=99", f"?day={day}&tz=east"):
        assert c.req("GET", "/api/reports" + bad)[0] == 400, bad
    assert c.req("GET", f"/api/reports/passwords.csv?day={day}")[0] == 404
    assert Client(console.url).req("GET", f"/api/reports?day={day}")[0] == 401
    r = urllib.request.Request(console.url + f"/api/reports/incidents.csv?day={day}&tz=0")
    with c.op.open(r, timeout=30) as resp:
        assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
        assert resp.headers["Content-Disposition"].startswith(f'attachment; filename="incidents-{day}.csv"')
        rows = list(csv.DictReader(io.StringIO(resp.read().decode("utf-8-sig"))))
    assert rows[0]["text"] == "'=cmd|' /C calc'!A0" and rows[0]["response_s"] == "140.0"


def test_duty_times_and_stops_read_from_the_store(tmp_path):
    """reports_db on a real store: the tracker's state changes (state_log) give the duty times, the
    link status counts offline, a state body that is not JSON is skipped."""
    import json

    from host_tools.dispatch.decode import Record
    from host_tools.dispatch.reports_db import build
    from host_tools.dispatch.store import Store

    st = Store(tmp_path / "d.db")
    batch = [(Record("location", "trk-a", {"tst": T0 + t, "lat": at(km)[0], "lon": at(km)[1], "vel": v}, i + 1),
              T0 + t, "t")
             for i, (t, km, v) in enumerate([(0, 0.0, 36.0), (100, 1.0, 0.0), (400, 1.0, 0.0), (410, 1.1, 36.0)])]
    st.apply(batch, [])
    for rx, kind, body in [(T0 - 50, "state", json.dumps({"duty": "patrol"})), (T0 + 100, "state", "{broken"),
                           (T0 + 200, "state", json.dumps({"duty": "on_scene"})), (T0 + 300, "status", "offline"),
                           (T0 + 350, "status", "online"), (T0 + 400, "state", json.dumps({"duty": "patrol"})),
                           (T0 + 600, "state", json.dumps({"duty": "dispatched"}))]:
        st._exec("INSERT INTO state_log(device, kind, rx, body) VALUES(?,?,?,?)", ("trk-a", kind, rx, body))
    st.close()
    rep = build(str(tmp_path / "d.db"), SECTIONS, T0, T0 + DAY, T0 + 1000)
    (u,) = rep["units"]
    assert u["duty"] == {"patrol_s": 400.0, "en_route_s": 400.0, "on_scene_s": 150.0, "off_duty_s": 0.0,
                         "offline_s": 50.0, "unknown_s": 0.0}
    assert (u["stops"], u["stopped_s"], u["fixes"]) == (1, 310, 4)  # at rest 100 s -> moving at 410 s
    assert u["distance_km"] == pytest.approx(1.1, abs=0.01)
    f1 = rep["sections"][0]
    assert f1["units_seen"] == ["trk-a"] and f1["presence_s"] > 300  # parked inside F1 100-400 s
