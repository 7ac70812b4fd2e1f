"""The console with a real tracker: the firmware (CPython runtime) with its virtual GNSS receiver and
buttons served by sim.hw, against Mosquitto. Its marker moves; the rider's SOS shows; the dispatcher's
acknowledgement clears the latch on the device; a dispatch is delivered and accepted with the button."""
from __future__ import annotations

import asyncio
import json
import time

from support.browser import login

from sim.device_process import DeviceProcess, device_config, make_device_dir
from sim.hw import HardwareServerThread
from sim.peripherals import gnss
from sim.peripherals.tracker_io import TrackerIO

DEV = "trk-c"
PINS = {"sos_button": 2, "accept_button": 3, "ignition": 6, "battery": 28, "led": 25, "buzzer": 15}
UARTS = {"gnss": {"id": 1, "baud": 38400, "tx": 4, "rx": 5}}

def test_real_tracker_moves_raises_sos_gets_ack_and_dispatch(console, mosquitto, keyring, collector_factory,
                                                              browser, tmp_path):
    events = collector_factory(mosquitto.port, [f"re/{DEV}/event", f"re/{DEV}/state"])
    route = gnss.PatrolRoute(lat0=30.3025, lon0=120.0100, duration_s=900, seed=3)
    rx = gnss.GnssModule(route.truth, style="ublox", rate_hz=1, start_unix=time.time(), noise_m=1.0, seed=1)
    stop = asyncio.Event()
    p = None
    with HardwareServerThread() as hws:
        hw = hws.device(DEV)
        io = hws.call(lambda: TrackerIO(hw, battery_v=4.0))
        hws.call(lambda: hws.loop.create_task(rx.run(hw, "gnss", stop=stop)))
        cfg = device_config({
            "id": DEV, "board": "sim", "role": "tracker", "broker": {"url": "", "keepalive": 5},
            "command_key": keyring.command_key(DEV).hex(), "pins": PINS, "uarts": UARTS, "device": {"tele_s": 5},
            "tracker": {"tid": "TC", "min_period_s": 1, "max_period_s": 2, "long_press_ms": 1000, "batt_s": 5,
                        "state_s": 5, "store_records": 200, "seg_bytes": 2048},
        }, mosquitto.url, hws.addr)
        p = DeviceProcess(make_device_dir(tmp_path / "devices", cfg, fresh=True), "cpython", heap=None).start()
        try:
            page, errors = login(browser, console.url, "disp", "disp-pass-123")
            page.wait_for_function(f"window.RE.units['{DEV}'] !== undefined", timeout=30000)
            first = page.evaluate(f"(() => {{ const p = RE.units['{DEV}'].getLatLng(); return [p.lat, p.lng]; }})()")
            page.wait_for_function(
                f"(() => {{ const p = RE.units['{DEV}'].getLatLng(); return p.lat !== {first[0]} || p.lng !== {first[1]}; }})()",
                timeout=30000)

            asyncio.run_coroutine_threadsafe(io.sos(1.6), hws.loop).result(10)
            events.wait_for(lambda t, pl, *_: t.endswith("/event") and json.loads(pl)["type"] == "sos", 20)
            page.wait_for_selector(f'#sos-banner .sos-item[data-unit="{DEV}"]', timeout=5000)
            page.click(f'#sos-banner .sos-ack[data-unit="{DEV}"]')
            _t, pl, *_ = events.wait_for(lambda t, pl, *_: t.endswith("/event") and json.loads(pl)["type"] == "sos_ack", 20)
            assert json.loads(pl)["by"] == "disp"
            events.wait_for(lambda t, pl, *_: t.endswith("/state") and not json.loads(pl)["sos"]["latched"], 20)

            # dispatch the tracker to an incident where it is; the rider accepts on the bike
            here = page.evaluate(f"(() => {{ const p = RE.units['{DEV}'].getLatLng(); return [p.lat, p.lng]; }})()")
            page.evaluate(f"RE.createIncident({here[0] + 0.002}, {here[1]}, 2, 'breakdown')")
            page.wait_for_selector(f'#rank-list li[data-unit="{DEV}"]', timeout=10000)
            page.click(f'#rank-list li[data-unit="{DEV}"] .dispatch-btn')
            page.wait_for_selector('#dispatch-list li[data-status="delivered"]', timeout=20000)
            events.wait_for(lambda t, pl, *_: t.endswith("/state") and json.loads(pl)["incident"] is not None, 20)
            # a firm 1 s press: a short one can fall between two polls of a busy device process
            asyncio.run_coroutine_threadsafe(io.press("accept_button", 1.0), hws.loop).result(10)
            page.wait_for_selector('#dispatch-list li[data-status="accepted"]', timeout=20000)
            assert not errors, errors
        finally:
            hws.call(stop.set)
            if p is not None:
                p.kill()
                print("DEVICE CONSOLE", p.console()[-3000:])
