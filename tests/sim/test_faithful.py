"""The faithful runtime: a sign, a beacon and a tracker of the scenario run as real firmware processes
(compiled, under the micropython unix port) inside a world whose other devices run in-process.

Fog is made to form at once, the zone controller to act every 5 s and the tracker's patrol to set off at once
(at 90 km/h), so within half a minute: the beacon's meter (answered by the world's fog) puts it into
anti-rear-end and a passing simulated vehicle lights its red tail; the controller's signed commands over MQTT
step the sign down and the world reads the limit off its LED matrix; the tracker decodes the world's NMEA and
reports positions matching the patrol's ground truth."""
from __future__ import annotations

import json
import time
from pathlib import Path

from host_tools.deployment.geo import haversine_m
from host_tools.deployment.scenario import parse
from roadedge import wire
from sim.world import World
from sim.world.faithful import Faithful, select
from sim.world.inprocess_devices import SimTracker
from sim.world.sinks import MemorySink

REPO = Path(__file__).resolve().parents[2]
SIGN, BEACON, TRACKER = "vsl-03", "bcn-f1-r033", "trk-006"


def scenario():
    raw = json.loads((REPO / "sim" / "scenarios" / "demo.json").read_text())
    raw["fog"] = [dict(raw["fog"][0], start_s=0, peak_s=3, end_s=3600, drift_mps=0)]
    raw["incidents"], raw["sos"] = [], [{"unit": TRACKER, "t_s": 10}]
    for t in raw["devices"]["trackers"]:  # the patrol under test sets off at once (not at t = 50 s) at 90 km/h
        if t["id"] == TRACKER:
            t["start_s"], t["speed_kmh"] = 0, 90
    raw["traffic"]["flow_vph"] = 1800
    return parse(raw, "demo-fast-fog")


def test_sign_beacon_tracker_processes_in_the_world(mosquitto, tmp_path):
    w = World(scenario(), zone_params={"interval_s": 5, "confirm_s": 5}, epoch_unix=int(time.time()))
    mem = MemorySink()
    w.sinks.append(mem)
    assert select(w, f"signs,{BEACON}")[:3] == ["vsl-01", "vsl-02", "vsl-03"]
    f = Faithful(w, [SIGN, BEACON, TRACKER], mosquitto.url, tmp_path).start()
    try:
        sign, beacon, trk = f.proxies[SIGN], f.proxies[BEACON], f.proxies[TRACKER]
        red_seen = False
        t0 = time.monotonic()
        while time.monotonic() - t0 < 90:
            w.step()
            ahead = w.t - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
            red_seen = red_seen or any(ch == "lamp_red" and d > 0 for ch, d in list(beacon.io.changes))
            face = sign.shown()[0]
            if (red_seen and beacon.mode(0) == "anti_rear_end" and face is not None and face <= 60
                    and len(trk.reports) >= 5 and any(m.topic == f"re/{TRACKER}/event" and b'"sos"' in m.payload
                                                      for m in mem.messages)):
                break
        assert beacon.mode(0) == "anti_rear_end", beacon.state
        assert red_seen, "no red tail behind a passing vehicle"
        assert sign.shown()[0] is not None and sign.shown()[0] <= 60, (sign.shown(), sign.state)
        assert sign.source() == "central"
        errs = [haversine_m(lat, lon, *(lambda tt: (tt.lat, tt.lon))(trk.patrol.truth(t, w.sc.roads)))
                for t, lat, lon in trk.reports]
        assert len(errs) >= 5 and max(errs) < 30, errs
        # the processes' own messages reached the world's sinks (recording, report)
        topics = {m.topic for m in mem.messages}
        assert {f"re/{SIGN}/state", f"re/{BEACON}/state", f"owntracks/roadedge/{TRACKER}"} <= topics
        assert any(m.topic == f"re/{TRACKER}/event" and b'"sos"' in m.payload for m in mem.messages)
        # a dispatch to where the unit is about to be: the firmware takes it, the rider presses accept (ACCEPT_S
        # after the display shows it) and rides there by road, and the firmware reports on scene
        tt = trk.patrol.truth(w.t + SimTracker.ACCEPT_S, w.sc.roads)
        cmd = f.keyring.signer(TRACKER).sign("dispatch", {"incident": "9", "lat": tt.lat, "lon": tt.lon, "prio": 1}, 120)
        f.client.publish(wire.cmd_topic(TRACKER, "dispatch"), cmd, qos=1)

        def duty_events():
            return [json.loads(m.payload) for m in mem.messages if m.topic == wire.topic(TRACKER, wire.EVENT)
                    and json.loads(m.payload).get("type") in ("dispatch_accept", "duty")]

        t1 = time.monotonic()
        while time.monotonic() - t1 < 120 and not any(e.get("status") == "on_scene" for e in duty_events()):
            w.step()
            ahead = w.t - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
        kinds = [e.get("status", e["type"]) for e in duty_events()]
        assert kinds[:1] == ["dispatch_accept"] and "on_scene" in kinds, kinds
    finally:
        f.stop()
