"""Issue 15 acceptance, in a headless Chromium with a real tracker: the firmware (CPython runtime) with its
virtual GNSS receiver and buttons (sim.hw), against Mosquitto. The dispatcher places an incident through
the form (clicking on a unit's label: the placement still lands), sends the tracker; the bike acks, the
rider presses accept and rides to the scene, the firmware reports on scene; the dispatcher closes the
incident with a summary and the tracker returns to patrol. Every step on the map and in the timeline; the
unit is not offered while busy."""
from __future__ import annotations

import asyncio
import json
import math
import time

from dispatch_support import location, real_tracker
from support.browser import login

from sim.peripherals import gnss

DEV = "trk-c"
HOME = (30.3000, 120.0130)  # on the U's south arm (tests/dispatch/dispatch_support.py), ~400 m east of trk-a


class Rider:
    """Waits at HOME with the engine idling; after go(lon) rides west along the south arm at 24 m/s (86 km/h)
    and stops at lon (the scene)."""

    def __init__(self) -> None:
        self.t, self.t_go, self.to_lon = 0.0, None, HOME[1]

    def go(self, lon: float) -> None:
        self.t_go, self.to_lon = self.t, lon

    def truth(self, t: float) -> gnss.Truth:
        self.t = t
        k = math.cos(math.radians(HOME[0]))
        total = abs(HOME[1] - self.to_lon) * math.pi / 180 * 6371008.8 * k
        ridden = 0.0 if self.t_go is None else min(total, 24.0 * (t - self.t_go))
        f = ridden / total if total else 1.0
        moving = self.t_go is not None and ridden < total
        return gnss.Truth(HOME[0], HOME[1] + (self.to_lon - HOME[1]) * f, 24.0 if moving else 0.0, 270.0)


def status_of(page, unit: str) -> str:
    return page.evaluate(f"(document.querySelector('.unit-marker .arrow[data-unit=\"{unit}\"]') || {{}}).dataset"
                         f"?.status")


