/* roadedge dispatcher console: one page, live over SSE, every asset served by the console. */
"use strict";
(function () {
  const $ = (s) => document.querySelector(s);
  const esc = (s) => String(s == null ? "" : s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const RE = (window.RE = { units: {}, signs: {}, beacons: {}, incidents: {}, dispatches: {}, sos: [], me: null, ctl: {}, devices: {} });
  // Device data is checked by the console before it gets here, and the page still trusts none of it:
  // one bad record is skipped (and logged), never the end of the rest, the live updates or an SOS.
  const isNum = (v) => typeof v === "number" && isFinite(v);
  const isPos = (lat, lon) => isNum(lat) && isNum(lon) && Math.abs(lat) <= 90 && Math.abs(lon) <= 180;
  function guard(f, what) { try { f(); } catch (e) { console.error("skipped", what, e); } }
  function each(list, f, what) { for (const x of Array.isArray(list) ? list : []) guard(() => f(x), what); }
  let csrf = "", map, layers, clockSkew = 0, es = null, rankFor = null;

  function toast(msg, bad) {
    const t = $("#toast"); t.textContent = msg; t.className = bad ? "bad" : ""; clearTimeout(toast.t);
    toast.t = setTimeout(() => t.classList.add("hidden"), 4000);
  }
  async function api(method, url, body) {
    const opt = { method, headers: {}, credentials: "same-origin" };
    if (method !== "GET") { opt.headers["Content-Type"] = "application/json"; opt.headers["X-CSRF-Token"] = csrf; opt.body = JSON.stringify(body || {}); }
    const r = await fetch(url, opt);
    const j = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(j.error || r.statusText);
    return j;
  }
  RE.api = api; RE.toast = toast;  // hooks: events.js, admin.js and reports.js call the API the same way
  const now = () => Date.now() / 1000 + clockSkew;
  function age(t) {
    if (!t) return "—";
    const s = Math.max(0, now() - t);
    return s < 90 ? Math.round(s) + " s" : s < 5400 ? Math.round(s / 60) + " min" : Math.round(s / 3600) + " h";
  }
  const fmtTime = (t) => (t ? new Date(t * 1000).toLocaleTimeString() : "");
  // hooks for the page's other scripts (static/incidents.js): helpers, and every live update after app.js saw it
  const hooks = {};
  Object.assign(RE, { api, toast, esc, fmtTime, isPos, guard, on: (k, f) => (hooks[k] = hooks[k] || []).push(f),
    emit: (k, d) => each(hooks[k], (f) => f(d), "hook " + k) });

  // ---- login ----
  async function boot() {
    let me = null;
    try { me = await api("GET", "/api/me"); } catch (e) { }
    if (me && me.user) start(me); else $("#login").classList.remove("hidden");
  }
  $("#login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try { const me = await api("POST", "/api/login", { user: $("#login-user").value, password: $("#login-pass").value }); $("#login").classList.add("hidden"); start(me); }
    catch (e) { $("#login-error").textContent = e.message; }
  });
  $("#logout").addEventListener("click", async () => { try { await api("POST", "/api/logout"); } catch (e) { } location.reload(); });

  async function start(me) {
    RE.me = me; csrf = me.csrf;
    $("#whoami").textContent = me.user + " (" + me.role + ")";
    $("#sign-role-note").textContent = me.role === "supervisor" ? "" : "(only a supervisor may change signs)";
    if (!window.L) { toast("map library missing: run python -m host_tools.dispatch.assets", true); }
    else initMap();
    try { await loadSnapshot(true); } catch (e) { toast("could not load the current state: " + e.message, true); }
    connectEvents();
    setInterval(() => guard(tick, "tick"), 1000);
    document.dispatchEvent(new CustomEvent("re:start", { detail: me }));  // hook: admin.js, reports.js
  }

  // ---- map ----
  function initMap() {
    map = RE.map = L.map("map", { zoomControl: true, attributionControl: false, preferCanvas: true, zoomSnap: 0.25 });
    // labels only when zoomed in far enough to read them (a 20 km deployment has 100+ units)
    const labelZoom = () => $("#map").classList.toggle("zoomed-out", map.getZoom() < 13.5);
    map.on("zoomend", labelZoom);
    layers = { roads: L.layerGroup().addTo(map), fog: L.layerGroup().addTo(map), beacons: L.layerGroup().addTo(map),
      signs: L.layerGroup().addTo(map), incidents: L.layerGroup().addTo(map), units: L.layerGroup().addTo(map), track: L.layerGroup().addTo(map) };
    L.control.layers(null, { "Beacons": layers.beacons, "Fog": layers.fog, "Signs": layers.signs, "Units": layers.units }, { collapsed: true }).addTo(map);
    L.control.scale({ imperial: false }).addTo(map);
    const legend = L.control({ position: "bottomright" });
    legend.onAdd = () => {
      const d = L.DomUtil.create("div", "legend");
      d.innerHTML = '<b>Units</b><br><span style="color:#1565c0">▲</span> available · <span style="color:#d9822b">▲</span> dispatched · <span style="color:#8895a3">▲</span> offline<br>' +
        '<span style="color:#c0392b">red label</span> = fix older than 2 min<br><b>Beacons</b> <span class="dot" style="background:#f1c40f"></span> contour <span class="dot" style="background:#f39c12"></span> guidance <span class="dot" style="background:#c0392b"></span> red tail / alarm<br>' +
        '<b>Fog</b> <span class="bar" style="background:#f1c40f"></span>&lt;500 m <span class="bar" style="background:#e67e22"></span>&lt;200 <span class="bar" style="background:#c0392b"></span>&lt;100 <span class="bar" style="background:#7b241c"></span>&lt;50';
      return d;
    };
    legend.addTo(map);
    map.setView([30.3, 120.04], 13);
    labelZoom();
    RE.layers = layers;
  }
  function drawRoads(g, tileUrl) {
    if (!map) return;
    if (tileUrl && !RE.tiles) { RE.tiles = L.tileLayer(tileUrl, { maxZoom: 19 }).addTo(map); }
    layers.roads.clearLayers();
    if (!g) return;
    const gj = L.geoJSON(g, { style: (f) => f.properties.kind === "section"
      ? { color: "#f0c419", weight: 14, opacity: 0.25 }
      : { color: f.properties.kind === "expressway" ? "#4a5a6a" : "#7d8b99", weight: f.properties.kind === "expressway" ? 6 : 4, opacity: 0.9 },
      onEachFeature: (f, l) => l.bindTooltip(esc(f.properties.name || f.properties.id || "")) });
    gj.addTo(layers.roads);
    if (!RE.fitted) { try { map.fitBounds(gj.getBounds(), { padding: [20, 20] }); RE.fitted = true; } catch (e) { } }
  }
  function unitIcon(u) {
    const st = u.state || {};
    const sosOpen = RE.sos.some((s) => s.device === u.id && !s.acked_at);
    const busy = ["sent", "delivered", "accepted", "en_route", "on_scene"].includes(u.unit_status);
    const stale = u.tst && now() - u.tst > 120;
    let cls = "unit-icon " + (u.status === "offline" ? "unit-off" : busy ? "unit-busy" : "unit-ok");
    if (stale) cls += " unit-stale"; if (sosOpen) cls += " unit-sos";
    const rot = typeof u.cog === "number" && !sosOpen ? u.cog : 0;
    const html = '<div class="arrow" data-unit="' + esc(u.id) + '" data-status="' + esc(u.unit_status || "") + '" style="transform:rotate(' + rot + 'deg)">' + (sosOpen ? "SOS" : "▲") + '</div>' +
      '<span class="lbl" data-id="' + esc(u.id) + '">' + esc(u.id) + " · " + (u.vel != null ? Math.round(u.vel) + " km/h" : "") + " · " + age(u.tst) + "</span>";
    return L.divIcon({ className: cls + " unit-marker", html, iconSize: [34, 34], iconAnchor: [17, 17] });
  }
  function unitPopup(u) {
    const st = u.state || {};
    return "<b>" + esc(u.id) + "</b><br>status: " + esc((u.unit_status || u.status || "?").replace(/_/g, " ")) + (st.duty != null ? " · duty: " + esc(st.duty) : "") +
      "<br>speed " + (u.vel != null ? Math.round(u.vel) : "—") + " km/h · heading " + (u.cog != null ? Math.round(u.cog) + "°" : "—") +
      "<br>fix " + age(u.tst) + " old" + (u.live === 0 ? " (catch-up)" : "") + (u.sat != null ? " · " + u.sat + " sats" : "") + (u.hdop != null ? " · HDOP " + u.hdop : "") +
      (st.batt != null ? "<br>battery " + esc(st.batt) + " %" : "") + (st.backlog ? " · " + esc(st.backlog) + " reports waiting" : "") +
      (st.incident ? "<br>incident " + esc(st.incident) : "");
  }
  function upsertUnit(u) {
    RE.devices[u.id] = u;
    if (!map || !isPos(u.lat, u.lon)) return;
    let m = RE.units[u.id];
    if (!m) { m = RE.units[u.id] = L.marker([u.lat, u.lon], { icon: unitIcon(u), zIndexOffset: 1000 }).addTo(layers.units); m.bindPopup(""); }
    m.setLatLng([u.lat, u.lon]); m.setIcon(unitIcon(u)); m.getPopup().setContent(unitPopup(u)); m.data = u;
  }
  function signLimit(st) {
    if (!st) return null;
    return st.limit == null ? null : st.limit;  // the sign's state: what its face shows (docs/topics.md)
  }
  function upsertSign(s) {
    RE.signs[s.id] = s;
    if (!map || !isPos(s.lat, s.lon)) return;
    const st = s.state || {}, lim = signLimit(st);
    const blank = lim == null || lim === 0 || lim === "blank";
    const icon = L.divIcon({ className: "sign-icon" + (blank ? " blank" : ""), iconSize: [34, 34], iconAnchor: [17, 17],
      html: (blank ? "—" : esc(lim)) + '<span class="src">' + esc(s.id) + " · " + esc(st.source || (s.status === "offline" ? "offline" : "?")) + "</span>" });
    let m = s._m || (RE.signs[s.id]._m = L.marker([s.lat, s.lon], { icon }).addTo(layers.signs).bindTooltip(""));
    s._m = m; m.setIcon(icon);
    m.setTooltipContent("<b>" + esc(s.id) + "</b><br>shows " + (blank ? "blank" : esc(lim) + " km/h") + "<br>source: " + esc(st.source || "?") + (st.legend ? "<br>" + esc(st.legend) : "") + (st.check ? "<br>check " + esc(st.check) : ""));
    renderSignTable();
  }
  const beaconColor = (st) => {
    const mode = (st && st.mode) || "";
    if (/red|alarm|tail|rear/.test(mode)) return "#c0392b";
    if (/guid/.test(mode)) return "#f39c12";
    if (/contour/.test(mode)) return "#f1c40f";
    return "#95a5a6";
  };
  function upsertBeacon(b) {
    if (!map || !isPos(b.lat, b.lon)) { RE.beacons[b.id] = b; return; }
    const old = RE.beacons[b.id]; const st = b.state || {};
    const vis = st.vis_m != null ? st.vis_m : st.vis != null ? st.vis : st.visibility;
    const opts = { radius: 3, weight: 1, color: "#333", fillColor: beaconColor(st), fillOpacity: b.status === "offline" ? 0.2 : 0.95 };
    if (old && old._m) { old._m.setStyle(opts); b._m = old._m; }
    else b._m = L.circleMarker([b.lat, b.lon], opts).addTo(layers.beacons);
    b._m.bindTooltip(esc(b.id) + "<br>mode: " + esc(st.mode || "?") + (st.reason ? " (" + esc(st.reason) + ")" : "") + "<br>visibility: " + (vis != null ? esc(Math.round(vis)) + " m" : "?") + (b.status === "offline" ? "<br><b>offline</b>" : ""));
    RE.beacons[b.id] = b;
  }
  function drawFog(segs) {
    if (!map) return;
    layers.fog.clearLayers();
    for (const s of segs || []) {
      const c = s.min_vis < 50 ? "#7b241c" : s.min_vis < 100 ? "#c0392b" : s.min_vis < 200 ? "#e67e22" : "#f1c40f";
      L.polyline(s.points, { color: c, weight: 22, opacity: 0.35 }).bindTooltip("fog " + s.from_km + "–" + s.to_km + " km, visibility down to " + Math.round(s.min_vis) + " m").addTo(layers.fog);
    }
  }
  function upsertIncident(i) {
    if (!i) return;
    const old = RE.incidents[i.id]; if (old && old._m) layers.incidents.removeLayer(old._m);
    RE.incidents[i.id] = i;
    if (map && i.status !== "closed" && isPos(i.lat, i.lon)) {
      i._m = L.marker([i.lat, i.lon], { icon: L.divIcon({ className: "inc-icon", html: "<span></span><b>#" + i.id + "</b>", iconSize: [24, 24], iconAnchor: [12, 12] }) })
        .bindTooltip("#" + i.id + " P" + i.priority + " " + esc(i.text)).addTo(layers.incidents);
      i._m.on("click", () => { showRank(i.id); if (RE.openIncident) RE.openIncident(i.id); });
    }
    renderIncidents();
  }

  // ---- panels ----
  function renderIncidents() {
    const ul = $("#incident-list"); ul.innerHTML = "";
    Object.values(RE.incidents).filter((i) => i.status !== "closed").sort((a, b) => b.id - a.id).forEach((i) => {
      const li = document.createElement("li"); li.dataset.id = i.id;
      li.innerHTML = "<b>#" + i.id + "</b> P" + i.priority + " " + esc((i.type || "").replace(/_/g, " ")) + " " + esc(i.text) + ' <span class="grow"></span><button class="rank-btn">Nearest units</button><button class="close-btn">Open</button>';
      li.querySelector(".rank-btn").onclick = () => showRank(i.id);
      li.querySelector(".close-btn").onclick = () => RE.openIncident && RE.openIncident(i.id);
      ul.appendChild(li);
    });
  }
  async function showRank(id) {
    rankFor = id;
    $("#rank-box").classList.remove("hidden"); $("#rank-incident").textContent = "#" + id;
    const ol = $("#rank-list"); ol.innerHTML = "<li>ranking…</li>";
    let r; try { r = await api("GET", "/api/incidents/" + id + "/rank"); } catch (e) { ol.innerHTML = "<li>" + esc(e.message) + "</li>"; return; }
    ol.innerHTML = "";
    if (!r.length) ol.innerHTML = "<li>no available unit</li>";
    r.forEach((u) => {
      const li = document.createElement("li"); li.dataset.unit = u.unit;
      li.innerHTML = "<b>" + esc(u.unit) + "</b> " + (u.eta_s != null ? Math.round(u.eta_s / 6) / 10 + " min" : "off-road") +
        ' <span class="muted">' + (u.road_m != null ? (u.road_m / 1000).toFixed(1) + " km by road, " : "") + (u.straight_m / 1000).toFixed(1) + ' km direct</span><span class="grow"></span><button class="dispatch-btn">Dispatch</button>';
      li.querySelector(".dispatch-btn").onclick = async () => {
        try { await api("POST", "/api/dispatch", { incident: id, unit: u.unit }); toast("dispatch sent to " + u.unit); } catch (e) { toast(e.message, true); }
      };
      ol.appendChild(li);
    });
  }
  function renderDispatches() {
    const ul = $("#dispatch-list"); ul.innerHTML = "";
    Object.values(RE.dispatches).sort((a, b) => b.id - a.id).slice(0, 20).forEach((d) => {
      const steps = ["sent", "delivered", "accepted", "en_route", "on_scene", "cleared"];
      const k = steps.indexOf(d.status);
      const li = document.createElement("li"); li.dataset.id = d.id; li.dataset.status = d.status;
      li.innerHTML = "<b>" + esc(d.unit) + "</b> → #" + d.incident + " " + steps.map((s, i) => (i <= k ? "<b>" + s.replace("_", " ") + "</b>" : '<span class="muted">' + s.replace("_", " ") + "</span>")).join(" → ") +
        (d.status === "en_route" && isNum(d.eta_s) ? " · ETA " + Math.max(1, Math.round(d.eta_s / 60)) + " min" : "") +
        (k < 0 ? ' <b style="color:#c0392b">' + esc(d.status) + "</b> " + esc(d.detail || "") : "");
      ul.appendChild(li);
    });
  }
  function renderSignTable() {
    const tb = $("#sign-table tbody"); tb.innerHTML = "";
    Object.values(RE.signs).sort((a, b) => (a.id < b.id ? -1 : 1)).forEach((s) => {
      const st = s.state || {}, lim = signLimit(st);
      tb.insertAdjacentHTML("beforeend", "<tr><td>" + esc(s.id) + "</td><td>" + (lim == null || lim === 0 ? "blank" : esc(lim)) + "</td><td>" + esc(st.source || s.status || "") + "</td></tr>");
    });
  }
  function zoneSigns(z) {
    const s = z.signs || {};
    if (Array.isArray(s)) return s.map((x) => [x.id || x.sign, x]);
    return Object.entries(s);
  }
  function renderZones() {
    const box = $("#zones"); box.innerHTML = "";
    const sup = RE.me && RE.me.role === "supervisor";
    for (const [zone, z] of Object.entries(RE.ctl || {})) {
      if (!z || typeof z !== "object") continue;
      const div = document.createElement("div"); div.className = "zone"; div.dataset.zone = zone;
      let h = "<b>zone " + esc(zone) + "</b> · mode " + (sup ? '<select class="zone-mode">' + ["automatic", "approve", "manual"].map((m) => "<option" + (m === z.mode ? " selected" : "") + ">" + m + "</option>").join("") + "</select>" : esc(z.mode || "?")) +
        (z.closure && z.closure.length ? ' · <b class="error">closure: ' + esc(z.closure.join(", ")) + "</b>" : "") +
        "<table><tr><th>sign</th><th>vis m</th><th title=\"controller recommendation\">rec.</th><th title=\"waiting for approval\">pending</th><th>cmd.</th><th>shows</th><th></th></tr>";
      for (const [sid, s] of zoneSigns(z)) {
        if (!s || typeof s !== "object") continue;
        const pend = s.pending != null && s.pending !== false;
        const disp = (s.displayed == null ? "—" : esc(s.displayed)) + (s.source ? " (" + esc(s.source) + ")" : "") + (s.hold != null ? " hold " + esc(s.hold) : "");
        h += '<tr class="' + (pend ? "pending" : "") + '" data-sign="' + esc(sid) + '"><td>' + esc(sid) + "</td><td>" + (s.vis_m != null ? Math.round(s.vis_m) : "") + "</td><td>" + esc(s.recommended) + "</td><td>" + (pend ? esc(typeof s.pending === "object" ? s.pending.limit : s.pending) : "") +
          // approve mode: an unattended tightening is applied by the controller at approve_by (unix s)
          (pend && s.approve_by != null ? ' <span class="countdown" data-by="' + Number(s.approve_by) + '" title="applied for safety unless approved or vetoed">' + countdownText(s.approve_by) + "</span>" : "") +
          "</td><td>" + esc(s.commanded) + "</td><td>" + disp + "</td><td>" +
          (pend ? '<button class="sign-op" data-action="approve">Approve</button><button class="sign-op" data-action="veto">Veto</button>' : "") +
          '<button class="sign-op" data-action="manual">Set…</button></td></tr>';
      }
      h += "</table>";
      div.innerHTML = h;
      div.querySelectorAll(".sign-op").forEach((b) => {
        if (!sup) b.title = "only a supervisor may change a sign";
        b.onclick = () => signOp(zone, b.closest("tr").dataset.sign, b.dataset.action);
      });
      const ms = div.querySelector(".zone-mode");
      if (ms) ms.onchange = async () => { try { await api("POST", "/api/sign", { zone, action: "mode", limit: ms.value, reason: "mode change" }); toast("mode " + ms.value + " sent"); } catch (e) { toast(e.message, true); } };
      box.appendChild(div);
    }
  }
  function countdownText(by) {
    return "auto in " + Math.max(0, Math.round(by - Date.now() / 1000)) + " s";
  }
  setInterval(() => document.querySelectorAll("#zones .countdown").forEach((el) => { el.textContent = countdownText(Number(el.dataset.by)); }), 1000);
  async function signOp(zone, sign, action) {
    let limit = null, reason = "";
    if (action === "manual") { const v = prompt("Limit for " + sign + " (km/h, 20-120 step 10, at most the Art. 81 limit for its visibility):"); if (v == null) return; limit = parseInt(v, 10); reason = prompt("Reason:") || ""; }
    try { await api("POST", "/api/sign", { zone, sign, action, limit, reason }); toast(action + " sent for " + sign); }
    catch (e) { toast(e.message, true); }
  }
  function renderUnits() {
    const tb = $("#unit-table tbody"); tb.innerHTML = "";
    const sel = $("#hist-unit"); const cur = sel.value; const opts = [];
    Object.values(RE.devices).filter((u) => u.lat != null).sort((a, b) => (a.id < b.id ? -1 : 1)).forEach((u) => {
      const stale = u.tst && now() - u.tst > 120;
      tb.insertAdjacentHTML("beforeend", '<tr data-unit="' + esc(u.id) + '"><td><a href="#" class="go">' + esc(u.id) + "</a></td><td class=\"unit-status\">" + esc((u.unit_status || (u.state || {}).duty || u.status || "").replace(/_/g, " ")) + "</td><td>" + (u.vel != null ? Math.round(u.vel) : "") + '</td><td style="' + (stale ? "color:#c0392b" : "") + '">' + age(u.tst) + "</td></tr>");
      opts.push(u.id);
    });
    tb.querySelectorAll("a.go").forEach((a) => a.onclick = (e) => { e.preventDefault(); const m = RE.units[a.textContent]; if (m) { map.setView(m.getLatLng(), 16); m.openPopup(); } });
    if (sel.options.length !== opts.length) { sel.innerHTML = opts.map((o) => "<option>" + esc(o) + "</option>").join(""); if (cur) sel.value = cur; }
  }
  function renderRejects(r) {
    const tb = $("#reject-table tbody"); tb.innerHTML = "";
    const e = Object.entries(r || {});
    if (!e.length) tb.innerHTML = '<tr><td colspan="3" class="muted">none</td></tr>';
    each(e, ([k, v]) => tb.insertAdjacentHTML("beforeend", '<tr data-reason="' + esc(k) + '"><td>' + esc(k) + '</td><td class="count">' + v.count + "</td><td>" + esc(v.last_topic) + "</td></tr>"), "reject");
  }
  function renderStats(s) {
    if (!s) return;
    const cleaned = Object.values(s.cleaned || {}).reduce((a, b) => a + (isNum(b) ? b : 0), 0);
    $("#ingest-stats").textContent = s.received + " msgs · " + s.stored + " stored · " + s.dupes + " dup · " + s.rejected + " rejected" + (cleaned ? " · " + cleaned + " cleaned" : "");
    const c = $("#conn"); c.textContent = s.connected ? "broker connected" : "broker DISCONNECTED"; c.className = "pill " + (s.connected ? "ok" : "bad");
  }
  function addAudit(a, prepend) {
    const tb = $("#audit-table tbody");
    const row = "<tr><td>" + fmtTime(a.at) + "</td><td>" + esc(a.user) + " <span class='muted'>" + esc(a.role || "") + "</span></td><td>" + esc(a.action) + " " + esc(a.target) + '</td><td class="' + (/^refused|^failed/.test(a.result) ? "error" : "") + '">' + esc(a.result) + "</td></tr>";
    tb.insertAdjacentHTML(prepend ? "afterbegin" : "beforeend", row);
    while (tb.rows.length > 100) tb.deleteRow(-1);
  }

  // ---- SOS ----
  let audioCtx = null;
  // Browsers only allow sound after a user gesture: any click (the login button too) arms it.
  function armSound() {
    try { audioCtx = audioCtx || new (window.AudioContext || window.webkitAudioContext)(); audioCtx.resume(); } catch (e) { }
    const p = $("#sound"); if (p) { const on = audioCtx && audioCtx.state === "running"; p.textContent = on ? "sound on" : "sound off: click anywhere"; p.className = "pill " + (on ? "ok" : "bad"); }
  }
  document.addEventListener("click", armSound, true);
  function beep() {
    try {
      audioCtx = audioCtx || new (window.AudioContext || window.webkitAudioContext)();
      [0, 0.35, 0.7].forEach((t) => {
        const o = audioCtx.createOscillator(), g = audioCtx.createGain();
        o.frequency.value = 880; o.type = "square"; g.gain.value = 0.15;
        o.connect(g); g.connect(audioCtx.destination); o.start(audioCtx.currentTime + t); o.stop(audioCtx.currentTime + t + 0.2);
      });
    } catch (e) { /* no audio device: the banner still shows */ }
  }
  function renderSos(list, fresh) {
    const before = new Set(RE.sos.filter((s) => !s.acked_at).map((s) => s.device + ":" + s.seq));
    RE.sos = (Array.isArray(list) ? list : []).filter((s) => s && typeof s === "object");
    const open = RE.sos.filter((s) => !s.acked_at);
    const b = $("#sos-banner");
    const wasHidden = b.classList.contains("hidden");
    setTimeout(() => { if (map && wasHidden !== b.classList.contains("hidden")) map.invalidateSize(); }, 0);
    if (!open.length) { b.classList.add("hidden"); b.innerHTML = ""; }
    else {
      b.classList.remove("hidden");
      b.innerHTML = open.map((s) => '<span class="sos-item" data-unit="' + esc(s.device) + '">SOS ' + esc(s.device) + " at " + (isPos(s.lat, s.lon) ? s.lat.toFixed(5) + ", " + s.lon.toFixed(5) : "unknown position") + " · " + fmtTime(s.rx) +
        ' <button class="sos-go">Show</button> <button class="sos-ack" data-unit="' + esc(s.device) + '">Acknowledge</button> <button class="sos-incident" data-unit="' + esc(s.device) + '">Incident…</button></span>').join(" ");
      b.querySelectorAll(".sos-ack").forEach((x) => x.onclick = async () => { try { await api("POST", "/api/sos/ack", { unit: x.dataset.unit }); toast("acknowledgement sent to " + x.dataset.unit); } catch (e) { toast(e.message, true); } });
      b.querySelectorAll(".sos-go").forEach((x) => x.onclick = () => { const s = open.find((o) => o.device === x.parentNode.dataset.unit); if (s && map && isPos(s.lat, s.lon)) map.setView([s.lat, s.lon], 16); });
      const isNew = open.some((s) => !before.has(s.device + ":" + s.seq));
      if (isNew && fresh) { beep(); const s = open[0]; if (map && isPos(s.lat, s.lon)) map.panTo([s.lat, s.lon]); }
    }
    each(RE.sos, (s) => { const u = RE.devices[s.device]; if (u) upsertUnit(u); }, "sos unit");
    const acked = RE.sos.filter((s) => s.acked_at).slice(0, 1);
    if (acked.length && acked[0].device_ack) $("#sos-banner").dataset.lastAck = acked[0].device + ":" + acked[0].device_ack;
  }

  // ---- data flow ----
  async function loadSnapshot(first) {
    const s = await api("GET", "/api/snapshot");
    clockSkew = s.now - Date.now() / 1000;
    if (first) guard(() => drawRoads(s.roads, s.tile_url), "roads");
    guard(() => renderSos(s.sos, false), "sos");  // first: nothing else may keep an SOS off the screen
    each(s.units, upsertUnit, "unit");
    each(s.signs, upsertSign, "sign");
    each(s.beacons, upsertBeacon, "beacon");
    guard(() => drawFog(s.fog), "fog");
    guard(() => { RE.ctl = s.ctl || {}; renderZones(); }, "zones");
    each(s.dispatches, (d) => (RE.dispatches[d.id] = d), "dispatch"); guard(renderDispatches, "dispatches");
    each(s.incidents, upsertIncident, "incident");
    guard(() => renderSos(s.sos, false), "sos");  // again, now that the units are on the map
    guard(() => renderRejects(s.rejects), "rejects"); guard(() => renderStats(s.stats), "stats"); guard(renderUnits, "units");
    $("#audit-table tbody").innerHTML = ""; each(s.audit, (a) => addAudit(a, false), "audit");
    RE.emit("snapshot", s);
    RE.ready = true;
    armSound();
  }
  function connectEvents() {
    if (es) es.close();
    es = new EventSource("/api/events");
    RE.es = es; document.dispatchEvent(new CustomEvent("re:events", { detail: es }));  // hook: admin.js
    const on = (k, f) => es.addEventListener(k, (ev) => { try { const d = JSON.parse(ev.data); f(d); RE.emit(k, d); } catch (e) { console.error(k, e); } });
    on("devices", (list) => { each(list, (d) => { if (d.kind === "unit") upsertUnit(d); else if (d.kind === "sign") upsertSign(d); else if (d.kind === "beacon") upsertBeacon(d); }, "device"); renderUnits(); });
    on("fog", drawFog);
    on("sos", (l) => renderSos(l, true));
    on("incident", upsertIncident);
    on("dispatch", (d) => { RE.dispatches[d.id] = d; renderDispatches(); const u = RE.devices[d.unit]; if (u) upsertUnit(u); });
    on("ctl", (c) => { RE.ctl = c; renderZones(); });
    on("rejects", renderRejects);
    on("stats", renderStats);
    on("audit", (a) => addAudit(a, true));
    on("resync", () => loadSnapshot(false));
    if (window.REEvents) guard(() => window.REEvents.attach(es), "events");  // alarms and the event log: events.js
    on("timeline", () => { });  // drawn by incidents.js (RE.on)
    es.onopen = () => { RE.live = true; };
    es.onerror = () => { RE.live = false; $("#conn").textContent = "console reconnecting…"; $("#conn").className = "pill bad"; };
  }
  function tick() {
    for (const u of Object.values(RE.devices)) if (RE.units[u.id]) RE.units[u.id].setIcon(unitIcon(u));
    renderUnits();
  }

  // ---- incidents: placing, the form, the lifecycle and the timeline are static/incidents.js ----
  RE.upsertIncident = upsertIncident; RE.showRank = showRank; RE.rankFor = () => rankFor;

  // ---- history ----
  const toLocal = (t) => { const d = new Date(t * 1000 - new Date().getTimezoneOffset() * 60000); return d.toISOString().slice(0, 19); };
  const fromLocal = (s) => new Date(s).getTime() / 1000;
  $("#hist-from").value = toLocal(now() - 3600); $("#hist-to").value = toLocal(now() + 60);
  function histQuery(fmt) {
    return "/api/track?unit=" + encodeURIComponent($("#hist-unit").value) + "&from=" + fromLocal($("#hist-from").value) + "&to=" + fromLocal($("#hist-to").value) + (fmt ? "&format=" + fmt : "");
  }
  function updateLinks() { $("#hist-gpx").href = histQuery("gpx"); $("#hist-geojson").href = histQuery("geojson"); }
  ["#hist-unit", "#hist-from", "#hist-to"].forEach((s) => $(s).addEventListener("change", updateLinks));
  let track = [], playMarker = null, playTimer = null;
  $("#hist-load").addEventListener("click", async () => {
    updateLinks();
    track = await api("GET", histQuery());
    layers.track.clearLayers(); playMarker = null;
    $("#hist-info").textContent = track.length ? track.length + " fixes" : "no fixes in that time range";
    if (!track.length) return;
    const line = L.polyline(track.map((p) => [p.lat, p.lon]), { color: "#8e44ad", weight: 3 }).addTo(layers.track);
    if (track.length > 1) map.fitBounds(line.getBounds(), { padding: [40, 40], maxZoom: 17 });
    else map.setView([track[0].lat, track[0].lon], 16);
    const sl = $("#hist-slider"); sl.max = track.length - 1; sl.value = 0; sl.classList.remove("hidden");
    showAt(0);
  });
  function showAt(i) {
    const p = track[i]; if (!p) return;
    if (!playMarker) playMarker = L.circleMarker([p.lat, p.lon], { radius: 8, color: "#8e44ad", fillOpacity: 1 }).addTo(layers.track);
    playMarker.setLatLng([p.lat, p.lon]);
    $("#hist-info").textContent = new Date(p.tst * 1000).toLocaleString() + " · " + (p.vel != null ? Math.round(p.vel) + " km/h" : "") + (p.live === 0 ? " · catch-up" : "") + " · " + (i + 1) + "/" + track.length;
  }
  $("#hist-slider").addEventListener("input", (e) => showAt(+e.target.value));
  $("#hist-play").addEventListener("click", () => {
    if (playTimer) { clearInterval(playTimer); playTimer = null; $("#hist-play").textContent = "▶ Play"; return; }
    const sl = $("#hist-slider"); $("#hist-play").textContent = "❚❚ Pause";
    playTimer = setInterval(() => { if (+sl.value >= track.length - 1) { clearInterval(playTimer); playTimer = null; $("#hist-play").textContent = "▶ Play"; return; } sl.value = +sl.value + 1; showAt(+sl.value); }, 200);
  });

  boot();
})();
