"""The console in a real headless Chromium: live markers, SOS, nearest-unit dispatch, sign control."""
from __future__ import annotations

import time

import pytest


from dispatch_support import location
from support.browser import login

from roadedge.core.auth import CommandAuth  # noqa: E402

def verify(keyring, dev: str, cmd: str, payload: bytes, tmp_path) -> dict:
    auth = CommandAuth(keyring.command_key(dev), dev, str(tmp_path / f"{dev}-{cmd}-ctr.json"))
    code, body = auth.check(cmd, payload, time.time())
    assert code == "ok", code
    assert body is not None
    return body


def next_operator_action(ops, keyring, tmp_path) -> dict:
    """The next operator action for zone z1, verified as the controller verifies it (the device command
    scheme with the operator key; the role travels inside, signed)."""
    _t, payload, _r, _q = ops.wait_for(lambda t, *_: t == "re/ctl/z1/op", timeout=5)
    auth = CommandAuth(keyring.operator_key, "ctl/z1", str(tmp_path / "op-ctr.json"))
    code, body = auth.check("op", payload, time.time())
    assert code == "ok", code
    return body["args"]


def test_console_live_map_sos_dispatch(console, publisher, collector_factory, mosquitto, keyring, browser, tmp_path):
    cmds = collector_factory(mosquitto.port, ["re/+/cmd/#"])
    now = time.time()
    # trk-a: south arm, 555 m from the incident in a straight line, ~4.5 km by road.
    # trk-b: north arm, ~670 m from it in a straight line and by road.
    publisher.send("owntracks/roadedge/trk-a", location(1, 30.3000, 120.0010, now))
    publisher.send("owntracks/roadedge/trk-b", location(1, 30.3050, 120.0080, now, cog=270))
    page, errors = login(console_browser := browser, console.url, "disp", "disp-pass-123")
    del console_browser

    # markers appear and move with new fixes
    page.wait_for_function("window.RE.units['trk-a'] && window.RE.units['trk-b']", timeout=5000)
    before = page.evaluate("window.RE.units['trk-a'].getLatLng().lng")
    publisher.send("owntracks/roadedge/trk-a", location(2, 30.3000, 120.0030, now + 5))
    page.wait_for_function("window.RE.units['trk-a'].getLatLng().lng > 120.0025", timeout=5000)
    assert before < 120.0015
    assert "trk-a" in page.inner_text("#unit-table")

    # SOS: banner with position within 1 s of publication
    # as the tracker sends it (firmware/lib/roadedge/tracker/app.py _sos_event)
    publisher.send("re/trk-b/event", {"seq": 50, "ts": time.time(), "type": "sos", "id": 7, "since": time.time(),
                                      "duty": "patrol", "lat": 30.3050, "lon": 120.0080})
    page.wait_for_selector('#sos-banner .sos-item[data-unit="trk-b"]', timeout=1000)
    assert "30.30500" in page.inner_text("#sos-banner")
    page.click('#sos-banner .sos-ack[data-unit="trk-b"]')
    topic, payload, _r, _q = cmds.wait_for(lambda t, *_: t == "re/trk-b/cmd/sos_ack", timeout=5)
    body = verify(keyring, "trk-b", "sos_ack", payload, tmp_path)
    assert body["args"] == {"id": 7, "by": "disp"}
    page.wait_for_selector("#sos-banner.hidden", state="attached", timeout=5000)

    # nearest-unit dispatch: create the incident on the map like a person does
    page.click("#new-incident")
    # look at the place first (as a person would); measure map and point in one go after layout settled
    # (the SOS banner just closed), so nothing moves the map under the click
    x, y = page.evaluate("""async () => {
        await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
        RE.map.stop(); RE.map.setView([30.3050, 120.0020], 16, {animate: false});
        const p = RE.map.latLngToContainerPoint([30.3050, 120.0010]);
        const b = document.getElementById("map").getBoundingClientRect();
        return [b.left + p.x, b.top + p.y]; }""")
    page.mouse.click(x, y)
    # the form, not browser pop-ups (issue 15)
    page.wait_for_selector("#incident-dialog[open]", timeout=5000)
    page.select_option("#incident-type", "collision")
    page.select_option("#incident-priority", "1")
    page.fill("#incident-text", "in fog")
    page.click("#incident-create")
    page.wait_for_selector("#rank-list li[data-unit]", timeout=5000)
    ranked = page.eval_on_selector_all("#rank-list li[data-unit]", "els => els.map(e => e.dataset.unit)")
    assert ranked[:2] == ["trk-b", "trk-a"], ranked  # by road, although trk-a is nearer in a straight line
    page.click('#rank-list li[data-unit="trk-b"] .dispatch-btn')
    topic, payload, _r, _q = cmds.wait_for(lambda t, *_: t == "re/trk-b/cmd/dispatch", timeout=5)
    body = verify(keyring, "trk-b", "dispatch", payload, tmp_path)
    args = body["args"]
    inc = console.store.incident(int(args["incident"]))
    assert (args["lat"], args["lon"]) == (inc["lat"], inc["lon"])
    assert abs(args["lat"] - 30.3050) < 2e-4 and abs(args["lon"] - 120.0010) < 2e-4  # where it was clicked
    assert args["prio"] == 1 and args["text"] == "collision: in fog" and args["incident"]
    page.wait_for_selector('#dispatch-list li[data-status="sent"]', timeout=5000)
    # the device acks, accepts, and rides to the scene
    publisher.send("re/trk-b/ack", {"seq": 51, "ts": time.time(), "cmd": "dispatch", "ctr": body["ctr"], "ok": True,
                                    "code": "ok"})
    publisher.send("re/trk-b/event", {"seq": 52, "ts": time.time(), "type": "dispatch_accept",
                                      "incident": args["incident"], "prio": 1})
    page.wait_for_selector('#dispatch-list li[data-status="accepted"]', timeout=5000)
    publisher.send("owntracks/roadedge/trk-b", location(2, 30.3050, 120.0012, now + 60))
    page.wait_for_selector('#dispatch-list li[data-status="on_scene"]', timeout=5000)

    # history: trk-a's track for the last hour, played back on the map
    page.select_option("#hist-unit", "trk-a")
    page.click("#hist-load")
    page.wait_for_selector("#hist-slider:not(.hidden)", timeout=5000)
    assert page.inner_text("#hist-info").endswith("1/2")
    page.click("#hist-play")
    page.wait_for_function("document.querySelector('#hist-info').textContent.endsWith('2/2')", timeout=5000)
    assert "format=gpx" in page.get_attribute("#hist-gpx", "href")

    # malformed input is counted and shown
    publisher.send("owntracks/roadedge/trk-a", b"{broken")
    page.wait_for_selector('#reject-table tr[data-reason="bad_json"]', timeout=5000)

    page.screenshot(path=str(tmp_path / "console.png"))
    assert not errors, errors


