# Tracker pure policies under both runtimes: smart reporting, SOS latch,
# dispatch/duty, battery and ignition, the stored record and its JSON.
import json

from roadedge.tracker import reporting as rp
from roadedge.tracker import record, sos, duty, power

LAT, LON = 523700000, 48900000
M = 1 / 0.011131949  # 1e-7 deg of latitude per metre


def _r(**kw):
    return rp.Reporter(kw or None)


def test_reporting_rules():
    r = _r()
    assert r.decide(1000, LAT, LON, 400, 9000) == rp.FIRST
    r.reported(1000, LAT, LON, 400, 9000)
    assert r.decide(1003, LAT + int(200 * M), LON, 400, 9000) == 0  # min period 5 s
    assert r.decide(1010, LAT + int(99 * M), LON, 400, 9000) == 0
    assert r.decide(1010, LAT + int(101 * M), LON, 400, 9000) == rp.DISTANCE
    assert r.decide(1010, LAT, LON, 400, 9000 + 1000) == rp.HEADING
    assert r.decide(1010, LAT, LON, 400, 9000 - 1000) == rp.HEADING
    assert r.decide(1010, LAT, LON, 400, 9000 + 999) == 0
    assert r.decide(1010, LAT, LON, 500, 9000) == rp.SPEED
    assert r.decide(1010, LAT, LON, 300, 9000) == rp.SPEED
    assert r.decide(1299, LAT, LON, 400, 9000) == 0
    assert r.decide(1300, LAT, LON, 400, 9000) == rp.TIME
    assert r.decide(1020, LAT, LON, 400, 9000, emergency=True) == rp.EMERGENCY
    assert rp.heading_delta(35900, 100) == 200


def test_emergency_never_holds_back_a_report():
    # in SOS the rider is reported at least every emergency_period_s, and as
    # often as without it: moving 100 m, turning, or the max period still count
    r = _r()
    r.reported(1000, LAT, LON, 400, 9000)
    assert r.decide(1006, LAT, LON, 400, 9000, emergency=True) == 0
    assert r.decide(1006, LAT + int(101 * M), LON, 400, 9000, emergency=True) == rp.DISTANCE
    assert r.decide(1006, LAT, LON, 400, 9000 + 1000, emergency=True) == rp.HEADING
    assert r.decide(1003, LAT + int(200 * M), LON, 400, 9000, emergency=True) == 0  # min period
    assert r.decide(1010, LAT, LON, 400, 9000, emergency=True) == rp.EMERGENCY
    fast = _r(min_period_s=1, max_period_s=2)  # as a tracker configured for a fast track
    fast.reported(1000, LAT, LON, 400, 9000)
    assert fast.decide(1002, LAT, LON, 400, 9000, emergency=True) == rp.TIME
    stopped = _r()
    stopped.reported(0, LAT, LON, 20, -1)
    got = []
    for t in range(1, 400):
        why = stopped.decide(t, LAT, LON, 20, -1, emergency=t >= 200)
        if why:
            got.append((t, why))
            stopped.reported(t, LAT, LON, 20, -1)
    assert got[0] == (122, rp.STOP), got  # stopped: hourly, then in SOS every 10 s
    assert [w for _t, w in got[1:]] == [rp.EMERGENCY] * len(got[1:]) and [t for t, _w in got[1:4]] == [200, 210, 220], got


def test_stop_detection_and_hourly():
    r = _r()
    r.reported(0, LAT, LON, 20, 0)
    t = 0
    got = []
    for t in range(1, 4000):
        v = 20 if t < 3800 else 300  # 2 km/h, then moving 30 km/h
        why = r.decide(t, LAT, LON, v, -1)
        if why:
            got.append((t, why))
            r.reported(t, LAT, LON, v, -1)
    assert got[0] == (122, rp.STOP), got  # slow since t=1, stop after > 120 s
    assert (122 + 3600, rp.TIME) in got
    assert (3800, rp.START) in got
    assert len(got) == 3


def test_sos_long_press_latch_ack_and_restore():
    s = sos.SOS()
    t = 0
    fired = []
    # bouncy press: short gaps shorter than debounce do not restart the hold
    levels = [1] * 30 + [0] + [1] * 200 + [0] * 10
    for lv in levels:
        if s.button(bool(lv), t):
            fired.append(t)
        t += 10
    assert fired == [2000], fired
    # a short press does nothing
    for lv in [1] * 100 + [0] * 10:
        assert not s.button(bool(lv), t)
        t += 10
    assert s.trigger(1700000000) == 1 and s.latched
    assert s.trigger(1700000005) == 1  # pressing again keeps the same alarm
    assert s.indicator(0) == (1, 1)
    saved = json.loads(json.dumps(s.state()))
    s2 = sos.SOS(saved=saved)  # reboot
    assert s2.latched and s2.id == 1 and s2.since == 1700000000
    assert s2.ack(7, "disp", 0) == ("refused", "stale_id") and s2.latched
    assert s2.ack(1, "disp", 1000) == ("ok", None) and not s2.latched
    assert s2.indicator(2000) == (1, 0) and s2.indicator(20000) == (0, 0)
    assert s2.ack(None, "disp", 0) == ("refused", "no_alarm")
    assert s2.trigger(1700000100) == 2