def test_incident_from_the_form_to_its_summary_with_a_real_tracker(console, mosquitto, keyring, publisher,
                                                                   collector_factory, browser, tmp_path):
    states = collector_factory(mosquitto.port, [f"re/{DEV}/state"])
    rider = Rider()
    # trk-a is offline, parked just west of the tracker: its marker and label lie where the incident is
    publisher.send("owntracks/roadedge/trk-a", location(1, 30.3000, 120.0085, time.time(), vel=0))
    publisher.send("re/trk-a/status", "offline", retain=True)
    with real_tracker(mosquitto.url, keyring.command_key(DEV), tmp_path, DEV, truth=rider.truth, noise_m=0.5,
                      seed=2) as (io, hws, p):
        page, errors = login(browser, console.url, "disp", "disp-pass-123")
        page.wait_for_function(f"window.RE.units['{DEV}'] && window.RE.units['trk-a']", timeout=60000)
        page.wait_for_function("(RE.devices['trk-a'] || {}).unit_status === 'offline'", timeout=10000)
        page.evaluate("RE.map.stop(); RE.map.setView([30.3000, 120.0100], 16, {animate: false})")
        page.wait_for_selector('.unit-marker .lbl[data-id="trk-a"]', state="visible", timeout=5000)

        # armed, then cancelled with Esc: a click on the map places nothing
        page.click("#new-incident")
        page.wait_for_selector("#incident-placing:not(.hidden)", timeout=5000)
        page.keyboard.press("Escape")
        page.wait_for_selector("#incident-placing.hidden", state="attached", timeout=5000)
        box = page.locator("#map").bounding_box()
        page.mouse.click(box["x"] + 80, box["y"] + box["height"] - 80)
        assert not page.evaluate("document.getElementById('incident-dialog').open")
        # armed again, the form opened and cancelled: nothing is created
        page.click("#new-incident")
        page.mouse.click(box["x"] + 80, box["y"] + box["height"] - 80)
        page.wait_for_selector("#incident-dialog[open]", timeout=5000)
        page.click("#incident-form-cancel")
        assert not page.evaluate("document.getElementById('incident-dialog').open")
        assert console.store.incidents() == []

        # placed on top of trk-a's label: the label does not swallow the click
        page.click("#new-incident")
        lbl = page.locator('.unit-marker .lbl[data-id="trk-a"]').bounding_box()
        x, y = lbl["x"] + lbl["width"] / 2, lbl["y"] + lbl["height"] / 2
        want = page.evaluate(f"""(() => {{ const b = document.getElementById('map').getBoundingClientRect();
            const ll = RE.map.containerPointToLatLng([{x} - b.left, {y} - b.top]); return [ll.lat, ll.lng]; }})()""")
        page.mouse.click(x, y)
        page.wait_for_selector("#incident-dialog[open]", timeout=5000)
        page.select_option("#incident-type", "collision")
        page.select_option("#incident-priority", "1")
        page.select_option("#incident-direction", "decreasing_km")
        page.check('.incident-lane[value="lane_1"]')
        page.fill("#incident-text", "two cars, debris on lane 1")
        page.click("#incident-create")
        page.wait_for_selector("#incident-detail:not(.hidden)", timeout=5000)
        inc = console.store.incidents()[0]
        iid = inc["id"]
        # where clicked, to a pixel or two (the click lands on whole pixels); not at the unit under the label,
        # which is ~20 px (4e-4 deg) away
        assert abs(inc["lat"] - want[0]) < 5e-5 and abs(inc["lon"] - want[1]) < 5e-5, (inc, want)
        assert (inc["type"], inc["priority"], inc["direction"], json.loads(inc["lanes"])) == \
            ("collision", 1, "decreasing_km", ["lane_1"])
        page.wait_for_selector(f'#incident-list li[data-id="{iid}"]', timeout=5000)
        assert page.evaluate(f"!!RE.incidents[{iid}]._m")  # on the map
        page.wait_for_selector('#incident-timeline li[data-what="created"]', timeout=5000)

        # the offline unit is not offered; the tracker is
        page.wait_for_selector(f'#rank-list li[data-unit="{DEV}"]', timeout=10000)
        assert page.locator('#rank-list li[data-unit="trk-a"]').count() == 0
        page.click(f'#rank-list li[data-unit="{DEV}"] .dispatch-btn')
        page.wait_for_selector(f'#incident-units li[data-unit="{DEV}"][data-status="delivered"]', timeout=30000)
        page.wait_for_selector('#incident-timeline li[data-what="delivered"]', timeout=5000)
        # busy: gone from the ranking at once, its marker and line show the step
        page.wait_for_selector(f'#rank-list li[data-unit="{DEV}"]', state="detached", timeout=10000)
        assert status_of(page, DEV) in ("sent", "delivered")
        assert page.evaluate("Object.values(RE.incidentLines).length") == 1
        assert "delivered" in page.inner_text(f'#unit-table tr[data-unit="{DEV}"] .unit-status')

        # the rider reads the dispatch off the bike and presses accept
        states.wait_for(lambda t, pl, *_: json.loads(pl).get("incident") is not None, 30)
        asyncio.run_coroutine_threadsafe(io.press("accept_button", 1.0), hws.loop).result(10)
        page.wait_for_selector('#incident-timeline li[data-what="accepted"]', timeout=30000)
        rider.go(inc["lon"])
        page.wait_for_selector(f'#incident-units li[data-unit="{DEV}"][data-status="en_route"]', timeout=30000)
        assert "ETA" in page.inner_text(f'#incident-units li[data-unit="{DEV}"]')
        page.wait_for_selector('#incident-timeline li[data-what="en_route"]', timeout=5000)
        page.wait_for_function(f"(document.querySelector('.unit-marker .arrow[data-unit=\"{DEV}\"]') || "
                               "{dataset: {}}).dataset.status === 'en_route'", timeout=10000)
        page.wait_for_selector(f'#incident-units li[data-unit="{DEV}"][data-status="on_scene"]', timeout=90000)
        page.wait_for_selector('#incident-timeline li[data-what="on_scene"]', timeout=5000)
        page.wait_for_function(f"document.querySelector('.unit-marker .arrow[data-unit=\"{DEV}\"]')"
                               ".dataset.status === 'on_scene'", timeout=10000)
        page.wait_for_function("Object.values(RE.incidentLines).some(l => l.status === 'on_scene')", timeout=5000)
        assert page.evaluate(f"RE.incidents[{iid}]._m.getElement().classList.contains('inc-covered')")
        # the firmware itself said so: its duty is on_scene
        states.wait_for(lambda t, pl, *_: json.loads(pl).get("duty") == "on_scene", 60)

        # close with a summary: the unit is cleared, the tracker back on patrol and offered again
        page.fill("#incident-summary", "two cars, no injuries; towed; lane 1 open again")
        page.click("#incident-close-btn")
        page.wait_for_selector('#incident-detail[data-status="closed"]', timeout=10000)
        page.wait_for_selector('#incident-timeline li[data-what="cleared"]', timeout=5000)
        page.wait_for_selector('#incident-timeline li[data-what="closed"]', timeout=5000)
        assert "lane 1 open again" in page.inner_text("#incident-closed")
        page.wait_for_selector(f'#incident-closed-list li[data-id="{iid}"]', state="attached", timeout=5000)
        page.wait_for_selector(f'#incident-list li[data-id="{iid}"]', state="detached", timeout=5000)
        assert page.evaluate(f"!RE.incidents[{iid}]._m && Object.values(RE.incidentLines).length === 0")
        states.wait_for(lambda t, pl, *_: json.loads(pl).get("duty") == "patrol" and
                        json.loads(pl).get("incident") is None, 30)
        page.wait_for_function(f"document.querySelector('.unit-marker .arrow[data-unit=\"{DEV}\"]')"
                               ".dataset.status === 'patrol'", timeout=10000)
        steps = page.eval_on_selector_all("#incident-timeline li", "els => els.map(e => e.dataset.what)")
        assert steps == ["created", "sent", "delivered", "accepted", "en_route", "on_scene", "cleared", "closed"]
        page.evaluate(f"RE.createIncident({HOME[0]}, {HOME[1] - 0.002}, 3, 'debris')")
        page.wait_for_selector(f'#rank-list li[data-unit="{DEV}"]', timeout=10000)

        audit = {(a["user"], a["action"], a["result"]) for a in page.evaluate(
            "fetch('/api/audit').then(r => r.json())")}
        for want_a in [("disp", "incident_create", "ok"), ("disp", "dispatch", "sent"),
                       ("disp", "dispatch_clear", "sent"), ("disp", "incident_close", "ok")]:
            assert want_a in audit, want_a
        page.screenshot(path="/tmp/dispatch-console-incident.png")
        assert not errors, errors


