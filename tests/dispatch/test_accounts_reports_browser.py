"""Accounts and reports in a real headless Chromium (issue 15): a supervisor adds an account that
logs in at once, disables it and its open page is logged out; one added from the CLI logs in at
once; a dispatcher sees no account management; the shift report and its CSV through the console."""
from __future__ import annotations

import csv
import io
import json
import time

from dispatch_support import location
from support.browser import login
from test_dispatch_cli import roadedge

from host_tools.deployment.scenario import parse


def test_accounts_in_the_console_count_at_once(console, browser, tmp_path):
    sup, errors = login(browser, console.url, "sup", "sup-pass-1234")
    sup.wait_for_selector("#accounts-panel:not(.hidden)", timeout=5000)
    sup.click("#accounts-open")
    sup.wait_for_selector('#accounts-table tr[data-user="disp"]', timeout=5000)
    # the password policy answers in the form
    sup.fill("#acc-name", "rookie")
    sup.select_option("#acc-role", "dispatcher")
    sup.fill("#acc-pass", "password1234")
    sup.fill("#acc-pass2", "password1234")
    sup.click("#acc-add")
    sup.wait_for_function("document.querySelector('#accounts-error').textContent.includes('attackers')", timeout=10000)
    sup.fill("#acc-pass", "lantern-over-the-bay")
    sup.fill("#acc-pass2", "lantern-over-the-bay")
    sup.click("#acc-add")
    sup.wait_for_selector('#accounts-table tr[data-user="rookie"]', timeout=10000)

    # the new account logs in at once, no restart
    rookie, errors2 = login(browser, console.url, "rookie", "lantern-over-the-bay")
    assert rookie.inner_text("#whoami") == "rookie (dispatcher)"
    assert rookie.is_hidden("#accounts-panel")  # a dispatcher manages no accounts
    st = rookie.evaluate("fetch('/api/accounts').then(r => r.status)")
    assert st == 403

    # re-roled by the supervisor: the open page follows (reloads as a viewer)
    sup.select_option('#accounts-table tr[data-user="rookie"] .acc-role', "viewer")
    rookie.wait_for_function("document.querySelector('#whoami') && "
                             "document.querySelector('#whoami').textContent === 'rookie (viewer)'", timeout=10000)
    # disabled: the open page is logged out at once and says why
    sup.click('#accounts-table tr[data-user="rookie"] .acc-toggle')
    sup.wait_for_selector('#accounts-table tr[data-user="rookie"].acc-disabled', timeout=5000)
    rookie.wait_for_selector("#login:not(.hidden)", timeout=10000)
    assert "session was ended" in rookie.inner_text("#login-error")
    assert rookie.evaluate("fetch('/api/snapshot').then(r => r.status)") == 401

    # an account added from the command line while the page is open logs in at once too
    r = roadedge("dispatch", "--db", str(tmp_path / "dispatch.db"), "--add-user", "nightshift", "--role", "viewer",
                 "--password-stdin", input="quiet-harbour-night\n")
    assert r.returncode == 0, r.stderr
    night, errors3 = login(browser, console.url, "nightshift", "quiet-harbour-night")
    assert night.inner_text("#whoami") == "nightshift (viewer)"
    sup.click('#accounts-dialog .dlg-close')
    sup.click("#accounts-open")
    sup.wait_for_selector('#accounts-table tr[data-user="nightshift"]', timeout=5000)
    sup.screenshot(path=str(tmp_path / "accounts.png"))
    assert not errors and not errors2 and not errors3


def test_shift_report_in_the_console_and_its_csv(console, publisher, browser, deployment, tmp_path):
    sc = parse(json.loads(deployment.read_text()))
    road = sc.roads["U"]
    now = time.time()
    t0 = now - 400 if now % 86400 > 500 else now - now % 86400 - 500  # the ride within one day
    # trk-a rides km 0 -> 1.0 of the U at 36 km/h (a fix every 10 s); F1 is km 0.5-1.5
    for i in range(11):
        lat, lon = road.latlon_at_km(0.1 * i)
        publisher.send("owntracks/roadedge/trk-a", location(i + 1, lat, lon, t0 + 10 * i, vel=36.0))
    assert console.ingest.wait_idle(10)

    page, errors = login(browser, console.url, "disp", "disp-pass-123")
    day = page.evaluate("t => { const d = new Date(t * 1000); "
                        "return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 10); }", t0)
    page.fill("#report-day", day)
    page.click("#report-open")
    page.wait_for_selector('#report-table tr[data-key="trk-a"]', timeout=15000)
    cells = page.eval_on_selector_all('#report-table tr[data-key="trk-a"] td', "els => els.map(e => e.textContent)")
    assert cells[0] == "trk-a" and abs(float(cells[1]) - 1.0) < 0.01, cells  # km
    page.click('#reports-dialog .dlg-tabs button[data-table="sections"]')
    page.wait_for_selector('#report-table tr[data-key="F1"]', timeout=5000)
    f1 = page.eval_on_selector_all('#report-table tr[data-key="F1"] td', "els => els.map(e => e.textContent)")
    assert f1[0] == "F1" and float(f1[5]) == 1.2, f1  # present from km 0.3 (200 m before) to 1.0: 70 s

    page.click('#reports-dialog .dlg-tabs button[data-table="units"]')
    with page.expect_download() as dl:
        page.click("#report-csv")
    d = dl.value
    assert d.suggested_filename == f"units-{day}.csv"
    raw = open(d.path(), encoding="utf-8-sig").read()
    rows = list(csv.DictReader(io.StringIO(raw)))
    a = next(r for r in rows if r["unit"] == "trk-a")
    assert abs(float(a["distance_km"]) - 1.0) < 0.01 and a["fixes"] == "11" and a["day"] == day
    page.screenshot(path=str(tmp_path / "report.png"))
    # on a phone the report still fits: its table scrolls inside the dialog, the CSV link stays in view
    page.set_viewport_size({"width": 390, "height": 844})
    box = page.evaluate("""() => { const r = e => document.querySelector(e).getBoundingClientRect();
        return {dlg: r('#reports-dialog').right, csv: r('#report-csv').right, w: innerWidth,
                scroll: document.querySelector('#reports-dialog .dlg-scroll').scrollWidth >
                        document.querySelector('#reports-dialog .dlg-scroll').clientWidth}; }""")
    assert box["dlg"] <= box["w"] and box["csv"] <= box["w"] and box["scroll"], box
    assert page.is_visible('#report-table tr[data-key="trk-a"]')
    page.screenshot(path=str(tmp_path / "report-390.png"))
    exports = [a for a in console.store.audit() if a["action"] == "report_export"]
    assert exports and exports[0]["user"] == "disp" and exports[0]["target"] == "units"
    assert not errors, errors
