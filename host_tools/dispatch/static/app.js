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

  // ---- hooks: the other console scripts (events.js, incidents.js, ...) plug in here ----
  // RE.on("start" | "snapshot" | "device" | "select" | "stream", fn): called with (me) / (snapshot) / (device) /
  // (kind, id) / (the EventSource, on every (re)connect).
  // RE.onEvent(kind, fn): a live-update (SSE) event kind, re-attached on every reconnect.
  const hooks = {}, sseHandlers = [];
  RE.on = (name, fn) => { (hooks[name] = hooks[name] || []).push(fn); };
  function emit(name, ...args) { for (const f of hooks[name] || []) guard(() => f(...args), "hook " + name); }
  RE.emit = emit;
  RE.onEvent = (kind, fn) => { sseHandlers.push([kind, fn]); if (es) listen(es, kind, fn); };
  function listen(src, kind, f) { src.addEventListener(kind, (ev) => { try { f(JSON.parse(ev.data)); } catch (e) { console.error(kind, e); } }); }

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
  const now = () => Date.now() / 1000 + clockSkew;
  function age(t) {
    if (!t) return "—";
    const s = Math.max(0, now() - t);
    return s < 90 ? Math.round(s) + " s" : s < 5400 ? Math.round(s / 60) + " min" : Math.round(s / 3600) + " h";
  }
  const fmtTime = (t) => (t ? new Date(t * 1000).toLocaleTimeString() : "");
  // a history row's time: 24 h clock, the date too when it is not today
  const clock = (t) => { if (!t) return ""; const d = new Date(t * 1000), hm = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
    return d.toDateString() === new Date().toDateString() ? hm : d.toLocaleDateString() + " " + hm; };
  Object.assign(RE, { $, esc, api, toast, age, fmtTime, guard, each, isNum, isPos, now: () => now() });

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
    $("#whoami").textContent = $("#whoami").title = me.user + " (" + me.role + ")";
    $("#sign-role-note").textContent = me.role === "supervisor" ? "" : "(only a supervisor may change signs)";
    if (!window.L) { toast("map library missing: run python -m host_tools.dispatch.assets", true); }
    else initMap();
    emit("start", me);
    try { await loadSnapshot(true); } catch (e) { toast("could not load the current state: " + e.message, true); }
    connectEvents();
    setInterval(() => guard(tick, "tick"), 1000);
  }

  // ---- map ----
  // Readable at any zoom: unit markers cluster where they are dense (an SOS unit never hides in a cluster),
  // labels show on hover, for the selected device, and at close zoom only where they do not cover another
  // label or a sign's face (placeLabels), and every device opens a side panel with its detail and history.
  const LABEL_ZOOM = 13;  // below it only SOS units carry a label; hover still shows any
  const CLUSTER_OFF_ZOOM = 16;  // from here every unit stands alone
  const word = (table, code) => { const w = ((RE.words || {})[table] || {})[code]; return w || (code == null || code === "" ? "" : String(code)); };
  // why a sign shows what it shows, in plain words ("restored after power loss (long power loss)")
  function sourceText(st) {
    if (!st || !st.source) return "";
    return word("sign_source", st.source) + (st.source === "powerRecovery" && st.power_loss ? " (" + word("power_loss", st.power_loss) + ")" : "");
  }
  RE.sourceText = sourceText;
  function initMap() {
    map = RE.map = L.map("map", { maxZoom: 19, zoomControl: true, attributionControl: false, preferCanvas: true, zoomSnap: 0.25 });
    const cluster = (cls) => L.markerClusterGroup ? L.markerClusterGroup({
      // no animation: a moving unit re-clusters at once and labels are placed on a still map
      maxClusterRadius: 44, disableClusteringAtZoom: CLUSTER_OFF_ZOOM, showCoverageOnHover: false, spiderfyOnMaxZoom: true, animate: false,
      iconCreateFunction: (c) => {
        const kids = c.getAllChildMarkers();
        const busy = kids.some((m) => m.data && isBusy(m.data.id));
        return L.divIcon({ className: "cluster " + cls + (busy ? " cluster-busy" : ""), iconSize: [36, 36],
          html: "<b>" + kids.length + "</b>" + (busy ? '<i title="some dispatched"></i>' : "") });
      } }) : L.layerGroup();
    layers = { roads: L.layerGroup().addTo(map), fog: L.layerGroup().addTo(map), beacons: L.layerGroup().addTo(map),
      signs: L.layerGroup().addTo(map), incidents: L.layerGroup().addTo(map), units: cluster("cluster-units").addTo(map),
      alerts: L.layerGroup().addTo(map), track: L.layerGroup().addTo(map) };
    L.control.layers(null, { "Beacons": layers.beacons, "Fog": layers.fog, "Signs": layers.signs, "Units": layers.units }, { collapsed: true }).addTo(map);
    L.control.scale({ imperial: false }).addTo(map);
    const legend = L.control({ position: "bottomright" });
    legend.onAdd = () => {
      const d = L.DomUtil.create("details", "legend");
      d.open = !window.matchMedia("(max-width: 700px)").matches;  // a phone keeps the map for the map
      d.innerHTML = "<summary>Legend</summary>" +
        '<b>Units</b> <span style="color:#1565c0">▲</span> available · <span style="color:#d9822b">▲</span> dispatched · <span style="color:#8895a3">▲</span> offline · <span class="dot" style="background:#1565c0"></span><b>3</b> cluster<br>' +
        '<span style="color:#c0392b">red name</span> = fix older than 2 min · hover or zoom in for names<br><b>Beacons</b> <span class="dot" style="background:#f1c40f"></span> contour <span class="dot" style="background:#f39c12"></span> guidance <span class="dot" style="background:#c0392b"></span> red tail <span class="dot" style="background:#7b241c"></span> section alarm <span class="dot" style="background:#fff"></span> offline<br>' +
        '<b>Fog</b> <span class="bar" style="background:#f1c40f"></span>&lt;500 m <span class="bar" style="background:#e67e22"></span>&lt;200 <span class="bar" style="background:#c0392b"></span>&lt;100 <span class="bar" style="background:#7b241c"></span>&lt;50';
      L.DomEvent.disableClickPropagation(d);
      return d;
    };
    legend.addTo(map);
    map.setView([30.3, 120.04], 13);
    map.on("zoomend", () => { $("#map").classList.toggle("zoomed-out", map.getZoom() < LABEL_ZOOM); placeLabelsSoon(); });
    map.on("moveend", placeLabelsSoon);
    if (layers.units.on) layers.units.on("animationend", placeLabelsSoon);
    $("#map").classList.toggle("zoomed-out", map.getZoom() < LABEL_ZOOM);
    if (window.ResizeObserver) new ResizeObserver(() => { map.invalidateSize(); placeLabelsSoon(); }).observe($("#map"));
    RE.layers = layers;
  }
  function drawRoads(g, tileUrl) {
    if (!map) return;
    if (tileUrl && !RE.tiles) { RE.tiles = L.tileLayer(tileUrl, { maxZoom: 19 }).addTo(map); $("#map").classList.add("has-tiles"); }
    layers.roads.clearLayers();
    if (!g) return;
    // no tiles: the deployment's own drawing is the base map (casing + centre line, fog sections, names, km posts)
    const road = (f) => f.properties.kind === "expressway" ? { color: "#4a5a6a", weight: 7 } : f.properties.kind === "ramp" ? { color: "#7d8b99", weight: 3 } : { color: "#7d8b99", weight: 5 };
    const gj = L.geoJSON(g, { style: (f) => f.properties.kind === "section"
      ? { color: "#f0c419", weight: 16, opacity: 0.22 }
      : { ...road(f), opacity: tileUrl ? 0.55 : 0.9 },
      onEachFeature: (f, l) => l.bindTooltip(esc(f.properties.name || f.properties.id || ""), { sticky: true }) });
    gj.addTo(layers.roads);
    gj.eachLayer((l) => { const f = l.feature; if (f && f.properties.kind === "expressway" && l.getLatLngs) kmPosts(l.getLatLngs(), f.properties); });
    if (!RE.fitted) { try { map.fitBounds(gj.getBounds(), { padding: [20, 20], animate: false }); RE.fitted = true; } catch (e) { } }
  }
  // a small "km N" post every kilometre along an expressway (what a rider radios in), its name at the start
  function kmPosts(pts, props) {
    pts = pts.flat(2);
    let along = 0, next = 1000;
    for (let i = 1; i < pts.length; i++) {
      const a = L.latLng(pts[i - 1]), b = L.latLng(pts[i]), d = a.distanceTo(b);
      while (along + d >= next) {
        const f = (next - along) / d, ll = [a.lat + (b.lat - a.lat) * f, a.lng + (b.lng - a.lng) * f];
        L.marker(ll, { interactive: false, keyboard: false, icon: L.divIcon({ className: "km-post", iconSize: [0, 0],
          html: '<span class="lbl-km">' + (next === 1000 ? esc(props.id || "") + " " : "") + "km " + next / 1000 + "</span>" }) }).addTo(layers.roads);
        next += 1000;
      }
      along += d;
    }
  }
  // the server's unit_status follows the incident desk (incidents.ACTIVE): busy from sent to on scene
  const BUSY = ["sent", "delivered", "accepted", "en_route", "on_scene"];
  const isBusy = (id) => { const u = RE.devices[id]; return !!u && BUSY.includes(u.unit_status); };
  const sosOpenFor = (id) => RE.sos.some((s) => s.device === id && !s.acked_at);
  function unitIcon(u) {
    const sosOpen = sosOpenFor(u.id), busy = isBusy(u.id);
    const stale = u.tst && now() - u.tst > 120;
    let cls = "unit-icon " + (u.status === "offline" ? "unit-off" : busy ? "unit-busy" : "unit-ok");
    if (stale) cls += " unit-stale"; if (sosOpen) cls += " unit-sos"; if (selected.id === u.id) cls += " selected";
    const rot = typeof u.cog === "number" && !sosOpen ? u.cog : 0;
    const html = '<div class="arrow" data-unit="' + esc(u.id) + '" data-status="' + esc(u.unit_status || "") + '" style="transform:rotate(' + rot + 'deg)">' + (sosOpen ? "SOS" : "▲") + '</div>' +
      '<span class="lbl" data-id="' + esc(u.id) + '">' + esc(u.id) + '<span class="more"></span></span>';
    return L.divIcon({ className: cls + " unit-marker", html, iconSize: [34, 34], iconAnchor: [17, 17] });
  }
  // A marker's icon is replaced only when its look changes (a click half-made on a replaced element is lost);
  // speed and fix age are written into it in place, every second.
  function drawUnit(m, u) {
    const ic = unitIcon(u), look = ic.options.className + ic.options.html;
    if (m._look !== look) { m.setIcon(ic); m._look = look; }
    const el = m.getElement(), more = el && el.querySelector(".more");
    if (more) more.textContent = " · " + (u.vel != null ? Math.round(u.vel) + " km/h · " : "") + age(u.tst);
  }
  function upsertUnit(u) {
    RE.devices[u.id] = u;
    emit("device", u);
    if (!map || !isPos(u.lat, u.lon)) return;
    let m = RE.units[u.id];
    // an SOS unit stands on its own layer: never folded into a cluster
    const home = sosOpenFor(u.id) ? layers.alerts : layers.units;
    if (!m) {
      m = RE.units[u.id] = L.marker([u.lat, u.lon], { icon: unitIcon(u), zIndexOffset: 1000, riseOnHover: true });
      m.on("click", () => showDetail("unit", u.id));
      m.on("add", () => drawUnit(m, m.data));  // out of a cluster: a fresh element, fill it in
    }
    m.data = u;
    if (m._home !== home) { if (m._home) m._home.removeLayer(m); m.setLatLng([u.lat, u.lon]); home.addLayer(m); m._home = home; }
    else m.setLatLng([u.lat, u.lon]);
    drawUnit(m, u);
    if (selected.id === u.id) renderDetailNow();
    placeLabelsSoon();
  }
  // What a sign shows: its own report of its face (F_LIMIT in roadedge.wire: null = blank), never the controller's
  // idea of it. The map, the sign table, the zone table and the side panel all read it from here.
  function signShows(id) {
    const s = RE.signs[id];
    const st = s && s.state;
    if (!st || typeof st !== "object") return null;
    const lim = st.limit;
    return { blank: lim == null || lim === 0 || lim === "blank", limit: lim, legend: st.legend || "", source: st.source, text: sourceText(st), offline: s.status === "offline" };
  }
  RE.signShows = signShows;
  const showsText = (sh) => (sh == null ? "no report" : sh.blank ? "blank" : esc(sh.limit) + (sh.legend ? " " + esc(sh.legend) : ""));
  function upsertSign(s) {
    const old = RE.signs[s.id];
    RE.signs[s.id] = s;
    emit("device", s);
    if (map && isPos(s.lat, s.lon)) {
      const sh = signShows(s.id) || { blank: true };
      const icon = L.divIcon({ className: "sign-icon" + (sh.blank ? " blank" : "") + (s.status === "offline" ? " offline" : "") + (selected.id === s.id ? " selected" : ""), iconSize: [34, 34], iconAnchor: [17, 17],
        html: '<span class="face">' + (sh.blank ? "—" : esc(sh.limit)) + '</span><span class="lbl src">' + esc(s.id) + '<span class="more"> · ' + esc(sh.text || (s.status === "offline" ? "offline" : "no report")) + "</span></span>" });
      let m = old && old._m;
      if (!m) { m = L.marker([s.lat, s.lon], { icon, riseOnHover: true }).addTo(layers.signs); m.on("click", () => showDetail("sign", s.id)); }
      s._m = m; m.setIcon(icon); m.data = s;
      placeLabelsSoon();
    }
    renderSignTable(); updateZoneShows();
    if (selected.id === s.id) { renderDetailNow(); refreshHistorySoon(); }
  }
  // beacon colour by the firmware's mode names (docs/topics.md "Beacon")
  const BEACON_COLOR = { standby: "#95a5a6", contour: "#f1c40f", guidance: "#f39c12", anti_rear_end: "#c0392b", section_alarm: "#7b241c" };
  const beaconTrouble = (b) => { const st = b.state || {}; const lamps = st.lamps || {};
    return b.status === "offline" ? "offline" : st.meter && st.meter !== "ok" ? "meter " + word("meter", st.meter) : Object.values(lamps).some((v) => v === "out") ? "lamp out" : st.battery && st.battery !== "ok" ? "battery " + word("battery", st.battery) : ""; };
  function upsertBeacon(b) {
    const old = RE.beacons[b.id];
    RE.beacons[b.id] = b;
    emit("device", b);
    if (map && isPos(b.lat, b.lon)) {
      const st = b.state || {}, off = b.status === "offline", trouble = beaconTrouble(b);
      const opts = { radius: selected.id === b.id ? 7 : 4, weight: trouble ? 2 : 1, color: selected.id === b.id ? "#1565c0" : trouble ? "#000" : "#333",
        fillColor: off ? "#fff" : BEACON_COLOR[st.mode] || "#95a5a6", fillOpacity: off ? 0.6 : 0.95 };
      if (old && old._m) { old._m.setStyle(opts); old._m.setRadius(opts.radius); b._m = old._m; }
      else { b._m = L.circleMarker([b.lat, b.lon], opts).addTo(layers.beacons); b._m.on("click", () => showDetail("beacon", b.id)); }
      b._m[b._m.getTooltip() ? "setTooltipContent" : "bindTooltip"](esc(b.id) + " · " + esc(word("beacon_mode", st.mode) || "no report") + (st.vis_m != null ? " · " + esc(Math.round(st.vis_m)) + " m" : "") + (trouble ? " · <b>" + esc(trouble) + "</b>" : ""));
    }
    renderBeaconsSoon();
    if (selected.id === b.id) { renderDetailNow(); refreshHistorySoon(); }
  }
  function drawFog(segs) {
    if (!map) return;
    layers.fog.clearLayers();
    for (const s of segs || []) {
      const c = s.min_vis < 50 ? "#7b241c" : s.min_vis < 100 ? "#c0392b" : s.min_vis < 200 ? "#e67e22" : "#f1c40f";
      L.polyline(s.points, { color: c, weight: 22, opacity: 0.35 }).bindTooltip("fog " + s.from_km + "–" + s.to_km + " km, visibility down to " + Math.round(s.min_vis) + " m").addTo(layers.fog);
    }
  }

  // ---- labels: never on top of each other ----
  // Greedy placement in order of importance (selected, SOS, dispatched, signs, the rest): each label tries its
  // usual place, then right, left, below and above its marker; one that would still cover a label already
  // placed, a sign's face, a unit or a cluster stays hidden (hover shows it). Rebuilt after every move.
  let labelFrame = 0;
  function placeLabelsSoon() { if (!labelFrame) labelFrame = requestAnimationFrame(() => { labelFrame = 0; guard(placeLabels, "labels"); }); }
  function placeLabels() {
    const box = $("#map");
    const all = Array.from(box.querySelectorAll(".unit-marker .lbl, .sign-icon .lbl, .km-post .lbl-km"));
    const rank = (el) => { const m = el.closest(".leaflet-marker-icon"); if (!m) return 9;
      return m.classList.contains("selected") ? 0 : m.classList.contains("unit-sos") ? 1 : m.classList.contains("unit-busy") ? 2 : m.classList.contains("sign-icon") ? 3 : el.classList.contains("lbl-km") ? 5 : 4; };
    const zoomedOut = map.getZoom() < LABEL_ZOOM;
    const want = all.filter((el) => !zoomedOut || rank(el) <= 1);
    // writes first, then every read, then writes again: one layout, however many labels
    for (const el of all) { el.classList.remove("lbl-on"); el.style.left = el.style.top = ""; }
    for (const el of want) el.classList.add("lbl-on");
    // what a label must not cover: sign faces, unit arrows, clusters, incidents (other than its own marker)
    const marks = Array.from(box.querySelectorAll(".sign-icon, .unit-marker .arrow, .cluster, .inc-icon span")).map((m) => ({ m: m.closest(".leaflet-marker-icon"), r: m.getBoundingClientRect() }));
    const view = box.getBoundingClientRect();
    const items = want.map((el) => {
      const own = el.closest(".leaflet-marker-icon"), body = own && (own.querySelector(".arrow") || own);
      const parent = el.offsetParent;
      return { el, own, k: rank(el), r: el.getBoundingClientRect(), m: body && !el.classList.contains("lbl-km") ? body.getBoundingClientRect() : null,
        p: parent ? parent.getBoundingClientRect() : null, pl: parent ? parent.clientLeft : 0, pt: parent ? parent.clientTop : 0 };
    }).sort((a, b) => a.k - b.k);
    const placed = [];
    const hit = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
    const rect = (left, top, w, h) => ({ left, top, right: left + w, bottom: top + h, width: w, height: h });
    const free = (it, r) => r.right <= view.right && r.left >= view.left && r.top >= view.top && r.bottom <= view.bottom &&
      !placed.some((p) => hit(p, r)) && !marks.some((k) => k.m !== it.own && hit(k.r, r));
    for (const it of items) {
      const r = it.r, m = it.m, w = r.width, h = r.height;
      const tries = [r];
      if (m) { const cy = m.top + (m.height - h) / 2, cx = m.left + (m.width - w) / 2;
        tries.push(rect(m.right + 2, cy, w, h), rect(m.left - w - 2, cy, w, h), rect(cx, m.bottom + 1, w, h), rect(cx, m.top - h - 1, w, h)); }
      const spot = w ? tries.find((c) => free(it, c)) : null;
      // the selected device and a rider in distress always carry their name; the rest make way for them
      if (!spot && it.k > 1) { it.el.classList.remove("lbl-on"); continue; }
      const at = spot || r;
      if (at !== r && it.p) { it.el.style.left = (at.left - it.p.left - it.pl) + "px"; it.el.style.top = (at.top - it.p.top - it.pt) + "px"; }
      placed.push(at);
    }
  }
  RE.placeLabels = placeLabels;
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

  // ---- side panel: one sign, beacon or unit, now and its history ----
  const selected = { kind: null, id: null };
  let detailHist = null, histTimer = 0, histSeq = 0, detailHtml = "";
  function restyle(id) {
    if (!id) return;
    if (RE.signs[id]) upsertSign(RE.signs[id]);
    else if (RE.beacons[id]) upsertBeacon(RE.beacons[id]);
    else if (RE.devices[id]) upsertUnit(RE.devices[id]);
  }
  function showDetail(kind, id) {
    const prev = selected.id;
    selected.kind = kind; selected.id = id; detailHist = null;
    $("#detail-panel").classList.remove("hidden");
    $("#detail-panel").dataset.kind = kind; $("#detail-panel").dataset.id = id;
    if (prev !== id) restyle(prev);
    restyle(id);
    renderDetailNow(); loadHistory();
    // keep the device in view beside the panel (the panel covers the map's left edge on a wide screen)
    const d = kind === "sign" ? RE.signs[id] : kind === "beacon" ? RE.beacons[id] : RE.devices[id];
    const p = $("#detail-panel").getBoundingClientRect(), mb = $("#map").getBoundingClientRect();
    if (map && d && isPos(d.lat, d.lon) && getComputedStyle($("#detail-panel")).position === "absolute")
      map.panInside([d.lat, d.lon], { paddingTopLeft: [p.right - mb.left + 20, 20], paddingBottomRight: [20, 20] });
    emit("select", kind, id);
  }
  RE.showDetail = showDetail;
  function closeDetail() {
    const prev = selected.id;
    selected.kind = selected.id = null; detailHist = null;
    $("#detail-panel").classList.add("hidden");
    restyle(prev);
  }
  $("#detail-close").addEventListener("click", closeDetail);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape" && selected.id) closeDetail(); });
  // centre the map on a device, opening its cluster if it is folded into one
  function focusOn(kind, id) {
    const d = kind === "sign" ? RE.signs[id] : kind === "beacon" ? RE.beacons[id] : RE.devices[id];
    if (!map || !d || !isPos(d.lat, d.lon)) return;
    const m = kind === "unit" ? RE.units[id] : null;
    if (m && m._home && m._home.zoomToShowLayer) m._home.zoomToShowLayer(m, () => map.panTo(m.getLatLng()));
    else map.setView([d.lat, d.lon], Math.max(map.getZoom(), 15));
  }
  RE.focusOn = focusOn;
  const row = (k, v, cls) => (v === "" || v == null ? "" : '<tr><th>' + k + '</th><td class="' + (cls || "") + '">' + v + "</td></tr>");
  const num = (v, unit, digits) => (isNum(v) ? esc(digits != null ? v.toFixed(digits) : Math.round(v)) + (unit ? " " + unit : "") : "");
  const where = (d) => (d.road ? esc(d.road) + (isNum(d.km) ? " km " + d.km.toFixed(2) : "") : isPos(d.lat, d.lon) ? d.lat.toFixed(5) + ", " + d.lon.toFixed(5) : "not placed");
  const onlineText = (d) => (d.status === "offline" ? '<b class="error">offline</b>' : d.status === "online" ? "online" : "no report");
  const latestTele = () => (detailHist && detailHist.tele && detailHist.tele[0] && detailHist.tele[0].body) || {};
  function zoneViewOf(id) {  // the controller's row for a sign (recommendation, pending approval)
    for (const [zone, z] of Object.entries(RE.ctl || {})) for (const [sid, s] of zoneSigns(z || {})) if (sid === id && s && typeof s === "object") return [zone, s];
    return null;
  }
  function renderDetailNow() {
    const box = $("#detail-now"), k = selected.kind, id = selected.id;
    if (!id) return;
    $("#detail-title").textContent = (k === "sign" ? "Sign " : k === "beacon" ? "Beacon " : "Unit ") + id;
    let h = "";
    if (k === "sign") {
      const s = RE.signs[id] || { id }, st = s.state || {}, sh = signShows(id), tele = latestTele();
      const temp = isNum(st.temp_c) ? st.temp_c : tele.temp_c;
      const zv = zoneViewOf(id);
      const faults = Array.isArray(st.faults) ? st.faults : [];
      h += '<div class="big-face' + (sh && !sh.blank ? "" : " blank") + '">' + (sh ? (sh.blank ? "blank" : esc(sh.limit) + (sh.legend ? " <small>" + esc(sh.legend) + "</small>" : "")) : "no report") + "</div>";
      h += "<table class=\"kv\">" + row("why", esc(sh ? sh.text : "")) + row("status", onlineText(s)) + row("position", where(s)) +
        row("commanded", st.commanded != null ? esc(st.commanded) : "") + row("remaining", num(st.remaining_s, "s")) +
        row("contact with centre", st.comm === "lost" ? '<b class="error">lost</b>' : esc(st.comm || "")) +
        row("local control", st.local ? '<b class="error">on (maintenance switch)</b>' : st.local === false ? "off" : "") +
        row("last power loss", st.power_loss ? esc(word("power_loss", st.power_loss)) : "") +
        row("temperature", num(temp, "°C", 1), isNum(temp) && temp >= 55 ? "error" : "") +
        row("faults", st.faults ? (faults.length ? '<b class="error">' + faults.map((f) => esc(f === "over_temp" ? "over-temperature (LEDs off)" : f)).join(", ") + "</b>" : "none") : "") +
        row("own visibility meter", num(st.vis_m, "m")) + row("supervisor's hold", st.held != null ? esc(st.held) + " km/h" : "") +
        row("check value", st.check != null ? esc(st.check) : "") +
        (zv ? row("zone " + esc(zv[0]), "recommends " + esc(zv[1].recommended) + (zv[1].pending != null && zv[1].pending !== false ? ' · <b>pending ' + esc(typeof zv[1].pending === "object" ? zv[1].pending.limit : zv[1].pending) + "</b>" : "") + (zv[1].vis_m != null ? " · vis " + num(zv[1].vis_m, "m") : "")) : "") +
        row("last seen", s.last_seen ? age(s.last_seen) + " ago" : "") + "</table>";
    } else if (k === "beacon") {
      const b = RE.beacons[id] || { id }, st = b.state || {}, tele = latestTele(), lamps = st.lamps && typeof st.lamps === "object" ? st.lamps : null;
      h += '<div class="big-mode"><span class="dot" style="background:' + (BEACON_COLOR[st.mode] || "#95a5a6") + '"></span> ' + esc(word("beacon_mode", st.mode) || "no report") + "</div>";
      h += '<table class="kv">' + row("why", esc(word("beacon_reason", st.reason))) + row("status", onlineText(b)) + row("position", where(b)) +
        row("visibility", st.vis_m != null ? num(st.vis_m, "m") : st.meter ? "no valid reading" : "") + row("fog level", st.level != null ? esc(st.level) + (Array.isArray(st.levels_m) ? ' <span class="muted">(thresholds ' + st.levels_m.map(esc).join(" / ") + " m)</span>" : "") : "") +
        row("meter", st.meter ? esc(word("meter", st.meter)) + (st.meter_reason ? " (" + esc(st.meter_reason) + ")" : "") + (Array.isArray(st.meter_flags) && st.meter_flags.length ? ' <span class="muted">' + st.meter_flags.map(esc).join(", ") + "</span>" : "") : "", st.meter && st.meter !== "ok" ? "error" : "") +
        row("lamps", lamps ? Object.entries(lamps).map(([c, v]) => esc(c) + " " + (v === "out" ? '<b class="error">out</b>' : esc(v))).join(", ") : "") +
        row("battery", st.battery ? esc(word("battery", st.battery)) + (isNum(tele.batt_v) ? " · " + num(tele.batt_v, "V", 2) : "") : "", st.battery && st.battery !== "ok" ? "error" : "") +
        row("solar", num(tele.solar_v, "V", 2)) + row("override", st.override ? esc(typeof st.override === "object" ? JSON.stringify(st.override) : st.override) : "") +
        row("section alarm", st.alarm ? '<b class="error">on</b>' : "") + row("last seen", b.last_seen ? age(b.last_seen) + " ago" : "") + "</table>";
    } else {
      const u = RE.devices[id] || { id }, st = u.state || {}, tele = latestTele();
      const ds = Object.values(RE.dispatches).filter((d) => d.unit === id).sort((a, b) => b.id - a.id)[0];
      h += '<table class="kv">' + row("status", (sosOpenFor(id) ? '<b class="error">SOS</b> · ' : "") + esc(st.duty || u.status || "")) +
        row("dispatch", ds ? "#" + esc(ds.incident) + " " + esc(String(ds.status).replace("_", " ")) : "") +
        row("speed", num(u.vel, "km/h")) + row("heading", num(u.cog, "°")) +
        row("fix", u.tst ? age(u.tst) + " old" + (u.live === 0 ? " (catch-up)" : "") : "", u.tst && now() - u.tst > 120 ? "error" : "") +
        row("satellites", u.sat != null ? esc(u.sat) + (u.hdop != null ? " · HDOP " + esc(u.hdop) : "") : "") +
        row("battery", st.batt != null ? esc(st.batt) + " %" : isNum(tele.batt) ? esc(tele.batt) + " %" : "") +
        row("reports waiting", st.backlog ? esc(st.backlog) : "") + row("position", isPos(u.lat, u.lon) ? u.lat.toFixed(5) + ", " + u.lon.toFixed(5) : "unknown") + "</table>";
    }
    $("#detail-track").classList.toggle("hidden", k !== "unit");
    if (h !== detailHtml) { box.innerHTML = detailHtml = h; }  // unchanged: leave the DOM (and a selection) alone
  }
  $("#detail-track").addEventListener("click", () => {
    if (selected.kind !== "unit") return;
    $("#hist-unit").value = selected.id; $("#hist-from").value = toLocal(now() - 86400); $("#hist-to").value = toLocal(now() + 60); $("#hist-load").click();
  });
  function refreshHistorySoon() { if (!histTimer) histTimer = setTimeout(() => { histTimer = 0; loadHistory(); }, 1500); }
  async function loadHistory() {
    const id = selected.id, mine = ++histSeq;
    if (!id) return;
    let h;
    try { h = await api("GET", "/api/devices/" + encodeURIComponent(id)); }
    catch (e) { if (mine === histSeq) $("#detail-history").innerHTML = '<p class="muted">' + esc(e.message) + "</p>"; return; }
    if (mine !== histSeq || selected.id !== id) return;  // another device was picked meanwhile
    detailHist = h;
    renderDetailNow(); renderHistory();
  }
  // one line per event, in words (docs/topics.md: event types per role)
  function eventText(b) {
    const t = b.type;
    if (t === "vis_level") return "visibility level " + esc(b.from) + " → " + esc(b.to) + (isNum(b.vis_m) ? " (" + Math.round(b.vis_m) + " m)" : "") + (b.mode ? ", " + esc(word("beacon_mode", b.mode)) : "");
    if (t === "fault") return '<b class="error">fault: ' + esc(b.what) + "</b>" + (b.status ? " " + esc(word("meter", b.status)) : "") + (b.reason ? " (" + esc(b.reason) + ")" : "");
    if (t === "fault_cleared") return "fault cleared: " + esc(b.what);
    if (t === "battery") return "battery " + esc(word("battery", b.from)) + " → " + esc(word("battery", b.state)) + (isNum(b.volts) ? " (" + b.volts.toFixed(2) + " V)" : "");
    if (t === "sos") return '<b class="error">SOS raised</b>';
    if (t === "sos_ack") return "SOS acknowledgement received by the rider";
    if (t === "dispatch_accept") return "accepted incident #" + esc(b.incident);
    if (t === "dispatch_reject") return "declined incident #" + esc(b.incident) + (b.reason ? " (" + esc(b.reason) + ")" : "");
    if (t === "duty") return "duty: " + esc(b.status);
    if (t === "selftest") return "self-test: " + esc(b.kind || "") + (b.ok === false ? ' <b class="error">failed</b>' : "");
    if (t === "meter") return "visibility meter " + esc(b.status || "") + (b.reason ? " (" + esc(b.reason) + ")" : "");
    const rest = Object.entries(b).filter(([k]) => !["seq", "ts", "type"].includes(k)).map(([k, v]) => esc(k) + " " + esc(typeof v === "object" ? JSON.stringify(v) : v)).join(", ");
    return esc(t) + (rest ? ' <span class="muted">' + rest.slice(0, 200) + "</span>" : "");
  }
  function trend(tele, field, unit) {  // newest first in, "now X (min–max over N reports)" out
    const v = tele.map((r) => r.body && r.body[field]).filter(isNum);
    if (!v.length) return "";
    return v[0].toFixed(1) + " " + unit + (v.length > 1 ? ' <span class="muted">(' + Math.min(...v).toFixed(1) + "–" + Math.max(...v).toFixed(1) + " over the last " + v.length + " reports)</span>" : "");
  }
  // state changes (newest first) folded into spans of what matters: a sign re-reporting its temperature, or a
  // beacon its visibility, is not a new row; each span starts when it began and gives the visibility range
  function spans(changes, key) {
    const out = [];
    for (const c of changes) {
      const last = out[out.length - 1], k = key(c.body), v = c.body.vis_m;
      if (last && last.key === k) { last.rx = c.rx; if (isNum(v)) { last.lo = Math.min(last.lo, v); last.hi = Math.max(last.hi, v); } }
      else out.push({ key: k, rx: c.rx, body: c.body, lo: isNum(v) ? v : Infinity, hi: isNum(v) ? v : -Infinity });
    }
    return out;
  }
  const visRange = (g) => (g.lo === Infinity ? "" : Math.round(g.lo) === Math.round(g.hi) ? Math.round(g.lo) + " m" : Math.round(g.lo) + "–" + Math.round(g.hi) + " m");
  function renderHistory() {
    const h = detailHist, k = selected.kind;
    if (!h) return;
    let out = "";
    const all = (h.changes || []).filter((c) => c.kind === "state" && c.body && typeof c.body === "object");
    const changes = k === "sign" ? spans(all, (b) => JSON.stringify([b.limit, b.legend, b.source, b.power_loss, b.comm, b.faults]))
      : k === "beacon" ? spans(all, (b) => JSON.stringify([b.mode, b.reason, b.meter])) : spans(all, (b) => String(b.duty));
    if (k === "sign") {
      const t = trend(h.tele || [], "temp_c", "°C");
      if (t) out += '<p>temperature ' + t + "</p>";
      out += '<table class="hist" id="detail-sources"><tr><th>since</th><th>showed</th><th>why</th></tr>' +
        (changes.length ? changes.map((c) => { const st = c.body;
          const faults = Array.isArray(st.faults) && st.faults.length ? ' <b class="error">' + st.faults.map(esc).join(", ") + "</b>" : "";
          return "<tr><td>" + clock(c.rx) + "</td><td>" + (st.limit == null || st.limit === 0 ? "blank" : esc(st.limit)) + (st.legend ? " " + esc(st.legend) : "") + "</td><td>" + esc(sourceText(st)) + (st.comm === "lost" ? " · contact lost" : "") + faults + "</td></tr>"; }).join("")
          : '<tr><td colspan="3" class="muted">no change recorded yet</td></tr>') + "</table>";
    } else if (k === "beacon") {
      const t = trend(h.tele || [], "batt_v", "V");
      if (t) out += "<p>battery " + t + "</p>";
      out += '<table class="hist" id="detail-modes"><tr><th>since</th><th>mode</th><th>visibility</th></tr>' +
        (changes.length ? changes.map((c) => "<tr><td>" + clock(c.rx) + "</td><td>" + esc(word("beacon_mode", c.body.mode)) + (c.body.reason && c.body.reason !== "auto" ? " (" + esc(word("beacon_reason", c.body.reason)) + ")" : "") + "</td><td>" + visRange(c) + (c.body.meter && c.body.meter !== "ok" ? " meter " + esc(word("meter", c.body.meter)) : "") + "</td></tr>").join("")
          : '<tr><td colspan="3" class="muted">no change recorded yet</td></tr>') + "</table>";
    }
    if (k === "unit" && changes.some((c) => c.body.duty != null))
      out += '<table class="hist" id="detail-duty"><tr><th>since</th><th>duty</th></tr>' + changes.filter((c) => c.body.duty != null).map((c) => "<tr><td>" + clock(c.rx) + "</td><td>" + esc(String(c.body.duty).replace("_", " ")) + "</td></tr>").join("") + "</table>";
    const st = (h.changes || []).filter((c) => c.kind === "status");
    const evs = (h.events || []).map((e) => [e.rx, eventText(e.body || {})]).concat(st.map((c) => [c.rx, c.body === "offline" ? '<b class="error">went offline</b>' : "back online"]))
      .sort((a, b) => b[0] - a[0]).slice(0, 50);
    out += "<h4>Events</h4>" + (evs.length ? '<ul class="list hist-events">' + evs.map(([t, txt]) => "<li><span class=\"muted\">" + clock(t) + "</span> " + txt + "</li>").join("") + "</ul>" : '<p class="muted">none recorded</p>');
    $("#detail-history").innerHTML = out;
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
      const sh = signShows(s.id);
      tb.insertAdjacentHTML("beforeend", '<tr data-sign="' + esc(s.id) + '"' + (selected.id === s.id ? ' class="selected"' : "") + '><td><a href="#" class="go">' + esc(s.id) + '</a></td><td class="shows">' + showsText(sh) + "</td><td>" + esc(sh ? sh.text : s.status || "") + (s.status === "offline" ? ' <b class="error">offline</b>' : "") + "</td></tr>");
    });
    tb.querySelectorAll("a.go").forEach((a) => a.onclick = (e) => { e.preventDefault(); const id = a.closest("tr").dataset.sign; showDetail("sign", id); focusOn("sign", id); });
  }
  // the zone tables' "shows" column: the sign's own report (signShows), the controller's copy only until it has one
  function zoneShows(sid, s) {
    const sh = signShows(sid);
    if (sh) return '<span title="' + esc(sh.text) + '">' + showsText(sh) + "</span>";
    return s && s.displayed != null ? '<span class="muted" title="no report from the sign yet: the controller\'s view">' + esc(s.displayed) + "*</span>" : "—";
  }
  function updateZoneShows() {
    document.querySelectorAll("#zones tr[data-sign] td.shows").forEach((td) => {
      const z = (RE.ctl || {})[td.closest(".zone").dataset.zone] || {};
      const sid = td.closest("tr").dataset.sign, s = (zoneSigns(z).find(([i]) => i === sid) || [])[1];
      td.innerHTML = zoneShows(sid, s);
    });
  }
  // beacons: counts by mode, then every beacon (trouble first, then along the road)
  let beaconTimer = 0;
  function renderBeaconsSoon() { if (!beaconTimer) beaconTimer = setTimeout(() => { beaconTimer = 0; guard(renderBeacons, "beacons"); }, 300); }
  function renderBeacons() {
    const all = Object.values(RE.beacons);
    const byMode = {};
    let trouble = 0;
    for (const b of all) { const m = (b.state || {}).mode || "none"; byMode[m] = (byMode[m] || 0) + 1; if (beaconTrouble(b)) trouble++; }
    $("#beacon-summary").innerHTML = all.length ? Object.entries(byMode).map(([m, n]) => '<span class="chip"><span class="dot" style="background:' + (BEACON_COLOR[m] || "#95a5a6") + '"></span>' + n + " " + esc(m === "none" ? "no report" : word("beacon_mode", m).split(":")[0]) + "</span>").join(" ") + (trouble ? ' <span class="chip error">' + trouble + " need attention</span>" : "") : '<span class="muted">no beacons</span>';
    const key = (b) => [beaconTrouble(b) ? 0 : 1, b.road || "~", isNum(b.km) ? b.km : 1e9, b.id];
    const cmp = (a, b) => { const x = key(a), y = key(b); for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i] < y[i] ? -1 : 1; return 0; };
    const tb = $("#beacon-table tbody");
    tb.innerHTML = all.sort(cmp).map((b) => { const st = b.state || {}, t = beaconTrouble(b);
      return '<tr data-beacon="' + esc(b.id) + '"' + (selected.id === b.id ? ' class="selected"' : "") + '><td><a href="#" class="go">' + esc(b.id) + "</a></td><td>" + (isNum(b.km) ? b.km.toFixed(2) : "") + '</td><td><span class="dot" style="background:' + (BEACON_COLOR[st.mode] || "#95a5a6") + '"></span> ' + esc(word("beacon_mode", st.mode).split(":")[0] || "—") + "</td><td>" + num(st.vis_m, "m") + '</td><td class="' + (t ? "error" : "") + '">' + esc(t || "ok") + "</td></tr>"; }).join("");
    tb.querySelectorAll("a.go").forEach((a) => a.onclick = (e) => { e.preventDefault(); const id = a.closest("tr").dataset.beacon; showDetail("beacon", id); focusOn("beacon", id); });
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
        h += '<tr class="' + (pend ? "pending" : "") + '" data-sign="' + esc(sid) + '"><td>' + esc(sid) + "</td><td>" + (s.vis_m != null ? Math.round(s.vis_m) : "") + "</td><td>" + esc(s.recommended) + "</td><td>" + (pend ? esc(typeof s.pending === "object" ? s.pending.limit : s.pending) : "") +
          // approve mode: an unattended tightening is applied by the controller at approve_by (unix s)
          (pend && s.approve_by != null ? ' <span class="countdown" data-by="' + Number(s.approve_by) + '" title="applied for safety unless approved or vetoed">' + countdownText(s.approve_by) + "</span>" : "") +
          "</td><td>" + esc(s.commanded) + (s.hold != null ? " hold " + esc(s.hold) : "") + '</td><td class="shows">' + zoneShows(sid, s) + "</td><td>" +
          (pend ? '<button class="sign-op" data-action="approve">Approve</button><button class="sign-op" data-action="veto">Veto</button>' : "") +
          '<button class="sign-op" data-action="manual">Set…</button></td></tr>';
      }
      h += "</table>";
      div.innerHTML = h;
      div.querySelectorAll(".sign-op").forEach((b) => {
        if (!sup) b.title = "only a supervisor may change a sign";
        b.onclick = () => signOpToast(zone, b.closest("tr").dataset.sign, b.dataset.action);
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
  async function signOp(zone, sign, action, limit = null, reason = "") {
    if (action === "manual" && limit == null) return openSignDialog(zone, sign);
    await api("POST", "/api/sign", { zone, sign, action, limit, reason });
    toast(action + " sent for " + sign);
  }
  const signOpToast = (...a) => signOp(...a).catch((e) => toast(e.message, true));
  // The Art. 81 ceiling for a visibility, from the contract's ladder (snapshot sign_rules); null = no fog limit.
  function art81(vis) {
    if (!isNum(vis)) return null;
    for (const [m, kmh] of (RE.signRules || {}).art81 || []) if (vis < m) return kmh;
    return null;
  }
  // A supervisor's manual limit: only lawful choices are offered (the signs' range and step, at most Art. 81
  // for the visibility the controller reports at the sign, at most a veto's hold); the controller checks again.
  function openSignDialog(zone, sign) {
    const z = (RE.ctl || {})[zone] || {}, s = (zoneSigns(z).find(([i]) => i === sign) || [])[1] || {};
    const r = RE.signRules || { min: 20, max: 120, step: 10 };
    const cap = art81(s.vis_m), hold = isNum(s.hold) ? s.hold : null;
    const top = Math.min(r.max, cap == null ? r.max : cap, hold == null ? r.max : hold);
    $("#sign-form-title").textContent = "Set the limit on " + sign + " (zone " + zone + ")";
    $("#sign-form-law").textContent = (isNum(s.vis_m) ? "visibility " + Math.round(s.vis_m) + " m · " : "no visibility reported · ") +
      (cap == null ? "no Art. 81 limit" : "Art. 81 allows at most " + cap + " km/h") +
      (hold == null ? "" : " · held at " + hold + " km/h by a veto") +
      (s.recommended != null ? " · controller recommends " + s.recommended : "");
    $("#sign-form-mode").textContent = z.mode === "manual" ? "" : "The zone is in " + (z.mode || "an unknown") + " mode: the controller takes manual limits only in manual mode.";
    const sel = $("#sign-limit"); sel.innerHTML = "";
    for (let v = r.min; v <= r.max; v += r.step) {
      const o = document.createElement("option"); o.value = String(v); o.textContent = String(v);
      if (v > top) { o.disabled = true; o.textContent += v > (cap == null ? r.max : cap) ? " (above Art. 81)" : " (above the hold)"; }
      sel.appendChild(o);
    }
    const ok = [...sel.options].filter((o) => !o.disabled);
    if (ok.length) sel.value = ok[ok.length - 1].value;
    $("#sign-reason").value = ""; $("#sign-form-error").textContent = "";
    const dlg = $("#sign-dialog"); dlg.dataset.zone = zone; dlg.dataset.sign = sign;
    if (!dlg.open) dlg.showModal();
    $("#sign-reason").focus();
  }
  $("#sign-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const dlg = $("#sign-dialog"), reason = $("#sign-reason").value.trim();
    if (reason.length < 3) { $("#sign-form-error").textContent = "Say why (kept in the audit)."; return; }
    try { await signOp(dlg.dataset.zone, dlg.dataset.sign, "manual", parseInt($("#sign-limit").value, 10), reason); dlg.close(); }
    catch (e) { $("#sign-form-error").textContent = e.message; }
  });
  $("#sign-form-cancel").addEventListener("click", () => $("#sign-dialog").close());
  function renderUnits() {
    const tb = $("#unit-table tbody"); tb.innerHTML = "";
    const sel = $("#hist-unit"); const cur = sel.value; const opts = [];
    Object.values(RE.devices).filter((u) => u.lat != null).sort((a, b) => (a.id < b.id ? -1 : 1)).forEach((u) => {
      const stale = u.tst && now() - u.tst > 120;
      tb.insertAdjacentHTML("beforeend", '<tr data-unit="' + esc(u.id) + '"><td><a href="#" class="go">' + esc(u.id) + "</a></td><td class=\"unit-status\">" + esc((u.unit_status || (u.state || {}).duty || u.status || "").replace(/_/g, " ")) + "</td><td>" + (u.vel != null ? Math.round(u.vel) : "") + '</td><td style="' + (stale ? "color:#c0392b" : "") + '">' + age(u.tst) + "</td></tr>");
      opts.push(u.id);
    });
    tb.querySelectorAll("a.go").forEach((a) => a.onclick = (e) => { e.preventDefault(); const id = a.closest("tr").dataset.unit; showDetail("unit", id); focusOn("unit", id); });
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
    $("#ingest-stats").textContent = $("#ingest-stats").title = s.received + " msgs · " + s.stored + " stored · " + s.dupes + " dup · " + s.rejected + " rejected" + (cleaned ? " · " + cleaned + " cleaned" : "");
    const c = $("#conn"); c.textContent = s.connected ? "broker connected" : "broker DISCONNECTED"; c.dataset.short = s.connected ? "live" : "NO BROKER"; c.className = "pill " + (s.connected ? "ok" : "bad");
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
    const p = $("#sound"); if (p) { const on = audioCtx && audioCtx.state === "running"; p.textContent = on ? "sound on" : "sound off: click anywhere"; p.dataset.short = on ? "sound" : "tap for sound"; p.className = "pill " + (on ? "ok" : "bad"); }
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
    RE.words = s.words || RE.words || {};
    if (first) guard(() => drawRoads(s.roads, s.tile_url), "roads");
    guard(() => renderSos(s.sos, false), "sos");  // first: nothing else may keep an SOS off the screen
    each(s.units, upsertUnit, "unit");
    each(s.signs, upsertSign, "sign");
    each(s.beacons, upsertBeacon, "beacon");
    guard(() => drawFog(s.fog), "fog");
    RE.signRules = s.sign_rules || RE.signRules;
    guard(() => { RE.ctl = s.ctl || {}; renderZones(); }, "zones");
    each(s.dispatches, (d) => (RE.dispatches[d.id] = d), "dispatch"); guard(renderDispatches, "dispatches");
    each(s.incidents, upsertIncident, "incident");
    guard(() => renderSos(s.sos, false), "sos");  // again, now that the units are on the map
    guard(() => renderRejects(s.rejects), "rejects"); guard(() => renderStats(s.stats), "stats"); guard(renderUnits, "units");
    $("#audit-table tbody").innerHTML = ""; each(s.audit, (a) => addAudit(a, false), "audit");
    emit("snapshot", s);
    RE.ready = true;
    armSound();
  }
  function connectEvents() {
    if (es) es.close();
    es = new EventSource("/api/events");
    RE.es = es; emit("stream", es);  // events.js (alarms, event log) and admin.js (its own session) listen on it
    // every live update is handed on to the other scripts (RE.on) after app.js handled it
    const on = (k, f) => listen(es, k, (d) => { f(d); emit(k, d); });
    for (const [k, f] of sseHandlers) listen(es, k, f);
    on("devices", (list) => { each(list, (d) => { if (d.kind === "unit") { upsertUnit(d); if (selected.id === d.id) refreshHistorySoon(); } else if (d.kind === "sign") upsertSign(d); else if (d.kind === "beacon") upsertBeacon(d); }, "device"); renderUnits(); });
    on("fog", drawFog);
    on("sos", (l) => renderSos(l, true));
    on("incident", upsertIncident);
    on("dispatch", (d) => { RE.dispatches[d.id] = d; renderDispatches(); const u = RE.devices[d.unit]; if (u) upsertUnit(u); });
    on("ctl", (c) => { RE.ctl = c; renderZones(); if (selected.kind === "sign") renderDetailNow(); });
    on("rejects", renderRejects);
    on("stats", renderStats);
    on("audit", (a) => addAudit(a, true));
    on("resync", () => loadSnapshot(false));
    on("timeline", () => { });  // drawn by incidents.js (RE.on)
    es.onopen = () => { RE.live = true; };
    es.onerror = () => { RE.live = false; $("#conn").textContent = "console reconnecting…"; $("#conn").dataset.short = "reconnecting"; $("#conn").className = "pill bad"; };
  }
  function tick() {
    for (const u of Object.values(RE.devices)) if (RE.units[u.id]) drawUnit(RE.units[u.id], u);
    placeLabelsSoon();
    if (selected.id) renderDetailNow();
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
