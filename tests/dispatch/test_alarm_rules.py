"""The console's own alarm rules (host_tools/dispatch/alarms.py), pure: fed with now_ms and a view."""
from __future__ import annotations

import copy

import pytest

from dispatch_support import U_ROAD
from host_tools.deployment.scenario import parse
from host_tools.dispatch.alarms import AlarmConfig, AlarmRules, Placed, View, fog_uncovered, in_fog, overspeed, \
    section_alarm, sign_over_law
from host_tools.deployment.roadnet import RoadNetwork

NOW = 1_800_000_000.0
SC = parse(copy.deepcopy(U_ROAD))
NET = RoadNetwork.from_scenario(SC)
CFG = AlarmConfig()


def lon_at(km: float) -> float:
    return SC.roads["U"].latlon_at_km(km)[1]  # the south arm runs east along lat 30.300


def unit(uid="trk-a", km=1.0, vel=50.0, cog=90.0, age=5.0, **kw) -> dict:
    return {"id": uid, "role": "tracker", "status": "online", "lat": 30.3, "lon": lon_at(km), "tst": NOW - age,
            "vel": vel, "cog": cog, "state": {"duty": "patrol"}, **kw}


def signs(limit=60, status="online", **st) -> list[Placed]:
    s = SC.signs[0]
    return [Placed(s.id, s.road, s.km, s.lat, s.lon, s.section, status, {"limit": limit, "source": "central", **st})]


def beacons(vis=None, mode="guidance", status="online", only=None) -> list[Placed]:
    out = []
    for b in SC.beacons:
        v = vis(b.km) if callable(vis) else vis
        st = {"mode": mode, "vis_m": v} if only is None or b.id in only else {"mode": "standby", "vis_m": 2000}
        out.append(Placed(b.id, b.road, b.km, b.lat, b.lon, b.section, status, st))
    return out


def view(units=(), sgn=None, bcn=None, **kw) -> View:
    return View(units=list(units), signs=sgn if sgn is not None else signs(),
                beacons=bcn if bcn is not None else beacons(2000), scenario=SC, net=NET, **kw)


# ---- overspeed ----------------------------------------------------------------------------------------
def test_overspeed_against_the_nearest_upstream_sign():
    got = overspeed(view([unit(vel=72)]), CFG, NOW)
    assert [c.key for c in got] == ["overspeed:trk-a"]
    assert got[0].detail["limit"] == 60 and got[0].detail["sign"] == "vsl-1"
    assert "72 km/h" in got[0].text and "vsl-1 shows 60 km/h" in got[0].text


@pytest.mark.parametrize("case", ["within tolerance", "other direction", "before the sign", "past its section",
                                  "beyond its reach",
                                  "blank sign", "sign offline", "stale fix", "unit offline", "off the road"])
def test_no_overspeed_when_the_sign_does_not_apply(case):
    u, sg = unit(vel=72), signs()
    if case == "within tolerance":
        u["vel"] = 64
    elif case == "other direction":
        u["cog"] = 270  # westbound: the other carriageway, no sign of ours faces it
    elif case == "before the sign":
        u = unit(km=0.1, vel=90)
    elif case == "past its section":
        u = unit(km=1.8, vel=90)  # section F1 ends at km 1.5: the fog restriction is over
    elif case == "beyond its reach":
        sg[0].km, sg[0].section = -3.5, None  # (as if) a sign for no section stood 4.5 km back
    elif case == "blank sign":
        sg = signs(limit=None)
    elif case == "sign offline":
        sg = signs(status="offline")
    elif case == "stale fix":
        u["tst"] = NOW - 600
    elif case == "unit offline":
        u["status"] = "offline"
    elif case == "off the road":
        u["lat"] = 30.302  # between the arms, ~220 m from either
    assert overspeed(view([u], sg), CFG, NOW) == []


def test_overspeed_never_raises_on_bad_device_data():
    bad = [unit(uid="b1", vel="fast"), unit(uid="b2", cog="east"), unit(uid="b3", lat=float("nan")),
           unit(uid="b4", tst=None), {"id": "b5"}, unit(uid="b6", vel=True), unit(uid="b7", vel=1e308),
           "not a row", unit(uid="ok", vel=90)]
    for lim in ("sixty", {"x": 1}, float("inf"), -5, True):
        assert [c.device for c in overspeed(view(bad, signs(limit=lim)), CFG, NOW)] == []
    assert [c.device for c in overspeed(view(bad), CFG, NOW)] == ["ok"]
    assert overspeed(view(bad, [Placed("s", None, None, state=None), Placed("t", "nope", "x", state=[])]), CFG,
                     NOW) == []