def test_only_a_supervisor_changes_a_sign_and_both_attempts_are_audited(console, publisher, collector_factory,
                                                                         mosquitto, browser, keyring, tmp_path):
    ops = collector_factory(mosquitto.port, ["re/ctl/+/op"])
    publisher.send("re/vsl-1/state", {"limit": 80, "source": "central", "legend": "", "check": "a1"}, retain=True)
    # the zone controller's retained view (host_tools/controller/policy.py ZonePolicy.snapshot)
    publisher.send("re/ctl/z1/state", {"zone": "z1", "mode": "approve", "ts": time.time(), "updates": 3, "closure": [],
                                       "signs": [{"id": "vsl-1", "km": 0.3, "vis_m": 150, "level": 1, "recommended": 60,
                                                  "pending": 60, "commanded": 80, "hold": None, "displayed": 80,
                                                  "legend": "", "source": "central", "check": 17, "closure": False,
                                                  "no_data": False, "approve_by": time.time() + 50}]}, retain=True)

    page, errors = login(browser, console.url, "disp", "disp-pass-123")
    page.wait_for_selector('.zone[data-zone="z1"] tr[data-sign="vsl-1"] .sign-op[data-action="approve"]', timeout=5000)
    page.click('.zone[data-zone="z1"] tr[data-sign="vsl-1"] .sign-op[data-action="approve"]')
    page.wait_for_selector("#toast:not(.hidden)", timeout=5000)
    assert "may not" in page.inner_text("#toast")
    page.wait_for_selector('#audit-table td.error', timeout=5000)

    sup, errors2 = login(browser, console.url, "sup", "sup-pass-1234")
    sup.wait_for_selector('.zone[data-zone="z1"] tr[data-sign="vsl-1"] .sign-op[data-action="approve"]', timeout=5000)
    # approve mode: the supervisor sees when the controller will apply the lower limit unattended
    assert sup.inner_text('.zone[data-zone="z1"] tr[data-sign="vsl-1"] .countdown').startswith("auto in ")
    sup.click('.zone[data-zone="z1"] tr[data-sign="vsl-1"] .sign-op[data-action="approve"]')
    op = next_operator_action(ops, keyring, tmp_path)
    assert (op["action"], op["sign"], op["user"], op["role"]) == ("approve", "vsl-1", "sup", "supervisor")
    with pytest.raises(TimeoutError):  # the dispatcher's attempt never reached the controller
        ops.wait_for(lambda t, *_: t == "re/ctl/z1/op", timeout=0.5)

    audit = [(a["user"], a["action"], a["result"]) for a in console.store.audit() if a["action"] == "sign_op"]
    assert ("disp", "sign_op", "refused: role dispatcher may not sign_op") in audit
    assert ("sup", "sign_op", "sent to controller") in audit
    sup.screenshot(path="/tmp/dispatch-console-signs.png")
    assert not errors and not errors2


