"""Alarms and the event log in a real headless Chromium: devices speak through real Mosquitto and ingest,
every alarm type comes up in the list, the log and as a desktop notification, and each is acknowledged
by a dispatcher with an audit entry (an SOS acknowledgement reaches the rider, signed)."""
from __future__ import annotations

import time

from dispatch_support import location, open_console

from host_tools.dispatch.alarms import TYPES as RULE_TYPES
from host_tools.dispatch.alarms import AlarmConfig
from roadedge.core.auth import CommandAuth

def beacon_ids(console) -> list[str]:
    return sorted(console.console.beacon_pos)


def test_every_alarm_type_is_logged_notified_and_acknowledged(console, publisher, collector_factory, mosquitto,
                                                             keyring, browser, tmp_path):
    # the deployment's defaults wait 5-60 s before an alarm (one stray fix must not alarm); here 1 s
    console.events.rules.cfg = AlarmConfig(hold_s={t: 1.0 for t in RULE_TYPES}, clear_s={t: 1.0 for t in RULE_TYPES},
                                           coverage_every_s=1.0)
    cmds = collector_factory(mosquitto.port, ["re/+/cmd/#"])
    page, errors = open_console(browser, console.url, "disp", "disp-pass-123")
    assert page.evaluate("Notification.permission") == "granted"

    now = time.time()
    sign_km = console.console.sign_pos["vsl-1"]
    pl = console.console.sc.roads[sign_km.road]
    lat, lon = pl.latlon_at_km(1.0)  # inside fog section F1 (0.5-1.5 km), 700 m past the sign
    # the sign: first what the controller set, then a power cut's fail-safe message, then 60 with its own meter at 45 m
    publisher.send("re/vsl-1/info", {"role": "sign"}, retain=True)
    publisher.send("re/vsl-1/state", {"limit": 80, "source": "central", "legend": "", "comm": "ok"}, retain=True)
    publisher.send("re/vsl-1/state", {"limit": None, "source": "powerRecovery", "comm": "ok"}, retain=True)
    publisher.send("re/vsl-1/state", {"limit": 60, "source": "central", "legend": "FOG", "comm": "ok", "vis_m": 45},
                   retain=True)
    # another sign (not on this map): it loses the controller, then overheats (its LEDs go dark)
    publisher.send("re/vsl-9/info", {"role": "sign"}, retain=True)
    publisher.send("re/vsl-9/state", {"limit": 80, "source": "central", "comm": "ok", "faults": []}, retain=True)
    publisher.send("re/vsl-9/state", {"limit": None, "source": "commLoss", "comm": "lost", "faults": ["over_temp"]},
                   retain=True)
    # beacons: thick fog over the section, three of them already red for an incident ahead
    for i, b in enumerate(beacon_ids(console)):
        mode = "section_alarm" if i < 3 else "anti_rear_end"
        publisher.send(f"re/{b}/state", {"mode": mode, "reason": "alarm" if i < 3 else "auto", "level": 4, "vis_m": 45,
                                         "meter": "ok", "battery": "ok"}, retain=True)
    publisher.send(f"re/{beacon_ids(console)[5]}/event", {"seq": 1, "ts": now, "type": "fault", "what": "meter",
                                                           "status": "fault", "reason": "window", "safe_mode": True})
    publisher.send(f"re/{beacon_ids(console)[6]}/event", {"seq": 1, "ts": now, "type": "fault", "what": "lamp_red"})
    # trk-a: sent to an incident, eastbound through the fog at 90 km/h past the 60 sign
    publisher.send("re/trk-a/state", {"duty": "dispatched", "incident": "9", "batt": 80,
                                      "sos": {"latched": False}}, retain=True)
    publisher.send("owntracks/roadedge/trk-a", location(1, lat, lon, time.time(), vel=90, cog=90))
    # trk-b: its link drops (the broker's last will)
    publisher.send("re/trk-b/status", "online", retain=True)
    publisher.send("re/trk-b/status", "offline", retain=True)
    # trk-c: backup battery low, then the rider presses SOS
    publisher.send("re/trk-c/state", {"duty": "patrol", "batt": 60}, retain=True)
    publisher.send("re/trk-c/state", {"duty": "patrol", "batt": 12}, retain=True)
    publisher.send("re/trk-c/event", {"seq": 40, "ts": time.time(), "type": "sos", "id": 4, "since": time.time(),
                                      "duty": "patrol", "lat": 30.3, "lon": 120.001})
    # a device that sends garbage
    publisher.send("owntracks/roadedge/trk-c", b"{broken")

    want = {"sos", "offline", "low_battery", "meter_fault", "lamp_fault", "sign_comm_lost", "sign_fault",
            "section_alarm", "overspeed", "in_fog", "sign_over_law", "fog_uncovered"}
    for t in sorted(want):
        # keep the unit's fix fresh while waiting (the tracker reports every few seconds at speed)
        publisher.send("owntracks/roadedge/trk-a", location(int(time.time() * 10), lat, lon, time.time(), vel=90,
                                                            cog=90))
        page.wait_for_selector(f'#alarm-list li.alarm[data-type="{t}"]:not(.acked)', timeout=15000)
        page.wait_for_selector(f'#event-table tr[data-type="{t}"][data-phase="raise"]', timeout=5000)
    page.wait_for_function(f"window.__notes.length >= {len(want)}", timeout=5000)
    notes = page.evaluate("window.__notes")
    titles = {n["title"] for n in notes}
    types = page.evaluate("window.REEvents.types")
    assert {"roadedge: " + types[t] for t in want} <= titles, titles
    assert any("SOS from trk-c" in n["body"] for n in notes)
    assert page.evaluate("window.REEvents.sounded") >= len(want) - 1  # every alarm but the SOS (its banner sounds)

    # the log says it in plain words: the sign's source, the ingest reject
    log = page.inner_text("#event-table")
    assert "vsl-1 shows blank (was 80 km/h): fail-safe message after a power cut" in log
    assert "vsl-1 shows 60 km/h, legend FOG (was blank): set by the zone controller" in log
    assert "vsl-9 shows blank (was 80 km/h): fail-safe message: no contact with the controller" in log
    page.wait_for_selector('#event-table tr[data-type="ingest_reject"]', timeout=5000)
    assert "bad_json" in page.inner_text('#event-table tr[data-type="ingest_reject"]')
    sol = page.inner_text('#alarm-list li[data-type="sign_over_law"]')
    assert "vsl-1 shows 60 km/h; Art. 81 allows at most 20 km/h at 45 m" in sol

    # a section alarm raises an incident where the section is, from the alarm (the form opens, nothing is guessed)
    sel = '#alarm-list li.alarm[data-type="section_alarm"]'
    aid = int(page.get_attribute(sel, "data-id"))
    page.click(sel + " .alarm-incident")
    page.wait_for_selector("#incident-dialog[open]", timeout=5000)
    assert page.input_value("#incident-type") == "other" and "section alarm" in page.input_value("#incident-text")
    page.click("#incident-create")
    page.wait_for_function(f"Object.values(RE.incidents).some(i => i.source === 'alarm:{aid}')", timeout=5000)
    inc = [i for i in console.store.incidents() if i.get("source") == f"alarm:{aid}"]
    assert len(inc) == 1 and inc[0]["lat"] and inc[0]["lon"], inc

    # acknowledge every one from the list
    for t in sorted(want):
        page.click(f'#alarm-list li.alarm[data-type="{t}"]:not(.acked) .alarm-ack')
        page.wait_for_selector(f'#alarm-list li.alarm.acked[data-type="{t}"]', timeout=5000)
        assert "acknowledged by disp" in page.inner_text(f'#alarm-list li.alarm.acked[data-type="{t}"]')
    # the SOS acknowledgement went to the rider, signed
    _t, payload, _r, _q = cmds.wait_for(lambda t, *_: t == "re/trk-c/cmd/sos_ack", timeout=5)
    code, body = CommandAuth(keyring.command_key("trk-c"), "trk-c", str(tmp_path / "ctr.json")).check(
        "sos_ack", payload, time.time())
    assert code == "ok" and body and body["args"] == {"id": 4, "by": "disp"}
    # every acknowledgement is audited: who and when, one per alarm
    acks = [a for a in console.store.audit(500) if a["action"] == "alarm_ack" and a["result"] == "ok"]
    assert len(acks) == len(want) and {a["user"] for a in acks} == {"disp"} and all(a["at"] for a in acks)
    logged = console.events.log.query(acked=True, limit=500)["events"]
    assert {e["type"] for e in logged} >= want and all(e["acked_by"] == "disp" for e in logged)
    page.wait_for_selector('#event-table tr[data-phase="ack"]', timeout=5000)

    # filters: only trk-c's, only unacknowledged alarms (none left), then paging through the rest
    page.fill("#ev-device", "trk-c")
    page.click("#ev-apply")
    page.wait_for_function("[...document.querySelectorAll('#event-table tbody tr[data-id]')].length > 0 && "
                           "[...document.querySelectorAll('#event-table tbody tr td:nth-child(4)')]"
                           ".every(td => td.textContent === 'trk-c')", timeout=5000)
    page.fill("#ev-device", "")
    page.select_option("#ev-acked", "no")
    page.click("#ev-apply")
    page.wait_for_selector("#event-table td[colspan]", timeout=5000)
    page.screenshot(path=str(tmp_path / "alarms.png"))

    # the tracker never got our acknowledgement (it re-sends the latched SOS after a reconnect): raised again
    publisher.send("re/trk-c/event", {"seq": 41, "ts": time.time(), "type": "sos", "id": 4, "since": time.time(),
                                      "duty": "patrol", "lat": 30.3, "lon": 120.001})
    page.wait_for_selector('#alarm-list li.alarm[data-type="sos"]:not(.acked)', timeout=10000)
    page.wait_for_function("window.__notes.filter(n => n.body.startsWith('SOS from trk-c')).length === 2",
                           timeout=5000)
    assert not errors, errors


