"""Alarms from a real tracker: the firmware (CPython runtime) with its virtual GNSS receiver, battery and
buttons served by sim.hw, against Mosquitto and the console's ingest. Its battery runs low, the rider
presses SOS, the dispatcher acknowledges from the alarm list (the latch clears on the device, so the
alarm clears), and the board loses power (the broker's last will: offline)."""
from __future__ import annotations

import asyncio
import json

from dispatch_support import open_console, real_tracker

DEV = "trk-c"


def test_real_tracker_low_battery_sos_and_power_cut_are_alarms(console, mosquitto, keyring, collector_factory,
                                                                browser, tmp_path):
    seen = collector_factory(mosquitto.port, [f"re/{DEV}/event", f"re/{DEV}/state"])
    with real_tracker(mosquitto.url, keyring.command_key(DEV), tmp_path, DEV, batt_s=2) as (io, hws, p):
        try:
            page, errors = open_console(browser, console.url, "disp", "disp-pass-123")
            page.wait_for_function(f"window.RE.units['{DEV}'] !== undefined", timeout=30000)

            # the backup battery runs down: the tracker's own reading (ADC -> percent) raises the alarm
            hws.call(lambda: io.battery(3.65))
            page.wait_for_selector(f'#alarm-list li.alarm[data-type="low_battery"][data-device="{DEV}"]', timeout=30000)

            asyncio.run_coroutine_threadsafe(io.sos(1.6), hws.loop).result(10)
            page.wait_for_selector(f'#alarm-list li.alarm[data-type="sos"][data-device="{DEV}"]', timeout=20000)
            page.wait_for_function("window.__notes.some(n => n.body.startsWith('SOS from trk-c'))", timeout=15000)
            page.click(f'#alarm-list li.alarm[data-type="sos"][data-device="{DEV}"] .alarm-ack')
            _t, pl, *_ = seen.wait_for(lambda t, pl, *_: t.endswith("/event") and json.loads(pl)["type"] == "sos_ack",
                                       40)
            assert json.loads(pl)["by"] == "disp"  # the rider's terminal got our acknowledgement
            # acknowledged and cleared on the device: it leaves the list, its life stays in the log
            page.wait_for_selector(f'#alarm-list li.alarm[data-type="sos"][data-device="{DEV}"]', state="detached",
                                   timeout=20000)
            sos = console.events.log.query(type_="sos", device=DEV, limit=20)["events"]
            assert [e["phase"] for e in reversed(sos)] == ["raise", "ack", "clear"], sos
            assert "received the acknowledgement" in sos[0]["text"]
            assert [a["user"] for a in console.store.audit() if a["action"] == "alarm_ack"] == ["disp"]
            assert page.evaluate("window.__notes.some(n => n.title === 'roadedge: Low battery')")

            # a power cut: the broker's last will marks it offline
            p.kill()
            page.wait_for_selector(f'#alarm-list li.alarm[data-type="offline"][data-device="{DEV}"]', timeout=30000)
            page.wait_for_function("window.__notes.some(n => n.title === 'roadedge: Device offline')", timeout=15000)
            assert not errors, errors
        finally:
            print("AUDIT", [(a["action"], a["result"]) for a in console.store.audit(20)])
            print("LOG", [(e["type"], e["phase"], e["text"]) for e in console.events.log.query(limit=30)["events"]])
