"""The console's map as a dispatcher reads it, in a real headless Chromium (issue 15, item 3): labels that
never cover each other, clustered units, the beacon layer and list, a side panel per device with its
history, plain words for sign sources, one answer to "what does this sign show", a layout for a phone and
a desk, and an optional tile server."""
from __future__ import annotations

import http.server
import json
import threading
import time
from pathlib import Path

import pytest

from dispatch_support import location
from support.browser import login

from host_tools.deployment.scenario import load
from host_tools.dispatch import words
from host_tools.dispatch.service import DispatchService
from roadedge.beacon import modes as beacon_modes
from roadedge.sign import policy as sign_policy

DEMO = Path(__file__).resolve().parents[2] / "sim" / "scenarios" / "demo.json"

# every label shown on the map, and every pair of them whose boxes intersect
LABEL_OVERLAPS = """() => {
  const els = Array.from(document.querySelectorAll('#map .lbl, #map .lbl-km')).filter(e => getComputedStyle(e).display !== 'none');
  const r = els.map(e => [e.innerText.trim(), e.getBoundingClientRect()]), out = [];
  for (let i = 0; i < r.length; i++) for (let j = i + 1; j < r.length; j++) {
    const a = r[i][1], b = r[j][1];
    if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) out.push([r[i][0], r[j][0]]);
  }
  return {shown: r.map(x => x[0]), overlaps: out};
}"""
SETTLED = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(r, 50))))"
# element's box as seen in the viewport (without scrolling anything)
BOX = """(sel) => { const e = document.querySelector(sel); if (!e) return null; const b = e.getBoundingClientRect();
  const s = getComputedStyle(e); return {left: b.left, top: b.top, right: b.right, bottom: b.bottom, width: b.width,
  height: b.height, shown: s.display !== 'none' && s.visibility !== 'hidden'}; }"""


def test_every_code_a_device_reports_has_plain_words():
    for src in (sign_policy.CENTRAL, sign_policy.LOCAL, sign_policy.COMM_LOSS, sign_policy.POWER_RECOVERY,
                sign_policy.RESET, sign_policy.END_DURATION, sign_policy.AUTONOMOUS):
        assert words.SIGN_SOURCE[src] and words.SIGN_SOURCE[src] != src
    assert words.SIGN_SOURCE[sign_policy.POWER_RECOVERY] == "restored after power loss"
    assert set(words.BEACON_MODE) == set(beacon_modes.MODES)


@pytest.fixture
def demo_console(mosquitto, tmp_path, keyring, users_file):
    svc = DispatchService(mosquitto.url, tmp_path / "dispatch.db", users_file, ("127.0.0.1", 0), DEMO, keyring=keyring)
    with svc:
        yield svc


def _demo_units(publisher, now: float) -> list[str]:
    """The demo's ten patrols where they start, plus six more bunched 100 m apart (a convoy)."""
    sc = load(DEMO)
    ids = []
    for i, t in enumerate(sc.trackers):
        leg = t.route[0]
        lat, lon = sc.roads[leg["road"]].latlon_at_km(leg["from_km"])
        publisher.send(f"owntracks/roadedge/{t.id}", location(1, lat, lon, now, cog=90 + i))
        ids.append(t.id)
    for i in range(6):
        lat, lon = sc.roads["G60"].latlon_at_km(6.0 + i * 0.1)
        uid = f"trk-1{i:02d}"
        publisher.send(f"owntracks/roadedge/{uid}", location(1, lat, lon, now))
        ids.append(uid)
    return ids


def _signs_report(publisher) -> None:
    for sid, lim in (("vsl-01", 80), ("vsl-02", 60), ("vsl-03", 40)):
        publisher.send(f"re/{sid}/state", {"limit": lim, "legend": "FOG", "source": "central", "check": 1, "comm": "ok",
                                           "faults": [], "temp_c": 30.0}, retain=True)


