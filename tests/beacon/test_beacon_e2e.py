"""One beacon end to end: the real firmware (compiled .mpy, as a board gets it)
under the MicroPython unix port, its hardware served by sim.hw with the virtual
visibility meter and post I/O, talking to a real Mosquitto. Fog comes in, a
vehicle passes and leaves a red tail, the meter fails and the beacon reports
it within two poll periods in safe mode, and only a valid signed command
changes anything."""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from roadedge.core import auth
from sim.device_process import DeviceProcess, compiled_lib, device_config, make_device_dir
from sim.hw import HardwareServerThread
from sim.peripherals import vis_meter as VM
from sim.peripherals.beacon_io import BeaconIO

from beacon_harness import PINS, UARTS

DEV = "fb-e2e-001"
KEY = bytes(range(32))
HEAP = "256K"  # as tests/sign: the platform plus a role needs more than 160K on a 64-bit unix build (bench/beacon measures it)


@pytest.fixture(scope="module")
def lib(tmp_path_factory) -> Path:
    return compiled_lib(tmp_path_factory.mktemp("lib"))


def test_beacon_end_to_end(mosquitto, collector_factory, lib, tmp_path):
    col = collector_factory(mosquitto.port, [f"re/{DEV}/#"])
    col.c.publish("re/sys/time", json.dumps({"t": int(time.time() * 1000)}), 0, retain=True)
    ctr = [100]

    def send(cmd, args, key=KEY, ctr_value=None, exp=None):
        if ctr_value is None:
            ctr[0] += 1
        c = ctr[0] if ctr_value is None else ctr_value
        payload = auth.sign_command(key, DEV, cmd, c, int(exp or time.time() + 60), args)
        col.c.publish(f"re/{DEV}/cmd/{cmd}", payload, 1)
        a = json.loads(col.wait_for(lambda t, pl, r, q: t == f"re/{DEV}/ack", 15)[1])
        assert a["cmd"] == cmd
        return a

    def state_where(pred, timeout=15):
        return json.loads(col.wait_for(lambda t, pl, r, q: t == f"re/{DEV}/state" and pred(json.loads(pl)),
                                       timeout)[1])

    def event_where(kind, timeout=15, **kw):
        return json.loads(col.wait_for(lambda t, pl, r, q: t == f"re/{DEV}/event" and json.loads(pl)["type"] == kind
                                       and all(json.loads(pl).get(k) == v for k, v in kw.items()), timeout)[1])

    vis = {"m": 2000.0}
    with HardwareServerThread() as hws:
        hw = hws.device(DEV)
        meter = hws.call(lambda: VM.VisibilityMeter(hw, lambda t: vis["m"]))
        io = hws.call(lambda: BeaconIO(hw))
        cfg = device_config({
            "id": DEV, "board": "sim", "role": "beacon", "broker": {"url": "", "keepalive": 10},
            "command_key": KEY.hex(), "pins": PINS, "uarts": UARTS, "device": {"tele_s": 1},
            "beacon": {"meter": {"poll_s": 0.5, "reply_ms": 250}, "enter_s": 0.0, "exit_s": 0.0,
                       "sense_s": 0.5, "position_m": 1230.0},
        }, mosquitto.url, hws.addr)
        p = DeviceProcess(make_device_dir(tmp_path / "devices", cfg, fresh=True), "micropython", heap=HEAP,
                          lib=lib).start()
        ok = False
        try:
            st = state_where(lambda s: s["meter"] == "ok", 30)
            assert st["mode"] == "standby" and st["pos_m"] == 1230.0
            # fog rolls in
            vis["m"] = 45.0
            ev = event_where("vis_level", to=4)
            assert ev["from"] == 0 and ev["mode"] == "anti_rear_end"
            state_where(lambda s: s["mode"] == "anti_rear_end")
            # a vehicle at 80 km/h: red on after it passed, off once the 75 m tail has gone by
            n0 = hws.call(lambda: len(io.changes))
            asyncio.run_coroutine_threadsafe(io.vehicle(80), hws.loop).result(5)
            deadline = time.monotonic() + 15
            reds: list[float] = []
            while time.monotonic() < deadline:
                reds = hws.call(lambda: [d for c, d in io.changes[n0:] if c == "lamp_red"])
                if reds and reds[0] > 0 and reds[-1] == 0:
                    break
                time.sleep(0.1)
            if not (reds and reds[0] > 0 and reds[-1] == 0):
                print(col.wait_for(lambda t, pl, r, q: t == f"re/{DEV}/tele", 5))
            assert reds and reds[0] > 0 and reds[-1] == 0, (reds, hws.call(lambda: io.changes[-10:]), hw.inputs)
            # telemetry carries the beacon's fields and the clock offset
            tele = json.loads(col.wait_for(lambda t, pl, r, q: t == f"re/{DEV}/tele" and json.loads(pl).get("det") == 1,
                                           15)[1])
            assert tele["vis_m"] == 45 and tele["mode"] == "anti_rear_end" and tele["clock"]["src"] == "broker"
            # meter fault: safe mode and a report within two poll periods
            n = hws.call(lambda: meter.polls)
            hws.call(meter.set_flags, VM.EMITTER)
            ev = event_where("fault", what="meter")
            assert hws.call(lambda: meter.polls) - n <= 2 and ev["reason"] == "emitter"
            state_where(lambda s: s["reason"] == "safe" and s["mode"] == "guidance")
            hws.call(meter.set_flags, 0)
            event_where("fault_cleared", what="meter")
            # commands: forged, replayed, out of range change nothing; a good one applies
            assert send("section_alarm", {"on": True}, key=b"\x01" * 32)["code"] == "bad_mac"
            assert send("mode", {"mode": "contour", "ttl_s": 0})["code"] == "bad_args"
            assert send("thresholds", {"levels_m": [50, 100, 200, 500]})["code"] == "bad_args"
            # ... and changed nothing
            tele = json.loads(col.wait_for(lambda t, pl, r, q: t == f"re/{DEV}/tele"
                                           and json.loads(pl)["ctr"].get("cmd_bad_args") == 2, 15)[1])
            assert tele["mode"] == "anti_rear_end" and tele["level"] == 4 and tele["ctr"].get("cmd_ok", 0) == 0
            a = send("section_alarm", {"on": True})
            assert a["ok"] and a["detail"]["mode"] == "section_alarm", a
            assert send("section_alarm", {"on": False}, ctr_value=ctr[0])["code"] == "replay"

            def counted(t, pl, r, q):
                if t != f"re/{DEV}/tele":
                    return False
                c = json.loads(pl)["ctr"]
                return c.get("cmd_bad_mac") == 1 and c.get("cmd_bad_args") == 2 and c.get("cmd_replay") == 1
            tele = json.loads(col.wait_for(counted, 15)[1])
            assert tele["mode"] == "section_alarm" and tele["ctr"]["cmd_ok"] == 1
            ok = True
        finally:
            p.kill()
            out = p.console()
            if not ok:
                print(out[-5000:])
    assert "Traceback" not in out, out[-3000:]