def test_dispatch_accept_arrive_close():
    d = duty.Duty()
    assert d.dispatch({"incident": "I-1", "lat": "x", "lon": 4.9}, 0)[0] == "bad_args"
    assert d.dispatch({"incident": "I-1", "lat": 52.37, "lon": 4.89, "prio": 9}, 0)[0] == "bad_args"
    assert d.dispatch({"incident": "", "lat": 52.37, "lon": 4.89}, 0)[0] == "bad_args"
    assert d.dispatch({"incident": "I-1", "lat": 52.38, "lon": 4.89, "prio": 1, "text": "crash A10 km 12"}, 0) == ("ok", None)
    assert d.pending() and d.indicator(0)[1] == 1
    ev = d.accept(100)
    assert ev == {"type": "dispatch_accept", "incident": "I-1", "prio": 1} and d.status == "dispatched"
    assert d.accept(200) is None
    assert d.dispatch({"incident": "I-2", "lat": 1, "lon": 1}, 0) == ("refused", "busy:I-1")
    assert d.on_fix(LAT, LON, 300) is None  # far away
    ev = d.on_fix(523800000, 48900000 + 300, 50)
    assert ev == {"type": "duty", "status": "on_scene", "incident": "I-1"} and d.status == "on_scene"
    d2 = duty.Duty(saved=json.loads(json.dumps(d.state())))
    assert d2.status == "on_scene" and d2.incident["id"] == "I-1"
    assert d2.dispatch({"incident": "I-9", "action": "close"}, 0) == ("refused", "not_current_incident")
    assert d2.dispatch({"incident": "I-1", "action": "close"}, 0) == ("ok", None) and d2.status == "patrol"
    assert d2.ignition(False, 0) is None
    assert d2.ignition(False, 1800) == {"type": "duty", "status": "off_duty"}
    assert d2.ignition(True, 1900) == {"type": "duty", "status": "patrol"}


def test_battery_and_ignition():
    assert power.percent(4250) == 100 and power.percent(3000) == 0
    assert power.percent(3820) == 50 and 50 < power.percent(3850) < 60
    mv = power.battery_mv(int(4.0 / 3.0 / 3.3 * 65535))
    assert 3995 <= mv <= 4001
    ig = power.Ignition()
    assert not ig.feed(1, 0) and not ig.feed(1, 300) and not ig.feed(0, 400)  # a dip restarts
    assert not ig.feed(1, 500) and ig.feed(1, 1000) and ig.on
    assert not ig.feed(1, 5000)


def test_record_roundtrip_and_owntracks_json():
    r = record.Report(seq=42, tst=1795000000, lat=-338688000, lon=1512093000, alt_cm=5840, vel=543, cog=1234,
                      hdop=90, sats=11, fix=3, batt=87, sos=True, ign=True, reason=rp.SOS)
    b = r.pack()
    assert len(b) == record.SIZE == 32
    u = record.unpack(b)
    assert u == r and u.sos and u.ign and u.reason == rp.SOS and u.acc == 5
    j = json.loads(record.owntracks_json(u, "IC", False, 1795000100))
    assert j["_type"] == "location" and j["tid"] == "IC" and j["t"] == "u"
    assert j["lat"] == -33.8688 and j["lon"] == 151.2093 and j["tst"] == 1795000000
    assert j["alt"] == 58 and j["vel"] == 54 and j["cog"] == 123 and j["batt"] == 87 and j["acc"] == 5
    assert j["seq"] == 42 and j["sat"] == 11 and j["hdop"] == 0.9 and j["fix"] == 3
    assert j["live"] is False and j["why"] == "sos" and j["sos"] == 1 and j["created_at"] == 1795000100
    n = record.Report(seq=1, lat=5, lon=-5, cog=-1, batt=-1, reason=rp.TIME)
    j = json.loads(record.owntracks_json(record.unpack(n.pack()), "IC", True))
    assert "cog" not in j and "batt" not in j and j["live"] is True and j["t"] == "t" and "created_at" not in j
    assert record.e7_str(-5) == "-0.0000005" and j["lat"] == 5e-7
    try:
        record.unpack(b[:31])
        raise AssertionError("short record accepted")
    except ValueError:
        pass


def test_parameter_names_do_not_collide():
    # the app merges these into one "tracker" config section
    seen = {}
    for mod in (rp, sos, duty, power):
        for k in mod.DEFAULTS:
            assert k not in seen, "%s in %s and %s" % (k, seen.get(k), mod.__name__)
            seen[k] = mod.__name__
