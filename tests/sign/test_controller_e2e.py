"""The whole loop: `roadedge controller` (its own process) + three sign firmwares (MicroPython, sim
hardware server) + a real Mosquitto. Visibility comes in as beacon telemetry; what the signs show
is read back from their SPI traffic; operators act over MQTT; the audit log is checked after."""
from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from vsl_rig import Rig

ZONE = {"zone": "g15-k10-n", "interval_s": 1, "confirm_s": 1, "relax_s": 2, "heartbeat_s": 1,
        "signs": [{"id": "vsl-1", "km": 10.0, "sources": ["bcn-up"]},
                  {"id": "vsl-2", "km": 10.5, "sources": ["bcn-fog"]},
                  {"id": "vsl-3", "km": 11.0, "sources": ["bcn-fog"]}]}
CTL = "re/ctl/g15-k10-n"


class Beacons:
    """Two beacons' visibility telemetry (the fields the beacon firmware publishes)."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.vis = {"bcn-up": 1000, "bcn-fog": 1000}
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self) -> None:
        seq = 0
        while not self.stop.is_set():
            for b, v in self.vis.items():
                seq += 1
                self.rig.watch.publish(f"re/{b}/tele", {"seq": seq, "ts": time.time(), "vis_m": v, "level": 0},
                                       qos=0)
            self.stop.wait(0.3)


@pytest.fixture
def rig(tmp_path, mosquitto):
    r = Rig(tmp_path, mosquitto.port)
    yield r
    r.close()


def faces(rig, want, timeout=40):
    for sid, reading in want.items():
        rig.signs[sid].wait_face(reading, timeout=timeout)


def op(rig, **kw):
    rig.op("g15-k10-n", **kw)


def test_controller_drives_the_section_with_operators_in_the_loop(rig):
    signs = [rig.sign(s["id"]).start() for s in ZONE["signs"]]
    beacons = Beacons(rig)
    try:
        rig.start_controller(ZONE, "automatic")
        faces(rig, {"vsl-1": (100, ""), "vsl-2": (100, ""), "vsl-3": (100, "")})
        for s in signs:
            rig.watch.wait_state(f"re/{s.id}/state", lambda o: o["source"] == "central" and o["limit"] == 100)

        # fog over the downstream signs: they go straight to the Art. 81 limit, the upstream sign one step above
        beacons.vis["bcn-fog"] = 80
        faces(rig, {"vsl-1": (60, "FOG"), "vsl-2": (40, "FOG"), "vsl-3": (40, "FOG")})
        st = rig.watch.wait_state(f"{CTL}/state", lambda o: [s["displayed"] for s in o["signs"]] == [60, 40, 40])
        assert [s["source"] for s in st["signs"]] == ["central"] * 3

        # only a supervisor may change the mode
        op(rig, action="mode", mode="approve", user="li", role="operator")
        op(rig, action="mode", mode="approve", user="wang", role="supervisor", reason="night shift")
        rig.watch.wait_state(f"{CTL}/state", lambda o: o["mode"] == "approve")

        # the fog lifts: recommendations wait for a person, the signs keep their limits
        beacons.vis["bcn-fog"] = 1000
        st = rig.watch.wait_state(f"{CTL}/state", lambda o: all(s["pending"] for s in o["signs"][1:]))
        assert [s["pending"] for s in st["signs"]] == [80, 60, 60]
        assert [s.face()[0] for s in signs] == [(60, "FOG"), (40, "FOG"), (40, "FOG")]

        # a veto holds vsl-2 at its lower limit; its neighbours may rise only to one step above it
        op(rig, action="veto", sign="vsl-2", user="wang", role="supervisor", reason="crash recovery at km 10.6")
        st = rig.watch.wait_state(f"{CTL}/state", lambda o: o["signs"][1]["hold"] == 40 and o["signs"][2]["pending"])
        assert [s["pending"] for s in st["signs"]] == [None, None, 60]
        op(rig, action="approve", user="wang", role="supervisor")
        faces(rig, {"vsl-3": (60, "FOG")})
        assert [s.face()[0] for s in signs] == [(60, "FOG"), (40, "FOG"), (60, "FOG")]
    finally:
        beacons.stop.set()
        rig.stop_controller()

    db = sqlite3.connect(rig.tmp / "audit.sqlite")
    rows = db.execute("SELECT who, role, action, sign, lim, mode, why, inputs FROM audit ORDER BY id").fetchall()
    refused = [r for r in rows if r[2] == "refused"]
    assert any(r[0] == "li" and "supervisor only" in r[6] for r in refused)
    assert any(r[0] == "wang" and r[2] == "mode" and "night shift" in r[6] for r in rows)
    assert any(r[0] == "wang" and r[2] == "hold" and r[3] == "vsl-2" and r[4] == 40 for r in rows)
    sends = [r for r in rows if r[2] == "send"]
    assert {r[3] for r in sends} == {"vsl-1", "vsl-2", "vsl-3"}
    decided = [r for r in rows if r[2] == "command" and r[0] == "controller"]
    assert decided and all("visibility" in r[6] and r[7] and "vis_m" in r[7] for r in decided)
    assert rows[0][2] == "start" and rows[-1][2] == "stop"