# ---- in fog ---------------------------------------------------------------------------------------------
def test_unit_inside_fog_below_100_m():
    fog = beacons(lambda km: 45 if 0.8 <= km <= 1.2 else 400)
    got = in_fog(view([unit(km=1.0), unit(uid="trk-b", km=0.4)], bcn=fog), CFG, NOW)
    assert [c.key for c in got] == ["in_fog:trk-a"]
    assert got[0].detail["vis_m"] == 45 and "below 100 m" in got[0].text
    # 150 m fog is not the 100 m band; an offline beacon's old reading judges nothing
    assert in_fog(view([unit(km=1.0)], bcn=beacons(150)), CFG, NOW) == []
    assert in_fog(view([unit(km=1.0)], bcn=beacons(45, status="offline")), CFG, NOW) == []


def test_in_fog_with_bad_beacon_and_unit_data():
    fog = beacons(45)
    fog[0].state = {"vis_m": "thick"}
    fog[1].state = None
    fog[2].km = "x"
    fog[3].road = None
    fog[4].state = {"vis_m": float("nan")}
    got = in_fog(view([unit(km=1.0), unit(uid="x", lat="30.3"), unit(uid="y", tst="now")], bcn=fog), CFG, NOW)
    assert [c.device for c in got] == ["trk-a"]


# ---- sign above the law ----------------------------------------------------------------------------------
def test_sign_above_art81_for_its_visibility_from_each_source():
    # its own meter
    got = sign_over_law(view(sgn=signs(limit=80, vis_m=85)), CFG, NOW)
    assert [(c.key, c.detail["law"]) for c in got] == [("sign_over_law:vsl-1", 40)]
    assert "its own meter" in got[0].text
    # the zone controller's reading for it
    ctl = {"z1": {"signs": [{"id": "vsl-1", "vis_m": 150, "no_data": False}]}}
    got = sign_over_law(view(sgn=signs(limit=80), ctl=ctl), CFG, NOW)
    assert [c.detail["law"] for c in got] == [60] and "zone controller" in got[0].text
    # the worst of several: 70 m at a beacon right beside the sign -> 40
    near = beacons(2000)
    near[0].km = 0.32
    near[0].state = {"vis_m": 70}
    got = sign_over_law(view(sgn=signs(limit=60, vis_m=150), bcn=near), CFG, NOW)
    assert [c.detail["law"] for c in got] == [40] and near[0].id in got[0].text


def test_sign_within_the_law_or_unknown_is_no_alarm():
    assert sign_over_law(view(sgn=signs(limit=60, vis_m=150)), CFG, NOW) == []  # exactly the law
    assert sign_over_law(view(sgn=signs(limit=120, vis_m=800)), CFG, NOW) == []  # no fog
    assert sign_over_law(view(sgn=signs(limit=None, vis_m=30)), CFG, NOW) == []  # blank: shows no limit
    assert sign_over_law(view(sgn=signs(limit=80, vis_m=None)), CFG, NOW) == []  # no reading anywhere
    ctl = {"z1": {"signs": [{"id": "vsl-1", "vis_m": 30, "no_data": True}]}}
    assert sign_over_law(view(sgn=signs(limit=80), ctl=ctl), CFG, NOW) == []


def test_sign_over_law_never_raises_on_bad_data():
    bad_ctl = {"z": None, "y": {"signs": "x"}, "w": {"signs": [None, 7, {"id": 5}, {"id": "vsl-1", "vis_m": "x"}]},
               "v": {"signs": {"vsl-1": {"vis_m": -1}}}}
    for st in ({"limit": "80", "vis_m": 30}, {"limit": 80, "vis_m": "fog"}, {"limit": [80], "vis_m": 30},
               {"limit": 80, "vis_m": float("-inf")}):
        s = signs()
        s[0].state = st
        assert sign_over_law(view(sgn=s, ctl=bad_ctl), CFG, NOW) == []


# ---- fog section without a patrol unit nearby ---------------------------------------------------------
def test_fog_section_without_a_free_unit_within_n_minutes_by_road():
    fog = beacons(lambda km: 60 if km > 1.2 else 300)
    near = unit(uid="trk-a", km=0.6, vel=0, cog=None)
    got = fog_uncovered(view([near], bcn=fog), CFG, NOW)
    assert got == []  # trk-a is 700 m away
    # trk-b: on the north arm, ~1.9 km by road from the worst beacon (km 1.3) at 80 km/h = ~1.5 min:
    # covered with N = 10 min, not with N = 1 min
    far = {**unit(uid="trk-b", vel=0, cog=None), "lat": 30.305, "lon": 120.012}
    assert fog_uncovered(view([far], bcn=fog), CFG, NOW) == []
    got = fog_uncovered(view([far], bcn=fog), AlarmConfig(uncovered_eta_s=60), NOW)
    assert [c.key for c in got] == ["fog_uncovered:F1"]
    assert got[0].detail["unit"] == "trk-b" and "trk-b" in got[0].text and "by road" in got[0].text