def test_a_viewer_may_not_acknowledge_and_the_attempt_is_audited(console, publisher, browser):
    publisher.send("re/trk-b/status", "online", retain=True)
    publisher.send("re/trk-b/status", "offline", retain=True)
    page, errors = open_console(browser, console.url, "view", "view-pass-123")
    page.wait_for_selector('#alarm-list li.alarm[data-type="offline"]', timeout=10000)
    page.click('#alarm-list li.alarm[data-type="offline"] .alarm-ack')
    page.wait_for_selector("#toast:not(.hidden)", timeout=5000)
    assert "may not acknowledge" in page.inner_text("#toast")
    assert any(a["action"] == "alarm_ack" and a["user"] == "view" and a["result"].startswith("refused")
               for a in console.store.audit())
    assert console.events.log.alarms()[0]["acked_at"] is None
    assert not errors, errors


def test_a_section_power_cut_is_one_alarm_row_one_notification_and_one_acknowledgement(console, publisher, browser,
                                                                                      tmp_path):
    """A section's beacons lose power together: the dispatcher gets one row (which beacons, each alarm behind a
    click), one sound and one notification, and acknowledges them at once, each still audited; an SOS in
    the same burst keeps its own row and is never acknowledged with the rest."""
    beacons = beacon_ids(console)
    n = len(beacons)
    assert n > 8
    page, errors = open_console(browser, console.url, "disp", "disp-pass-123")
    for b in beacons:
        publisher.send(f"re/{b}/status", "online", retain=True)
    page.wait_for_function(f"Object.keys(RE.beacons).length >= {len(beacons)}", timeout=10000)
    page.evaluate("window.__notes.length = 0; window.REEvents.sounded = 0")
    for b in beacons:
        publisher.send(f"re/{b}/status", "offline", retain=True)
    publisher.send("re/trk-c/event", {"seq": 41, "ts": time.time(), "type": "sos", "id": 5, "since": time.time(),
                                      "duty": "patrol", "lat": 30.3, "lon": 120.001})
    group = '#alarm-list li.alarm-group[data-type="offline"]'
    page.wait_for_selector(f'{group}[data-count="{n}"]', timeout=15000)
    page.wait_for_selector('#alarm-list li.alarm[data-type="sos"]', timeout=15000)
    assert page.locator('#alarm-list li.alarm[data-type="offline"]').count() == 0
    # the log's count follows its live lines (each offline raise and the SOS)
    page.wait_for_function(f"parseInt(document.querySelector('#ev-info').textContent) >= {n + 1}", timeout=5000)
    text = page.inner_text(group)
    assert f"× {n}" in text and beacons[0] in text and f"and {n - 8} more" in text
    page.click(f"{group} summary")
    assert page.locator(f"{group} .alarm-members li").count() == n
    page.screenshot(path=str(tmp_path / "alarm-group.png"))
    page.wait_for_function(f"window.__notes.some(n => n.title.endsWith('× {n}'))", timeout=5000)
    offline_notes = [n for n in page.evaluate("window.__notes") if "offline" in n["title"].lower()]
    assert len(offline_notes) == 1, offline_notes

    page.click(f"{group} .alarm-ack-all")
    page.wait_for_selector(f'#alarm-list li.alarm-group.acked[data-type="offline"][data-count="{n}"]', timeout=10000)
    assert page.locator(f'{group}:not(.acked)').count() == 0
    assert page.locator('#alarm-list li.alarm[data-type="sos"]:not(.acked)').count() == 1  # the SOS still waits
    acks = [a for a in console.store.audit() if a["action"] == "alarm_ack" and a["result"] == "ok"]
    assert len(acks) == n and all(a["user"] == "disp" for a in acks)
    assert not errors, errors


