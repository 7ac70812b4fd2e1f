"""`roadedge demo` (what `make demo` runs), shortened, checked through the console in headless Chromium:
units move, fog is drawn, beacons change mode, signs show limits; Ctrl-C stops it cleanly."""
from __future__ import annotations

import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from support.browser import CHROMIUM, CHROMIUM_ARGS, login

from host_tools.dispatch.assets import installed

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not installed(), reason="console assets missing: python -m host_tools.dispatch.assets")


def _reader(proc, q: queue.Queue) -> None:
    for line in proc.stdout:
        q.put(line)
    q.put(None)


def _wait_line(q: queue.Queue, prefix: str, seen: list[str], timeout: float = 60) -> str:
    while True:
        line = q.get(timeout=timeout)
        if line is None:
            raise AssertionError("demo ended early:\n" + "".join(seen))
        seen.append(line)
        if line.startswith(prefix):
            return line


def _start(tmp_path, *opts: str):
    proc = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "demo", *opts, "--no-browser", "--http",
                             "127.0.0.1:0", "--workdir", str(tmp_path / "var")],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    q: queue.Queue = queue.Queue()
    threading.Thread(target=_reader, args=(proc, q), daemon=True).start()
    return proc, q


def _stop(proc, q: queue.Queue, seen: list[str]) -> list[str]:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    rest = []
    while (line := q.get(timeout=10)) is not None:
        rest.append(line)
    assert proc.returncode == 0, "".join(seen + rest)
    return rest