def test_incidents_raised_from_an_sos_and_from_a_fog_section(console, publisher, browser):
    now = time.time()
    publisher.send("owntracks/roadedge/trk-a", location(1, 30.3000, 120.0010, now))
    publisher.send("owntracks/roadedge/trk-b", location(1, 30.3050, 120.0080, now, cog=270))
    beacons = [b.id for b in console.console.sc.beacons][:3]
    for b in beacons:  # thick fog over the first beacons of section F1
        publisher.send(f"re/{b}/state", {"mode": "guidance", "vis_m": 80}, retain=True)
    page, errors = login(browser, console.url, "disp", "disp-pass-123")
    page.wait_for_function("window.RE.units['trk-b']", timeout=10000)

    # the rider's SOS: the banner offers an incident at the rider's position, priority 1
    publisher.send("re/trk-b/event", {"seq": 50, "ts": time.time(), "type": "sos", "id": 7, "since": time.time(),
                                      "duty": "patrol", "lat": 30.3050, "lon": 120.0080})
    page.wait_for_function("(RE.devices['trk-b'] || {}).unit_status === 'sos'", timeout=10000)
    page.click('#sos-banner .sos-incident[data-unit="trk-b"]')
    page.wait_for_selector("#incident-dialog[open]", timeout=5000)
    assert page.input_value("#incident-type") == "rider_sos" and page.input_value("#incident-priority") == "1"
    page.click("#incident-create")
    page.wait_for_selector('#incident-timeline li[data-what="created"]', timeout=5000)
    inc = console.store.incidents()[0]
    assert (inc["source"], inc["lat"], inc["lon"]) == ("sos:trk-b", 30.3050, 120.0080)
    # the rider in distress is not offered for their own incident
    page.wait_for_selector('#rank-list li[data-unit="trk-a"]', timeout=10000)
    assert page.locator('#rank-list li[data-unit="trk-b"]').count() == 0
    page.click('#sos-banner .sos-ack[data-unit="trk-b"]')
    page.wait_for_selector('#incident-timeline li[data-what="sos_acknowledged"]', timeout=10000)
    page.wait_for_function("(RE.devices['trk-b'] || {}).unit_status === 'patrol'", timeout=10000)

    # a fog band on the map: clicked, it offers an incident there
    page.wait_for_function("RE.layers.fog.getLayers().length > 0", timeout=10000)
    page.evaluate("""(() => { const band = RE.layers.fog.getLayers()[0];
        band.fire('click', {latlng: band.getLatLngs()[1]}); })()""")
    page.click(".fog-incident")
    page.wait_for_selector("#incident-dialog[open]", timeout=5000)
    assert page.input_value("#incident-type") == "fog" and "visibility down to 80 m" in page.input_value("#incident-text")
    page.click("#incident-create")
    page.wait_for_function("Object.keys(RE.incidents).length === 2", timeout=5000)
    assert console.store.incidents()[0]["source"].startswith("alarm:fog:")
    assert not errors, errors