@pytest.mark.parametrize("width", [1280, 390])
def test_labels_never_overlap_at_the_demo_default_zoom_nor_close_in(demo_console, publisher, browser, width, tmp_path):
    now = time.time()
    ids = _demo_units(publisher, now)
    _signs_report(publisher)
    page, errors = login(browser, demo_console.url, "disp", "disp-pass-123", viewport=(width, 800))
    page.wait_for_function(f"Object.keys(window.RE.units).length === {len(ids)} && window.RE.fitted", timeout=10000)
    page.evaluate(SETTLED)
    default = page.evaluate(LABEL_OVERLAPS)
    page.screenshot(path=str(tmp_path / f"labels-{width}.png"))
    assert default["overlaps"] == [], default
    if width >= 1280:  # at the desk's default zoom names can be read: most lone units and a sign carry theirs
        assert sum(s.startswith("vsl-") for s in default["shown"]) >= 1, default
        assert sum(s.startswith("trk-") for s in default["shown"]) >= 4, default
    # the convoy is one counted cluster, not six arrows on top of each other
    clusters = page.eval_on_selector_all("#map .cluster b", "els => els.map(e => +e.textContent)")
    assert clusters and sum(clusters) >= 2, clusters

    # close in on the convoy: every unit stands alone, and still no label covers another
    page.evaluate("RE.map.setView(RE.units['trk-102'].getLatLng(), 17, {animate: false}); 0")
    page.wait_for_function("!document.querySelector('#map .cluster') && "
                           "document.querySelector('#map .lbl.lbl-on[data-id=\"trk-102\"]')", timeout=5000)
    page.evaluate(SETTLED)
    close = page.evaluate(LABEL_OVERLAPS)
    assert close["overlaps"] == [], close
    assert "trk-102" in close["shown"], close
    assert not errors, errors


def test_an_sos_unit_never_hides_in_a_cluster_and_keeps_its_name(demo_console, publisher, browser):
    now = time.time()
    _demo_units(publisher, now)
    page, errors = login(browser, demo_console.url, "disp", "disp-pass-123", viewport=(1280, 800))
    page.wait_for_function("window.RE.units['trk-103'] && document.querySelector('#map .cluster')", timeout=10000)
    publisher.send("re/trk-103/event", {"seq": 9, "ts": time.time(), "type": "sos", "id": 1, "since": time.time()})
    page.wait_for_selector('#map .unit-sos .lbl[data-id="trk-103"]', timeout=5000)
    page.evaluate(SETTLED)
    assert page.evaluate(BOX, '#map .unit-sos .lbl[data-id="trk-103"]')["shown"]
    assert page.evaluate(LABEL_OVERLAPS)["overlaps"] == []
    assert not errors, errors


@pytest.mark.parametrize("size", [(390, 844), (800, 1280), (1280, 800)])
def test_map_and_alarm_panel_stay_in_view_and_the_header_fits(console, publisher, browser, size, tmp_path):
    w, h = size
    publisher.send("owntracks/roadedge/trk-a", location(1, 30.3000, 120.0010, time.time()))
    # an SOS banner takes room too: the map must still be there
    publisher.send("re/trk-b/event", {"seq": 50, "ts": time.time(), "type": "sos", "id": 7, "since": time.time(),
                                      "lat": 30.3050, "lon": 120.0080})
    page, errors = login(browser, console.url, "disp", "disp-pass-123", viewport=size)
    page.wait_for_selector('#sos-banner .sos-item[data-unit="trk-b"]', timeout=5000)
    page.evaluate(SETTLED)
    page.screenshot(path=str(tmp_path / f"layout-{w}x{h}.png"))
    m = page.evaluate(BOX, "#map")
    assert m["shown"] and m["left"] >= 0 and m["right"] <= w + 0.5 and m["top"] >= 0
    assert m["width"] >= min(w, 1280) * 0.6 and m["height"] >= 200, m  # a usable map, not a sliver
    assert m["bottom"] <= h, m
    a = page.evaluate(BOX, "#alarm-panel")
    assert a and a["shown"] and a["width"] >= 300 and a["height"] > 0, a
    assert a["top"] < h - 40 and a["left"] >= 0 and a["right"] <= w + 0.5, a  # in view without scrolling
    hdr = page.evaluate("(() => { const e = document.querySelector('header'); return [e.scrollWidth, e.clientWidth, "
                        "Math.max(...Array.from(e.children).map(c => c.getBoundingClientRect().right))]; })()")
    assert hdr[0] <= hdr[1] and hdr[2] <= w, hdr
    assert page.evaluate("document.documentElement.scrollWidth") <= w
    # the SOS acknowledgement and a new incident stay reachable on the smallest screen
    for sel in ('#sos-banner .sos-ack[data-unit="trk-b"]', "#new-incident", "#logout"):
        b = page.evaluate(BOX, sel)
        assert b["shown"] and b["right"] <= w and b["bottom"] <= h, (sel, b)
    assert not errors, errors