def test_demo_console_shows_units_fog_lamps_signs(tmp_path):
    from playwright.sync_api import sync_playwright

    proc, q = _start(tmp_path, "--quick", "--speed", "20", "--duration", "120")
    seen: list[str] = []
    try:
        line = _wait_line(q, "console:", seen)
        parts = line.split()
        url, user, password = parts[1], parts[3], parts[5]
        assert user == "supervisor" and len(password) >= 12
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page, errors = login(browser, url, user, password)
                # moving units: a patrol marker is drawn and moves
                page.wait_for_function("Object.values(RE.units).filter(u => u.getLatLng).length >= 5", timeout=30000)
                uid = page.evaluate("Object.keys(RE.units).filter(k => RE.units[k].getLatLng).sort()[1]")
                before = page.evaluate(f"(() => {{ const p = RE.units['{uid}'].getLatLng(); return [p.lat, p.lng]; }})()")
                page.wait_for_function(
                    f"(() => {{ const p = RE.units['{uid}'].getLatLng(); return p.lat !== {before[0]} || p.lng !== {before[1]}; }})()",
                    timeout=30000)
                # fog: bands drawn on the map from the beacons' visibility
                page.wait_for_function("Object.values(RE.map._layers).some(l => l.options && l.options.weight === 22)",
                                       timeout=60000)
                # lamps: beacons report fog modes; signs: the controller has a limit on each sign
                page.wait_for_function("Object.values(RE.beacons).filter(b => b.state && "
                                       "b.state.mode === 'anti_rear_end').length >= 10", timeout=60000)
                page.wait_for_function("Object.values(RE.signs).filter(s => s.state && s.state.limit).length === 3",
                                       timeout=60000)
                page.wait_for_function("Object.values(RE.signs).some(s => s.state && s.state.limit < 100)",
                                       timeout=60000)
                page.screenshot(path=str(tmp_path / "console.png"))
                if os.environ.get("ROADEDGE_KEEP_SCREENSHOT"):
                    page.screenshot(path=os.environ["ROADEDGE_KEEP_SCREENSHOT"])
                assert not errors, errors
            finally:
                browser.close()
        # the technician's ready line: `roadedge devices` against the demo's broker lists every device
        ready = _wait_line(q, "technician:", seen).split()
        cmd = ready[ready.index("roadedge") + 1:ready.index("(also")]
        res = subprocess.run([sys.executable, "-m", "host_tools.cli", *cmd, "--json", "--listen", "1"], cwd=REPO,
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr
        rows = {r["id"]: r for r in json.loads(res.stdout)}
        from host_tools.deployment.scenario import load

        sc = load(REPO / "sim" / "scenarios" / "demo.json")
        want = {b.id: "beacon" for b in sc.beacons} | {s.id: "sign" for s in sc.signs} | \
            {t.id: "tracker" for t in sc.trackers}
        assert {i: rows[i]["role"] for i in want if i in rows} == want
        assert all(rows[i]["fw"] and rows[i]["status"] == "online" for i in want)
    finally:
        rest = _stop(proc, q, seen)
    assert any("demo stopped" in x for x in rest), "".join(rest)


def _applied(audit_db: str, sign: str, limit: int) -> dict:
    """From the zone controller's audit log: what put `limit` on `sign` after it was recommended as pending
    (a supervisor's approval is a `command` by that user, the unattended apply a `timeout` by the controller)."""
    db = sqlite3.connect(f"file:{audit_db}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        rows = [dict(r) for r in db.execute("SELECT * FROM audit WHERE sign = ? ORDER BY id", (sign,))]
    finally:
        db.close()
    pend = max(i for i, r in enumerate(rows) if r["action"] == "pending" and r["lim"] == limit)
    return next(r for r in rows[pend:] if r["action"] in ("command", "timeout") and r["lim"] == limit)


# every dispatch status the page renders, in order (they follow each other within a second)
RECORD_DISPATCHES = """() => { window.seenDispatch = [];
  new MutationObserver(() => document.querySelectorAll('#dispatch-list li').forEach((li) => {
    const d = RE.dispatches[li.dataset.id]; const k = d && d.unit + ':' + li.dataset.status;
    if (d && window.seenDispatch[window.seenDispatch.length - 1] !== k) window.seenDispatch.push(k); }))
  .observe(document.getElementById('dispatch-list'), {childList: true, subtree: true}); }"""


def _demo_variant(tmp_path, change) -> tuple[Path, object]:
    """The demo scenario (every device, road and route its own) with change(raw) applied to its timings, written
    where `roadedge demo --scenario` reads it."""
    from host_tools.deployment.scenario import parse

    raw = json.loads((REPO / "sim" / "scenarios" / "demo.json").read_text())
    change(raw)
    path = tmp_path / "demo.json"
    path.write_text(json.dumps(raw))
    return path, parse(raw, str(path))


def _sooner_sos_and_incident(raw: dict) -> None:
    """The scripted SOS at t = 100 s and incident at t = 130 s (the demo's are at 180 s and 240 s): both after
    the first recommendation the supervisor approves (t ~ 70 s, with the fog). As at 240 s, the nearest units
    (trk-006, trk-005) have just passed the scene and ride on away from it: the one sent turns back and rides
    a few hundred metres to it, however long the dispatcher takes."""
    (sos,), (inc,) = raw["sos"], raw["incidents"]
    assert (sos["t_s"], inc["t_s"]) == (180, 240), (sos, inc)
    sos["t_s"], inc["t_s"] = 100, 130


def _staggered_starts_compressed(raw: dict) -> None:
    """The patrols set off one second apart instead of ten (the last at t = 9 s, not 90 s): every unit is under
    way, reporting fresh fixes, within seconds of the world clock starting."""
    for t in raw["devices"]["trackers"]:
        t["start_s"] = t["start_s"] / 10


def test_demo_loops_close_through_the_console(tmp_path):
    """A shortened demo, driven as its users would: a supervisor puts the zone in approve mode, a
    recommendation waits as pending and approving it puts it on the sign (through the real controller);
    the scripted SOS and incident appear as from the field; the nearest unit is dispatched and goes
    sent -> accepted -> on scene on the map. (The demo's scenario with its SOS and incident scripted sooner.)"""
    from playwright.sync_api import sync_playwright

    path, _sc = _demo_variant(tmp_path, _sooner_sos_and_incident)
    # 5x: the controller's 60 s approve timeout leaves the supervisor 12 s to act
    proc, q = _start(tmp_path, "--speed", "5", "--duration", "400", "--scenario", str(path))
    seen: list[str] = []
    try:
        audit_db = _wait_line(q, "controller audit:", seen).split()[2]
        parts = _wait_line(q, "console:", seen).split()
        url, user, password = parts[1], parts[3], parts[5]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page, errors = login(browser, url, user, password)
                page.evaluate(RECORD_DISPATCHES)
                # sign control: approve mode, through the zone controller
                page.wait_for_selector(".zone .zone-mode", timeout=60000)
                zone = page.evaluate("Object.keys(RE.ctl)[0]")
                page.select_option(f'.zone[data-zone="{zone}"] .zone-mode', "approve")
                page.wait_for_function(f"RE.ctl['{zone}'].mode === 'approve'", timeout=30000)
                row = page.wait_for_selector(f'.zone[data-zone="{zone}"] tr.pending[data-sign]', timeout=120000)
                sign = row.get_attribute("data-sign")
                view = page.evaluate(f"RE.ctl['{zone}'].signs.find(s => s.id === '{sign}')")
                limit, by = view["pending"], view["approve_by"]  # by: when the controller applies it unattended
                shown = page.evaluate(f"(RE.signs['{sign}'].state || {{}}).limit")
                assert isinstance(limit, int) and shown != limit  # waiting for the supervisor
                page.click(f'.zone[data-zone="{zone}"] tr[data-sign="{sign}"] .sign-op[data-action="approve"]')
                page.wait_for_function(f"(RE.signs['{sign}'].state || {{}}).limit === {limit}", timeout=30000)
                # the supervisor's approve, not the controller's unattended apply: the sign reported the limit
                # before the approve timeout ran out, and the controller's audit names the supervisor
                shown_at = page.evaluate(f"RE.signs['{sign}'].state.ts")
                assert by is None or shown_at < by, (shown_at, by)
                applied = _applied(audit_db, sign, limit)
                assert applied["action"] == "command" and applied["who"] == user, applied
                assert applied["why"].startswith("approved recommendation") and applied["ts"] <= shown_at, applied
                audit = page.evaluate("fetch('/api/audit').then(r => r.json())")
                assert any(a["action"] == "sign_op" and a["result"] == "sent to controller" and
                           json.loads(a["detail"]).get("action") == "approve" for a in audit), audit[:5]
                # the scripted SOS (t = 100 s) and incident (t = 130 s), as from the field
                page.wait_for_selector('#sos-banner .sos-item[data-unit="trk-004"]', timeout=120000)
                item = page.wait_for_selector('#incident-list li:has-text("INC-1")', timeout=120000)
                iid = int(item.get_attribute("data-id"))
                item.query_selector(".rank-btn").click()
                _send_nearest_until_on_scene(page, iid, on_scene_ms=240000, duty_ms=30000)
                # every unit in the table (fix ages are judged at real time, test_console_dispatch_at_real_time:
                # at 5x the world's clock runs ahead of the console's, so every age reads 0 s)
                assert len(_fix_ages(page)) == 10
                page.screenshot(path=str(tmp_path / "loops.png"))
                assert not errors, errors
            finally:
                browser.close()
    finally:
        rest = _stop(proc, q, seen)
    assert any("demo stopped" in x for x in rest), "".join(rest)



def _send_nearest_until_on_scene(page, iid: int, on_scene_ms: int, duty_ms: int) -> str:
    """The dispatcher sends the first unit of the ranking (nearest by road): it goes sent -> accepted -> on scene,
    its marker at the incident on the map and its duty as its tracker reports it."""
    first = page.wait_for_selector("#rank-list li[data-unit]", timeout=30000)
    unit = first.get_attribute("data-unit")
    first.query_selector(".dispatch-btn").click()
    page.wait_for_function(f"Object.values(RE.dispatches).some(d => d.unit === '{unit}' && "
                           f"d.incident === {iid} && d.status === 'on_scene')", timeout=on_scene_ms)
    steps = [s.split(":")[1] for s in page.evaluate("window.seenDispatch") if s.startswith(unit + ":")]
    assert steps[0] == "sent" and "accepted" in steps and steps[-1] == "on_scene", steps
    assert steps.index("accepted") < steps.index("on_scene")
    gap = page.evaluate(f"RE.map.distance(RE.units['{unit}'].getLatLng(), "
                        f"[RE.incidents[{iid}].lat, RE.incidents[{iid}].lon])")
    assert gap < 150, gap
    page.wait_for_function(f"(RE.devices['{unit}'].state || {{}}).duty === 'on_scene'", timeout=duty_ms)
    return unit

def _fix_ages(page) -> dict[str, str]:
    """unit -> its fix age as the unit table shows it (the column headed "fix age")."""
    return page.evaluate("""() => {
      const col = [...document.querySelectorAll('#unit-table thead th')].findIndex(th => th.textContent === 'fix age');
      return Object.fromEntries([...document.querySelectorAll('#unit-table tbody tr[data-unit]')]
        .map(tr => [tr.dataset.unit, tr.children[col].textContent])); }""")


def test_console_dispatch_at_real_time(tmp_path):
    """`make demo` as it runs by default, at real time, where the signs and trackers are the real firmware under
    the micropython unix port: a dispatcher puts an incident on the map, the console ranks the units by road
    and sends the nearest; its tracker takes the signed dispatch, the rider accepts and rides there, and the
    firmware reports on scene (sent -> accepted -> on scene); every fix is fresh by the wall clock; `roadedge
    devices` with the printed line lists every device with its role and the firmware it runs. (The demo's
    scenario with its patrols setting off 1 s apart rather than 10 s, so that all ten are under way at once.)"""
    from playwright.sync_api import sync_playwright

    path, sc = _demo_variant(tmp_path, _staggered_starts_compressed)
    proc, q = _start(tmp_path, "--duration", "900", "--scenario", str(path))
    seen: list[str] = []
    try:
        parts = _wait_line(q, "console:", seen).split()
        url, user, password = parts[1], parts[3], parts[5]
        ready = _wait_line(q, "technician:", seen, timeout=300).split()  # firmware up, world clock started
        assert any(x.startswith("firmware up: ") for x in seen), "".join(seen)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page, errors = login(browser, url, user, password)
                page.evaluate(RECORD_DISPATCHES)
                # every patrol on the map, on its way (the last sets off at t = 9 s)
                page.wait_for_function("Object.values(RE.devices).filter(u => u.lat != null && u.vel > 20).length"
                                       " === 10", timeout=240000)
                # the dispatcher places an incident beside G60 300 m ahead of trk-009 (riding up the G60 from
                # km 5.0, past the fog section and its beacons' markers), so the nearest unit is close
                g60 = sc.roads["G60"]
                here = page.evaluate("[RE.devices['trk-009'].lat, RE.devices['trk-009'].lon]")
                km = g60.km0 + g60.project(*sc.proj.to_xy(*here))[0] / 1000 + 0.3
                assert 5.0 < km < 7.2, km
                lat, lon = g60.latlon_at_km(km)
                lat += 0.0002
                page.evaluate(f"() => {{ RE.map.setView([{lat}, {lon}], 16); }}")
                page.click("#new-incident")
                box = page.locator("#map").bounding_box()
                x, y = page.evaluate(f"(() => {{ const p = RE.map.latLngToContainerPoint([{lat}, {lon}]); "
                                     "return [p.x, p.y]; })()")
                page.mouse.click(box["x"] + x, box["y"] + y)
                page.wait_for_selector("#incident-dialog[open]", timeout=10000)
                page.select_option("#incident-type", "debris")
                page.select_option("#incident-priority", "1")
                page.fill("#incident-text", "debris on the carriageway")
                page.click("#incident-create")
                item = page.wait_for_selector('#incident-list li:has-text("debris on the carriageway")', timeout=30000)
                iid = int(item.get_attribute("data-id"))
                _send_nearest_until_on_scene(page, iid, on_scene_ms=300000, duty_ms=60000)
                # fresh fixes by the wall clock: the world's clock started when the devices were up
                ages = _fix_ages(page)
                assert len(ages) == 10 and all(a.endswith(" s") and int(a.split()[0]) < 10 for a in ages.values()), ages
                page.screenshot(path=str(tmp_path / "realtime.png"))
                assert not errors, errors
            finally:
                browser.close()
        cmd = ready[ready.index("roadedge") + 1:ready.index("(also")]
        res = subprocess.run([sys.executable, "-m", "host_tools.cli", *cmd, "--json", "--listen", "2"], cwd=REPO,
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr
        rows = {r["id"]: r for r in json.loads(res.stdout)}
        want = {b.id: "beacon" for b in sc.beacons} | {s.id: "sign" for s in sc.signs} | \
            {t.id: "tracker" for t in sc.trackers}
        assert {i: (rows.get(i) or {}).get("role") for i in want} == want
        assert all(rows[i]["fw"] and rows[i]["status"] == "online" for i in want)
        # signs and trackers are the firmware processes: they report the firmware build, not the world's models
        assert all(rows[i]["fw"] != "world" for i in (*(s.id for s in sc.signs), *(t.id for t in sc.trackers)))
    finally:
        rest = _stop(proc, q, seen)
    assert any("demo stopped" in x for x in rest), "".join(rest)
