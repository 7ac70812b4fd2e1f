"""The console with a real tracker: the firmware (CPython runtime) with its virtual GNSS receiver and
buttons served by sim.hw, against Mosquitto. Its marker moves; the rider's SOS shows; the dispatcher's
acknowledgement clears the latch on the device; a dispatch is delivered and accepted with the button."""
from __future__ import annotations

import asyncio
import json

from dispatch_support import real_tracker
from support.browser import login

DEV = "trk-c"


def test_real_tracker_moves_raises_sos_gets_ack_and_dispatch(console, mosquitto, keyring, collector_factory,
                                                              browser, tmp_path):
    events = collector_factory(mosquitto.port, [f"re/{DEV}/event", f"re/{DEV}/state"])
    with real_tracker(mosquitto.url, keyring.command_key(DEV), tmp_path, DEV) as (io, hws, p):
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