def test_side_panel_shows_a_signs_detail_history_in_plain_words_and_agrees_with_the_zone(console, publisher,
                                                                                          browser):
    # after a power-up the sign shows its configured message (blank), then the controller's 80 arrives
    publisher.send("re/vsl-1/state", {"limit": None, "legend": "", "source": "powerRecovery", "power_loss": "long",
                                      "check": 0, "comm": "ok", "faults": [], "temp_c": 41.0, "local": False},
                   retain=True)
    assert console.ingest.wait_idle(1)
    publisher.send("re/vsl-1/state", {"limit": 80, "legend": "FOG", "source": "central", "power_loss": "long",
                                      "check": 11791, "commanded": 80, "comm": "ok", "faults": ["over_temp"],
                                      "temp_c": 61.5, "local": False}, retain=True)
    publisher.send("re/vsl-1/tele", {"seq": 1, "ts": time.time(), "limit": 80, "temp_c": 61.5})
    # the controller's view lags one update behind (the sign reports what it actually shows)
    publisher.send("re/ctl/z1/state", {"zone": "z1", "mode": "automatic", "ts": time.time(), "closure": [],
                                       "signs": [{"id": "vsl-1", "vis_m": 150, "recommended": 80, "pending": None,
                                                  "commanded": 80, "displayed": 100, "source": "central"}]},
                   retain=True)
    page, errors = login(browser, console.url, "disp", "disp-pass-123")
    page.wait_for_selector('.zone[data-zone="z1"] tr[data-sign="vsl-1"]', timeout=5000)
    page.wait_for_function("window.RE.signs['vsl-1'] && window.RE.signs['vsl-1'].state.limit === 80", timeout=5000)

    # one answer to "what does vsl-1 show": the map, the sign table and the zone table
    zone = page.inner_text('.zone[data-zone="z1"] tr[data-sign="vsl-1"] td.shows')
    table = page.inner_text('#sign-table tr[data-sign="vsl-1"] td.shows')
    face = page.inner_text("#map .sign-icon .face")
    assert zone == table == "80 FOG" and face == "80", (zone, table, face)
    assert "set by the control centre" in page.inner_text('#sign-table tr[data-sign="vsl-1"]')

    # click the sign on the map, as a person does: the side panel opens with its detail and history
    page.evaluate("RE.map.setView(RE.signs['vsl-1']._m.getLatLng(), 15, {animate: false})")
    page.evaluate(SETTLED)
    page.click("#map .sign-icon .face")
    page.wait_for_selector('#detail-panel:not(.hidden)[data-id="vsl-1"]', timeout=5000)
    page.wait_for_selector("#detail-sources tr td", timeout=5000)
    page.wait_for_function("document.querySelector('#detail-sources').innerText.includes('restored after power loss')",
                           timeout=5000)
    now_text = page.inner_text("#detail-now")
    assert "80" in page.inner_text("#detail-now .big-face")
    assert "set by the control centre" in now_text
    assert "61.5 °C" in now_text and "over-temperature" in now_text and "long power loss" in now_text
    hist = page.inner_text("#detail-sources")
    assert "restored after power loss (long power loss)" in hist and "blank" in hist
    assert "powerRecovery" not in page.inner_text("body")  # no jargon anywhere on the page
    assert page.evaluate(BOX, "#detail-panel")["shown"]
    page.keyboard.press("Escape")
    page.wait_for_selector("#detail-panel.hidden", state="attached", timeout=5000)
    assert not errors, errors


def test_beacon_layer_and_list_show_mode_and_trouble_and_open_the_panel(console, publisher, browser):
    publisher.send("re/bcn-f1-r000/state", {"mode": "anti_rear_end", "reason": "auto", "level": 4, "vis_m": 45,
                                            "meter": "ok", "battery": "ok", "lamps": {"yellow": "ok", "red": "ok"}},
                   retain=True)
    publisher.send("re/bcn-f1-r001/state", {"mode": "guidance", "reason": "safe", "level": 2, "vis_m": None,
                                            "meter": "silent", "meter_reason": "no_reply", "battery": "dim",
                                            "lamps": {"yellow": "ok", "red": "out"}}, retain=True)
    publisher.send("re/bcn-f1-r001/event", {"seq": 3, "ts": time.time(), "type": "fault", "what": "meter",
                                            "status": "silent", "reason": "no_reply", "safe_mode": "guidance"})
    page, errors = login(browser, console.url, "disp", "disp-pass-123")
    page.wait_for_selector('#beacon-table tr[data-beacon="bcn-f1-r001"]', timeout=5000)
    page.wait_for_function("document.querySelector('#beacon-table tr[data-beacon=\"bcn-f1-r001\"]').innerText"
                           ".includes('not answering')", timeout=5000)
    first = page.eval_on_selector_all("#beacon-table tbody tr", "rs => rs.map(r => r.dataset.beacon)")
    assert first[0] == "bcn-f1-r001", first  # the one that needs attention comes first
    assert "anti-rear-end" in page.inner_text('#beacon-table tr[data-beacon="bcn-f1-r000"]')
    assert "need attention" in page.inner_text("#beacon-summary")
    page.click('#beacon-table tr[data-beacon="bcn-f1-r001"] a.go')
    page.wait_for_selector('#detail-panel:not(.hidden)[data-id="bcn-f1-r001"]', timeout=5000)
    page.wait_for_function("document.querySelector('#detail-history').innerText.includes('fault: meter')",
                           timeout=5000)
    t = page.inner_text("#detail-now")
    assert "guidance" in t and "meter not ok: safe mode" in t and "not answering" in t and "out" in t, t
    assert not errors, errors