def test_a_supervisors_manual_limit_offers_only_lawful_choices_and_is_signed_with_its_reason(
        console, publisher, collector_factory, mosquitto, browser, keyring, tmp_path):
    """Set… opens a form, not browser pop-ups: what Art. 81 forbids at the sign's visibility cannot be
    chosen, the mode the controller needs is said up front, a reason is required, and what is sent is the
    signed operator action the controller verifies."""
    ops = collector_factory(mosquitto.port, ["re/ctl/+/op"])

    def zone_state(mode: str) -> dict:
        return {"zone": "z1", "mode": mode, "ts": time.time(), "updates": 3, "closure": [],
                "signs": [{"id": "vsl-1", "km": 0.3, "vis_m": 80, "level": 2, "recommended": 40, "pending": None,
                           "commanded": 40, "hold": None, "displayed": 40, "legend": "FOG", "source": "central",
                           "check": 17, "closure": False, "no_data": False}]}

    publisher.send("re/ctl/z1/state", zone_state("approve"), retain=True)
    sup, errors = login(browser, console.url, "sup", "sup-pass-1234")
    dialogs: list[str] = []
    sup.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    set_button = '.zone[data-zone="z1"] tr[data-sign="vsl-1"] .sign-op[data-action="manual"]'
    sup.click(set_button)
    sup.wait_for_selector("#sign-dialog[open]", timeout=5000)
    assert "manual mode" in sup.inner_text("#sign-form-mode")
    sup.click("#sign-form-cancel")
    sup.wait_for_selector("#sign-dialog:not([open])", state="attached", timeout=5000)

    publisher.send("re/ctl/z1/state", zone_state("manual"), retain=True)
    sup.wait_for_function("RE.ctl.z1 && RE.ctl.z1.mode === 'manual'", timeout=5000)
    sup.click(set_button)
    sup.wait_for_selector("#sign-dialog[open]", timeout=5000)
    assert sup.inner_text("#sign-form-mode") == ""
    assert "Art. 81 allows at most 40 km/h" in sup.inner_text("#sign-form-law")
    offered = sup.evaluate("[...document.querySelectorAll('#sign-limit option')].map(o => [+o.value, o.disabled])")
    assert [v for v, off in offered if not off] == [20, 30, 40]
    assert [v for v, off in offered if off] == list(range(50, 130, 10))
    assert sup.input_value("#sign-limit") == "40"  # the highest lawful one
    sup.select_option("#sign-limit", "30")
    sup.click("#sign-set")  # no reason yet: refused in the form, nothing sent
    assert sup.evaluate("document.querySelector('#sign-dialog').open")
    with pytest.raises(TimeoutError):
        ops.wait_for(lambda t, *_: t == "re/ctl/z1/op", timeout=0.5)
    sup.fill("#sign-reason", "crash barrier repair at km 0.4")
    sup.screenshot(path=str(tmp_path / "sign-dialog.png"))
    sup.click("#sign-set")
    op = next_operator_action(ops, keyring, tmp_path)
    assert (op["action"], op["sign"], op["limit"], op["reason"], op["user"], op["role"]) == \
        ("manual", "vsl-1", 30, "crash barrier repair at km 0.4", "sup", "supervisor")
    sup.wait_for_selector("#sign-dialog:not([open])", state="attached", timeout=5000)
    assert not dialogs, dialogs  # no prompt()/alert() on the way
    assert not errors, errors