@pytest.mark.parametrize("why", ["dispatched", "busy", "sos", "offline", "stale", "none"])
def test_fog_section_uncovered_when_the_only_unit_is_not_free(why):
    fog = beacons(60)
    u = unit(km=1.0, vel=0)
    busy = set()
    if why == "dispatched":
        u["state"] = {"duty": "dispatched"}
    elif why == "busy":
        busy = {"trk-a"}
    elif why == "sos":
        u["state"] = {"duty": "patrol", "sos": {"latched": True}}
    elif why == "offline":
        u["status"] = "offline"
    elif why == "stale":
        u["tst"] = NOW - 3600
    units = [] if why == "none" else [u]
    got = fog_uncovered(view(units, bcn=fog, busy=busy), CFG, NOW)
    assert [c.key for c in got] == ["fog_uncovered:F1"]
    assert got[0].detail["unit"] is None


def test_fog_uncovered_ignores_clear_sections_and_bad_beacons():
    assert fog_uncovered(view([], bcn=beacons(400)), CFG, NOW) == []
    bad = beacons(60)
    for b in bad:
        b.lat = "x"
    assert fog_uncovered(view([], bcn=bad), CFG, NOW) == []
    assert fog_uncovered(View(units=[], signs=[], beacons=beacons(60)), CFG, NOW) == []  # no deployment


# ---- section alarm ---------------------------------------------------------------------------------------
def test_section_alarm_is_one_alarm_per_section():
    ids = {b.id for b in SC.beacons[:4]}
    got = section_alarm(view(bcn=beacons(2000, mode="section_alarm", only=ids)), CFG, NOW)
    assert [c.key for c in got] == ["section_alarm:F1"]
    assert f"4 of {len(SC.beacons)} beacons" in got[0].text
    assert section_alarm(view(bcn=beacons(2000, mode="section_alarm", status="offline")), CFG, NOW) == []
    odd = [Placed("b-x", None, None, state={"mode": "section_alarm"}), Placed("b-y", None, None, state="red")]
    assert [c.key for c in section_alarm(view(bcn=odd), CFG, NOW)] == ["section_alarm:b-x"]


# ---- the engine: hold, clear, resume, errors ---------------------------------------------------------------
def test_raise_after_the_hold_time_and_clear_after_the_clear_time():
    rules = AlarmRules()
    fast = view([unit(vel=90)])
    t = int(NOW * 1000)
    assert rules.evaluate(t, fast) == []  # one fix does not alarm
    assert rules.evaluate(t + 5000, fast) == []
    got = rules.evaluate(t + 10000, fast)
    assert [(w, c.key) for w, c in got] == [("raise", "overspeed:trk-a")]
    assert rules.evaluate(t + 11000, fast) == []  # raised once
    slow = view([unit(vel=50)])
    assert rules.evaluate(t + 12000, slow) == []
    assert rules.evaluate(t + 18000, fast) == []  # back before the clear time: still the same alarm
    assert rules.evaluate(t + 19000, slow) == []
    got = rules.evaluate(t + 29000, slow)
    assert [(w, c.key) for w, c in got] == [("clear", "overspeed:trk-a")]


def test_a_blip_shorter_than_the_hold_time_never_alarms():
    rules = AlarmRules()
    t = int(NOW * 1000)
    assert rules.evaluate(t, view([unit(vel=90)])) == []
    assert rules.evaluate(t + 3000, view([unit(vel=50)])) == []
    assert rules.evaluate(t + 11000, view([unit(vel=90)])) == []


def test_resumed_alarms_are_not_raised_again_and_clear_when_over():
    from host_tools.dispatch.alarms import Condition

    rules = AlarmRules()
    rules.resume([Condition("section_alarm:F1", "section_alarm", "F1", "old text")])
    t = int(NOW * 1000)
    red = view(bcn=beacons(2000, mode="section_alarm"))
    assert rules.evaluate(t, red) == []
    assert rules.evaluate(t + 1000, view()) == []
    assert [w for w, _c in rules.evaluate(t + 7000, view())] == ["clear"]


def test_a_rule_that_fails_is_counted_and_the_others_still_run(monkeypatch):
    from host_tools.dispatch import alarms

    def broken(*_a):
        raise RuntimeError("unforeseen")

    monkeypatch.setitem(alarms.RULES, "in_fog", broken)
    rules = AlarmRules()
    got = rules.evaluate(int(NOW * 1000), view(bcn=beacons(2000, mode="section_alarm")))
    assert [c.key for _w, c in got] == ["section_alarm:F1"]
    assert rules.errors == {"in_fog": 1}


def test_garbage_view_never_raises():
    junk_units = [None, 5, "x", {"id": None, "lat": [], "lon": {}, "tst": "t"}, {"state": "s", "status": 3}]
    junk = View(units=junk_units, signs=[Placed("s", "U", "km", state={"limit": {}})],
                beacons=[Placed("b", "U", float("nan"), lat=1e308, lon=None, section=3, state={"vis_m": -3})],
                ctl={"z": [1, 2]}, scenario=SC, net=NET)
    rules = AlarmRules()
    for i in range(3):
        assert rules.evaluate(int(NOW * 1000) + i * 20000, junk) == []
    assert rules.errors == {}