def test_an_sos_cleared_before_the_acknowledgements_answer_arrives_leaves_the_list(console, publisher, browser):
    """The rider's terminal can confirm an acknowledgement before the console's HTTP answer reaches the
    page: the live update (acknowledged and cleared) must not be overwritten by the older answer, or a
    finished SOS would stay in the alarm list for good."""
    page, errors = open_console(browser, console.url, "disp", "disp-pass-123")
    publisher.send("re/trk-c/event", {"seq": 60, "ts": time.time(), "type": "sos", "id": 9, "since": time.time(),
                                      "duty": "patrol", "lat": 30.3, "lon": 120.001})
    row = '#alarm-list li.alarm[data-type="sos"][data-device="trk-c"]'
    page.wait_for_selector(f"{row}:not(.acked)", timeout=15000)
    held: list = []

    def hold(route):  # the acknowledgement is made on the server; its answer waits here
        held.append((route, route.fetch()))

    page.route("**/api/alarms/ack", hold)
    page.click(f"{row} .alarm-ack")
    deadline = time.monotonic() + 10
    while not held:
        page.wait_for_timeout(50)  # lets Playwright run the route handler; bounded by the deadline
        assert time.monotonic() < deadline, "the acknowledgement never left the page"
    # the rider's terminal got it: the SOS clears, live, while the answer is still held
    publisher.send("re/trk-c/event", {"seq": 61, "ts": time.time(), "type": "sos_ack", "id": 9, "by": "disp"})
    page.wait_for_selector(row, state="detached", timeout=15000)
    route, answer = held[0]
    route.fulfill(response=answer)
    page.wait_for_function("document.querySelector('#toast').textContent.startsWith('SOS acknowledged')",
                           timeout=5000)  # the answer has been handled ...
    page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")  # ... and drawn
    assert page.locator(row).count() == 0
    assert not errors, errors