def _nested(depth: int):
    v: object = 1
    for _ in range(depth):
        v = {"a": v}
    return v


def test_garbage_from_devices_leaves_the_page_live_and_a_new_sos_shown(console, publisher, browser):
    """Any device may claim a role and publish any JSON: none of it may stop the page (issue 17)."""
    now = time.time()
    publisher.send("owntracks/roadedge/trk-a", location(1, 30.3000, 120.0010, now))
    # a "sign" whose own state puts it at lat "x"; a "tracker" at lat 1e308; NaN and a 600-level telemetry
    publisher.send("re/evil-1/info", {"role": "sign", "fw": "x"}, retain=True)
    publisher.send("re/evil-1/state", {"lat": "x", "lon": 120.0, "displayed": {"deep": _nested(50)}}, retain=True)
    publisher.send("re/evil-2/info", {"role": "beacon"}, retain=True)
    publisher.send("re/evil-2/state", b'{"lat": NaN, "lon": Infinity, "vis": -Infinity, "mode": "guidance"}',
                   retain=True)
    publisher.send("re/evil-3/info", {"role": "tracker"}, retain=True)
    publisher.send("re/evil-3/state", {"lat": 1e308, "lon": [1, 2], "batt": "x" * 5000}, retain=True)
    publisher.send("re/evil-3/tele", {"seq": 1, "deep": _nested(600)})
    publisher.send("re/evil-3/event", {"seq": 2, "type": "sos", "id": 1, "lat": "x", "lon": None})
    publisher.send("re/ctl/zx/state", {"zone": "zx", "mode": "approve", "signs": [None, 7, {"id": "s", "pending": {}}]},
                   retain=True)
    assert console.ingest.wait_idle(10)

    page, errors = login(browser, console.url, "disp", "disp-pass-123")  # waits for the snapshot and live updates
    page.wait_for_function("window.RE.units['trk-a']", timeout=5000)
    assert page.evaluate("Object.keys(window.RE.signs).includes('evil-1')")  # listed, just not placed on the map
    page.wait_for_selector('#sos-banner .sos-item[data-unit="evil-3"]', timeout=5000)
    assert "unknown position" in page.inner_text('#sos-banner .sos-item[data-unit="evil-3"]')

    # more garbage while the page is open, then a real SOS: it must still come up, and positions still move
    publisher.send("re/evil-1/state", {"lat": {"x": 1}, "lon": "y", "displayed": _nested(700)}, retain=True)
    publisher.send("re/evil-4/info", {"role": "sign"}, retain=True)
    publisher.send("re/evil-4/state", {"lat": -1e400, "lon": 200}, retain=True)
    publisher.send("re/trk-b/event", {"seq": 50, "ts": time.time(), "type": "sos", "id": 7, "since": time.time(),
                                      "duty": "patrol", "lat": 30.3050, "lon": 120.0080})
    page.wait_for_selector('#sos-banner .sos-item[data-unit="trk-b"]', timeout=5000)
    assert "30.30500" in page.inner_text("#sos-banner")
    publisher.send("owntracks/roadedge/trk-a", location(2, 30.3000, 120.0030, now + 5))
    page.wait_for_function("window.RE.units['trk-a'].getLatLng().lng > 120.0025", timeout=5000)
    assert page.evaluate("window.RE.live") is True

    snap = page.evaluate("fetch('/api/snapshot').then(r => r.json())")
    sign = next(s for s in snap["signs"] if s["id"] == "evil-1")
    assert sign["lat"] is None and sign["lon"] is None
    cleaned = snap["stats"]["cleaned"]
    assert cleaned.get("bad_position", 0) >= 2 and cleaned.get("not_finite", 0) >= 1 and cleaned.get("too_deep", 0) >= 1, cleaned
    assert not errors, errors
