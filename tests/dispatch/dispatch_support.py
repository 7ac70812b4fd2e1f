"""Helpers shared by the dispatch tests (imported by module name: tests have no packages)."""
from __future__ import annotations

import asyncio
import json
import secrets
import time
from contextlib import contextmanager

import paho.mqtt.client as mqtt
from support.browser import login


# A U-shaped road: two 2 km arms ~555 m apart joined at the east end, plus a local road.
# An incident at the west end of the north arm is near a unit on the south arm in a straight
# line but ~4.5 km away by road.
U_ROAD = {
    "name": "u-test", "origin": {"lat": 30.30, "lon": 120.0},
    "roads": [
        {"id": "U", "name": "U loop", "kind": "expressway", "speed_kmh": 80, "oneway": False,
         "points": [[30.300, 120.000], [30.300, 120.020], [30.305, 120.020], [30.305, 120.000]]},
    ],
    "sections": [{"id": "F1", "road": "U", "from_km": 0.5, "to_km": 1.5}],
    "devices": {"beacons": {"spacing_m": 100, "sides": ["R"]},
                "signs": [{"id": "vsl-1", "road": "U", "km": 0.3, "section": "F1"}],
                "trackers": [{"id": "trk-a", "route": [{"road": "U", "from_km": 0, "to_km": 1}]},
                             {"id": "trk-b", "route": [{"road": "U", "from_km": 3, "to_km": 4}]}]},
}


class Publisher:
    def __init__(self, port: int) -> None:
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-pub-{secrets.token_hex(3)}")
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def send(self, topic: str, payload, qos: int = 1, retain: bool = False) -> None:
        if not isinstance(payload, (bytes, str)):
            payload = json.dumps(payload)
        self.c.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def location(seq: int, lat: float, lon: float, tst: float, vel: float = 40.0, cog: float = 90.0, **kw) -> dict:
    return {"_type": "location", "lat": lat, "lon": lon, "tst": tst, "vel": vel, "cog": cog, "acc": 5, "seq": seq,
            "sat": 9, "hdop": 0.9, "fix": 3, "live": True, "tid": "tk", **kw}


# Notification is the browser's own; the probe only records what the page asked it to show
NOTIFICATION_PROBE = """
(() => {
  const Real = window.Notification;
  if (!Real) return;
  window.__notes = [];
  function Probe(title, opts) { window.__notes.push({ title, body: opts && opts.body, tag: opts && opts.tag }); return new Real(title, opts); }
  Object.defineProperty(Probe, "permission", { get: () => Real.permission });
  Probe.requestPermission = (...a) => Real.requestPermission(...a);
  window.Notification = Probe;
})();
"""


def open_console(browser, url: str, user: str, password: str):
    page, errors = login(browser, url, user, password, NOTIFICATION_PROBE, permissions=["notifications"])
    page.wait_for_function("window.REEvents && window.REEvents.ready === true", timeout=10000)
    return page, errors


TRACKER_PINS = {"sos_button": 2, "accept_button": 3, "ignition": 6, "battery": 28, "led": 25, "buzzer": 15}
TRACKER_UARTS = {"gnss": {"id": 1, "baud": 38400, "tx": 4, "rx": 5}}


@contextmanager
def real_tracker(broker_url: str, command_key: bytes, workdir, dev: str = "trk-c", truth=None,
                 noise_m: float = 1.0, seed: int = 1, **tracker):
    """The tracker firmware (CPython runtime) on a patrol route (or `truth`, t -> position), its GNSS receiver,
    battery and buttons served by sim.hw: yields (TrackerIO, HardwareServerThread, DeviceProcess). The device's
    console is printed after."""
    from sim.device_process import DeviceProcess, device_config, make_device_dir
    from sim.hw import HardwareServerThread
    from sim.peripherals import gnss
    from sim.peripherals.tracker_io import TrackerIO

    if truth is None:
        truth = gnss.PatrolRoute(lat0=30.3025, lon0=120.0100, duration_s=900, seed=3).truth
    rx = gnss.GnssModule(truth, style="ublox", rate_hz=1, start_unix=time.time(), noise_m=noise_m, seed=seed)
    stop = asyncio.Event()
    p = None
    with HardwareServerThread() as hws:
        hw = hws.device(dev)
        io = hws.call(lambda: TrackerIO(hw, battery_v=4.0))
        hws.call(lambda: hws.loop.create_task(rx.run(hw, "gnss", stop=stop)))
        cfg = device_config({
            "id": dev, "board": "sim", "role": "tracker", "broker": {"url": "", "keepalive": 5},
            "command_key": command_key.hex(), "pins": TRACKER_PINS, "uarts": TRACKER_UARTS, "device": {"tele_s": 5},
            "tracker": {"tid": "TC", "min_period_s": 1, "max_period_s": 2, "long_press_ms": 1000, "batt_s": 5,
                        "state_s": 5, "store_records": 200, "seg_bytes": 2048, **tracker},
        }, broker_url, hws.addr)
        p = DeviceProcess(make_device_dir(workdir / "devices", cfg, fresh=True), "cpython", heap=None).start()
        try:
            yield io, hws, p
        finally:
            hws.call(stop.set)
            p.kill()
            print("DEVICE CONSOLE", p.console()[-3000:])