class _Tiles(http.server.BaseHTTPRequestHandler):
    # a 1x1 PNG for every tile
    PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c63f8"
                        "cfc0f01f0005000201a5d6f3a40000000049454e44ae426082")
    hits: list[str] = []

    def do_GET(self):  # noqa: N802
        self.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(self.PNG)))
        self.end_headers()
        self.wfile.write(self.PNG)

    def log_message(self, *a):
        pass


def test_a_tile_server_when_configured_and_the_deployments_own_drawing_always(mosquitto, tmp_path, deployment,
                                                                              keyring, users_file, browser):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Tiles)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/tiles/{{z}}/{{x}}/{{y}}.png"
        with DispatchService(mosquitto.url, tmp_path / "d.db", users_file, ("127.0.0.1", 0), deployment,
                             tile_url=url, keyring=keyring) as svc:
            page, errors = login(browser, svc.url, "view", "view-pass-123")
            page.wait_for_selector("#map img.leaflet-tile-loaded", timeout=10000)
            assert any(h.startswith("/tiles/") for h in _Tiles.hits)
            assert page.evaluate("RE.map.hasLayer(RE.tiles) && document.querySelector('#map').classList.contains('has-tiles')")
            assert not errors, errors
    finally:
        srv.shutdown()
        srv.server_close()
    # without a tile server: no tile requested, the road network drawn (roads, km posts) from the deployment
    with DispatchService(mosquitto.url, tmp_path / "e.db", users_file, ("127.0.0.1", 0), deployment,
                         keyring=keyring) as svc:
        page, errors = login(browser, svc.url, "view", "view-pass-123")
        assert page.evaluate("!document.querySelector('#map img.leaflet-tile') && !RE.tiles")
        roads = page.evaluate("(() => { let n = 0; RE.map.eachLayer(l => { if (l.feature && l.feature.properties.kind === 'expressway') n++; }); return n; })()")
        assert roads == 1
        assert page.query_selector("#map .km-post")
        assert not errors, errors


def test_device_detail_api_is_for_logged_in_users_and_bounded(console, publisher, browser):
    publisher.send("re/vsl-1/state", {"limit": 60, "source": "central"}, retain=True)
    assert console.ingest.wait_idle(1)
    page, _ = login(browser, console.url, "view", "view-pass-123")
    d = page.evaluate("fetch('/api/devices/vsl-1').then(r => r.json())")
    assert d["kind"] == "sign" and d["state"]["limit"] == 60 and d["changes"][0]["body"]["source"] == "central"
    assert page.evaluate("fetch('/api/devices/nope').then(r => r.status)") == 404
    anon = page.context.browser.new_context()
    try:
        r = anon.request.get(console.url + "/api/devices/vsl-1")
        assert r.status == 401 and "log in" in json.loads(r.body())["error"]
    finally:
        anon.close()


def test_other_console_scripts_plug_in_through_the_hooks(console, publisher, browser):
    """events.js, incidents.js and the rest add live-update kinds and react to the map without editing it."""
    page, errors = login(browser, console.url, "disp", "disp-pass-123")
    page.evaluate("""() => { window.seen = {sse: [], device: [], select: []};
        RE.onEvent('devices', (list) => seen.sse.push(list.map(d => d.id)));
        RE.on('device', (d) => seen.device.push(d.id));
        RE.on('select', (kind, id) => seen.select.push([kind, id])); }""")
    publisher.send("re/vsl-1/state", {"limit": 60, "source": "reset"}, retain=True)
    page.wait_for_function("seen.sse.flat().includes('vsl-1') && seen.device.includes('vsl-1')", timeout=5000)
    page.evaluate("RE.showDetail('sign', 'vsl-1')")
    assert page.evaluate("seen.select") == [["sign", "vsl-1"]]
    assert page.evaluate("RE.signShows('vsl-1').text") == "after a restart"
    assert not errors, errors
