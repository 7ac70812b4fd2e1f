"""`roadedge demo` (what `make demo` runs), shortened, checked through the console in headless Chromium:
units move, fog is drawn, beacons change mode, signs show limits; Ctrl-C stops it cleanly."""
from __future__ import annotations

import json
import os
import queue
import signal
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


def test_demo_console_shows_units_fog_lamps_signs(tmp_path):
    from playwright.sync_api import sync_playwright

    proc = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "demo", "--quick", "--duration", "120",
                             "--no-browser", "--http", "127.0.0.1:0", "--workdir", str(tmp_path / "var")],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    q: queue.Queue = queue.Queue()
    threading.Thread(target=_reader, args=(proc, q), daemon=True).start()
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
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    rest = []
    while True:
        line = q.get(timeout=10)
        if line is None:
            break
        rest.append(line)
    assert proc.returncode == 0, "".join(seen + rest)
    assert any("demo stopped" in x for x in rest), "".join(rest)
