"""The world hears the bus as the field does: the console's signed commands reach the in-process trackers
(verified with each tracker's own key; a dispatched rider accepts, rides to the scene by road and reports
on scene), and signed operator actions reach the zones' real controllers (approve mode, approve)."""
from __future__ import annotations

import json
from pathlib import Path

from host_tools.deployment.geo import haversine_m
from host_tools.deployment.scenario import load
from host_tools.keys import Keyring
from roadedge import wire
from sim.world import World
from sim.world.sinks import MemorySink

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "sim" / "scenarios" / "demo.json"


def _world(tmp_path):
    w = World(load(DEMO))
    m = MemorySink()
    w.sinks.append(m)
    keys = Keyring({t.id: {"command_key": (t.id.encode() * 8)[:32].hex(), "mqtt_password": ""} for t in w.trackers},
                   operator_key=(b"operator-key-for-tests" * 2)[:32].hex(), clock=w.unix)
    w.verify_with(keys, tmp_path)
    return w, m, keys


def _bodies(m: MemorySink, topic: str) -> list[dict]:
    return [json.loads(x.payload) for x in m.messages if x.topic == topic]


def _run_until(w: World, cond, until: float) -> bool:
    while w.t < until:
        w.step()
        if cond():
            return True
    return False


def test_dispatched_rider_accepts_rides_by_road_and_reports_on_scene(tmp_path):
    w, m, keys = _world(tmp_path)
    w.run(20)
    unit = "trk-002"
    lat, lon = w.sc.roads["G60"].latlon_at_km(4.2)
    cmd = keys.signer(unit).sign("dispatch", {"incident": "7", "lat": lat, "lon": lon, "prio": 1, "text": "crash"},
                                 120)
    ctr = json.loads(json.loads(cmd)["body"])["ctr"]
    w.receive(wire.cmd_topic(unit, "dispatch"), cmd)
    acks = _bodies(m, wire.topic(unit, wire.ACK))
    assert acks[-1]["cmd"] == "dispatch" and acks[-1]["ok"] and acks[-1]["ctr"] == ctr
    events = lambda: _bodies(m, wire.topic(unit, wire.EVENT))  # noqa: E731
    assert _run_until(w, lambda: any(e["type"] == "dispatch_accept" for e in events()), 60)
    assert _run_until(w, lambda: any(e["type"] == "duty" and e.get("status") == "on_scene" for e in events()), 900)
    states = [s["duty"] for s in _bodies(m, wire.topic(unit, wire.STATE))]
    assert "dispatched" in states and states[-1] == "on_scene"
    assert states.index("dispatched") < states.index("on_scene")
    # it got there by road: every reported fix on the carriageway, the last at the scene
    road = w.sc.roads["G60"]
    locs = _bodies(m, wire.location_topic(unit))
    assert all(road.project(*w.sc.proj.to_xy(p["lat"], p["lon"]))[1] < 30 for p in locs)
    assert haversine_m(locs[-1]["lat"], locs[-1]["lon"], lat, lon) < 150
    # a replayed or forged command is refused with a counted rejection, and changes nothing
    w.receive(wire.cmd_topic(unit, "dispatch"), cmd)
    forged = Keyring({unit: {"command_key": "11" * 32, "mqtt_password": ""}}, clock=w.unix).signer(unit)
    w.receive(wire.cmd_topic(unit, "dispatch"), forged.sign("dispatch", {"incident": "8", "lat": 0, "lon": 0}, 60))
    codes = [a["code"] for a in _bodies(m, wire.topic(unit, wire.ACK))[-2:]]
    assert all(c != "ok" for c in codes), codes
    assert w.tracker_by_id[unit].model.duty.incident["id"] == "7"


def test_operator_actions_reach_the_real_controller(tmp_path):
    w, m, keys = _world(tmp_path)
    z = w.zones[0]
    op = keys.operator_signer(z.id)

    def act(**a):
        w.receive(wire.ctl_topic(z.id, "op"), op.sign("op", {"user": "sup", "role": "supervisor", **a}, 30))

    w.run(5)
    act(action="mode", mode="approve")
    assert z.policy.mode == "approve"
    pending = lambda: [s for s in z.policy.signs if s.pending is not None]  # noqa: E731
    assert _run_until(w, lambda: bool(pending()), 600)
    s = pending()[0]
    limit, before = s.pending, w.sign_by_id[s.id].shown()[0]
    assert before != limit  # awaiting the supervisor: not applied yet
    states = _bodies(m, wire.ctl_topic(z.id, "state"))
    assert states[-1]["mode"] == "approve"
    act(action="approve", sign=s.id)
    assert _run_until(w, lambda: w.sign_by_id[s.id].shown()[0] == limit, w.t + 30)
    # an unsigned (forged) action is refused by the controller and changes nothing
    w.receive(wire.ctl_topic(z.id, "op"), json.dumps({"body": "{}", "mac": "00"}).encode())
    assert z.policy.mode == "approve" and z.ctl.stats["ops_rejected"]


def test_a_rider_on_another_road_rides_over_the_junctions():
    sc = load(DEMO)
    w = World(sc, traffic=False)
    p = w.patrols["trk-001"]  # patrols the parallel S201
    lat, lon = sc.roads["G60"].latlon_at_km(4.2)
    metres = p.ride_to(20, lat, lon)
    roads = [leg[0] for leg in p.errand[1]]
    assert roads[0] == "S201" and roads[-1] == "G60" and len(roads) == 3  # over a ramp
    straight = haversine_m(*(lambda tr: (tr.lat, tr.lon))(p.truth(20, sc.roads)), lat, lon)
    assert metres > straight
    end = p.truth(20 + metres / p.v + 5, sc.roads)
    assert haversine_m(end.lat, end.lon, lat, lon) < 5 and end.speed_mps == 0
