/* roadedge console: the alarm list and the event log (API: host_tools/dispatch/events_api.py).
   app.js hands over its live-update stream (RE.on("stream", attach)); every row from the server is device
   data and is escaped; one bad row is skipped, never the rest. */
"use strict";
(function () {
  const $ = (s, el) => (el || document).querySelector(s);
  const { esc, isNum, guard } = window.RE;  // app.js's: one HTML escape for every console script
  const fmt = (t) => (isNum(t) ? new Date(t * 1000).toLocaleString() : "");
  const PAGE = 50;
  const EV = (window.REEvents = { alarms: {}, types: {}, notified: [], sounded: 0, ready: false });
  let cursors = [null], pageNo = 0, filters = {}, started = false;

  function api(method, url, body) {
    if (window.RE && window.RE.api) return window.RE.api(method, url, body);
    return fetch(url).then((r) => r.json());
  }
  function toast(msg, bad) { if (window.RE && window.RE.toast) window.RE.toast(msg, bad); }

  // ---- sound and desktop notifications ----
  let ctx = null;
  function tone(freq, times) {
    try {
      ctx = ctx || new (window.AudioContext || window.webkitAudioContext)();
      if (ctx.state !== "running") ctx.resume();
      for (let i = 0; i < times; i++) {
        const o = ctx.createOscillator(), g = ctx.createGain();
        o.frequency.value = freq; o.type = "triangle"; g.gain.value = 0.12;
        o.connect(g); g.connect(ctx.destination); o.start(ctx.currentTime + i * 0.4); o.stop(ctx.currentTime + i * 0.4 + 0.25);
      }
      EV.sounded++;
    } catch (e) { /* no audio device: the list and the notification still show */ }
  }
  document.addEventListener("click", () => { try { if (ctx) ctx.resume(); } catch (e) { } }, true);
  function notifyState() {
    const b = $("#alarm-notify");
    if (!b) return;
    const p = "Notification" in window ? Notification.permission : "unsupported";
    b.classList.toggle("hidden", p !== "default");
    $("#alarm-notify-state").textContent = p === "granted" ? "desktop notifications on" : p === "denied" ? "desktop notifications blocked by the browser" : p === "unsupported" ? "no desktop notifications in this browser" : "";
  }
  // From this many open alarms of one kind at once (a section's beacons after a power cut), one row, one
  // sound and one notification stand for them all; an SOS always stands alone.
  const GROUP_AT = 5;
  const groupable = (a) => a.type !== "sos";
  function byKind(list, key) {  // alarms by key(a); one that must stand alone keys on its own id
    const out = {};
    for (const a of list) { const k = key(a); (out[k] = out[k] || []).push(a); }
    return out;
  }
  function notify(title, body, tag, critical, onclick) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    try {
      const n = new Notification("roadedge: " + title, { body, tag, requireInteraction: critical });
      n.onclick = () => { window.focus(); onclick(); n.close(); };
    } catch (e) { console.error("notification", e); }
  }
  let burst = [], burstTimer = 0;
  function announce(a) {
    if (EV.notified.includes(a.id)) return;
    EV.notified.push(a.id);
    if (EV.notified.length > 1000) EV.notified.splice(0, 500);
    a.last_sounded = Date.now() / 1000;
    burst.push(a);  // what arrives together is announced together
    if (!burstTimer) burstTimer = setTimeout(() => guard(flushBurst, "announce"), 250);
  }
  function flushBurst() {
    burstTimer = 0;
    for (const g of Object.values(byKind(burst.splice(0), (a) => (groupable(a) ? a.type : "one:" + a.id)))) {
      const a = g[0], critical = g.some((x) => x.severity === "critical");
      // the SOS banner (app.js) sounds its own alarm
      if (a.type !== "sos") tone(critical ? 880 : 587, critical ? 3 : 1);
      if (g.length >= GROUP_AT) notify((EV.types[a.type] || a.type) + " × " + g.length, deviceList(g), "alarms-" + a.type, critical, () => showAll(g));
      else for (const x of g) notify(EV.types[x.type] || x.type, x.text, "alarm-" + x.id, x.severity === "critical", () => show(x));
    }
  }
  function deviceList(g, n = 8) {
    const devs = g.map((x) => x.device || "?").sort();  // by id: a section's beacons read in road order
    return devs.slice(0, n).join(", ") + (devs.length > n ? " and " + (devs.length - n) + " more" : "");
  }

  // ---- the alarm list ----
  function alarmState(a) {
    return (a.cleared_at ? "cleared" : "active") + (a.acked_at ? " · acknowledged by " + esc(a.acked_by) + " " + fmt(a.acked_at) : " · not acknowledged");
  }
  let renderPending = false;
  function renderAlarms() {  // at most once a frame: a section's worth of alarms can arrive at once
    if (renderPending) return;
    renderPending = true;
    requestAnimationFrame(() => { renderPending = false; guard(drawAlarms, "alarms"); });
  }
  const INCIDENT_FROM = { section_alarm: "other", fog_uncovered: "fog" };  // alarm type -> incident type offered
  function drawAlarms() {
    const ul = $("#alarm-list"); if (!ul) return;
    const mayAck = !(window.RE && window.RE.me && window.RE.me.role === "viewer");
    const list = Object.values(EV.alarms).filter((a) => !(a.cleared_at && a.acked_at));
    const rank = { critical: 0, warning: 1, info: 2 };
    list.sort((x, y) => (!!x.acked_at - !!y.acked_at) || ((rank[x.severity] ?? 3) - (rank[y.severity] ?? 3)) || (y.id - x.id));
    ul.innerHTML = "";
    if (!list.length) ul.innerHTML = '<li class="muted">no alarms</li>';
    // a group: one kind, all waiting for acknowledgement or all acknowledged (and still active)
    const gkey = (a) => (groupable(a) ? a.type + (a.acked_at ? ":acked" : "") : "one:" + a.id);
    const kinds = byKind(list, gkey);
    for (const a of list) guard(() => {
      const g = kinds[gkey(a)];
      if (g.length >= GROUP_AT) {  // the group's row stands where its newest, worst member would
        if (g[0] === a) ul.appendChild(groupRow(g, mayAck));
        return;
      }
      const li = document.createElement("li");
      li.className = "alarm sev-" + esc(a.severity) + (a.acked_at ? " acked" : "") + (a.cleared_at ? " cleared" : "");
      li.dataset.id = a.id; li.dataset.type = a.type; li.dataset.device = a.device || "";
      li.innerHTML = '<div><b>' + esc(EV.types[a.type] || a.type) + "</b> " + (a.count > 1 ? '<span class="muted">×' + esc(a.count) + "</span> " : "") +
        '<span class="muted">' + fmt(a.at) + "</span></div><div>" + esc(a.text) + '</div><div class="muted alarm-state">' + alarmState(a) + "</div>" +
        '<div class="alarm-actions">' + (a.acked_at ? "" : '<button class="alarm-ack">Acknowledge</button> ') + '<button class="alarm-show">Show</button>' +
        (mayAck && INCIDENT_FROM[a.type] && a.detail && isNum(a.detail.lat) && isNum(a.detail.lon) && window.RE && RE.openIncidentForm
          ? ' <button class="alarm-incident">Incident…</button>' : "") + "</div>";
      const ack = $(".alarm-ack", li);
      if (ack) { ack.onclick = () => acknowledge(a); if (!mayAck) ack.title = "only a dispatcher or supervisor may acknowledge"; }
      $(".alarm-show", li).onclick = () => show(a);
      const inc = $(".alarm-incident", li);  // a section alarm or uncovered fog raises an incident where it is
      if (inc) inc.onclick = () => RE.openIncidentForm({ lat: a.detail.lat, lon: a.detail.lon, type: INCIDENT_FROM[a.type],
        priority: a.severity === "critical" ? 1 : 2, text: a.text, source: "alarm:" + a.id });
      ul.appendChild(li);
    }, "alarm");
    const toAck = list.filter((a) => !a.acked_at).length;
    const c = $("#alarm-count"); c.textContent = toAck ? toAck + " to acknowledge" : ""; c.className = "pill bad" + (toAck ? "" : " hidden");
  }
  function groupRow(g, mayAck) {
    const a = g[0], acked = !!a.acked_at, li = document.createElement("li");
    li.className = "alarm-group sev-" + esc(a.severity) + (acked ? " acked" : "");
    li.dataset.type = a.type; li.dataset.count = g.length;
    const cleared = g.filter((x) => x.cleared_at).length;
    li.innerHTML = "<div><b>" + esc(EV.types[a.type] || a.type) + '</b> <span class="muted">× ' + g.length + " · since " + fmt(Math.min(...g.map((x) => x.at))) + "</span></div>" +
      "<div>" + esc(deviceList(g)) + '</div><div class="muted alarm-state">' + (cleared ? cleared + " of " + g.length + " cleared" : "active") +
      (acked ? " · acknowledged" : " · not acknowledged") + "</div>" +
      '<div class="alarm-actions">' + (acked ? "" : '<button class="alarm-ack-all">Acknowledge all ' + g.length + "</button> ") + '<button class="alarm-show">Show</button></div>' +
      '<details><summary>each alarm</summary><ul class="alarm-members">' + g.map((x) => "<li>" + fmt(x.at) + " " + esc(x.text) + "</li>").join("") + "</ul></details>";
    const ack = $(".alarm-ack-all", li);
    if (ack) { ack.onclick = () => acknowledgeAll(g); if (!mayAck) ack.title = "only a dispatcher or supervisor may acknowledge"; }
    $(".alarm-show", li).onclick = () => showAll(g);
    return li;
  }
  async function acknowledgeAll(g) {
    try {
      const r = await api("POST", "/api/alarms/ack", { ids: g.map((a) => a.id) });
      for (const row of r.alarms || []) onAlarmRow(row, false);
      toast("acknowledged: " + g.length + " × " + (EV.types[g[0].type] || g[0].type));
    } catch (e) { toast(e.message, true); }
  }
  async function acknowledge(a) {
    try {
      const row = await api("POST", "/api/alarms/ack", { id: a.id });
      onAlarmRow(row, false);
      toast((a.type === "sos" ? "SOS acknowledged, the rider is told: " : "acknowledged: ") + (a.device || ""));
    } catch (e) { toast(e.message, true); }
  }
  function where(a) {
    const RE = window.RE;
    const d = (RE.devices && RE.devices[a.device]) || (RE.signs && RE.signs[a.device]) || (RE.beacons && RE.beacons[a.device]);
    const lat = d ? d.lat : a.detail && a.detail.lat, lon = d ? d.lon : a.detail && a.detail.lon;
    return isNum(lat) && isNum(lon) ? [lat, lon] : null;
  }
  function show(a) {
    const RE = window.RE; if (!RE || !RE.map) return;
    const p = where(a);
    if (p) RE.map.setView(p, 16);
  }
  function showAll(g) {
    const RE = window.RE; if (!RE || !RE.map || !window.L) return;
    const pts = g.map(where).filter(Boolean);
    if (pts.length) RE.map.fitBounds(window.L.latLngBounds(pts), { padding: [40, 40], maxZoom: 16 });
  }
  function onAlarmRow(a, fresh) {
    if (!a || typeof a !== "object" || !isNum(a.id) || !a.alarm) return;
    const old = EV.alarms[a.id];
    if (old && old.last_sounded) a.last_sounded = old.last_sounded;
    // An acknowledgement's HTTP answer can land after a newer live update of the same row (an SOS
    // cleared the moment the rider's terminal got the acknowledgement): what is set stays set, unless the
    // alarm was raised again since (the server counts that on the row and resets its acknowledgement).
    if (old && (a.count || 1) <= (old.count || 1)) {
      if (old.cleared_at && !a.cleared_at) a.cleared_at = old.cleared_at;
      if (old.acked_at && !a.acked_at) { a.acked_at = old.acked_at; a.acked_by = old.acked_by; }
    }
    EV.alarms[a.id] = a;
    // raised again after an acknowledgement (an SOS re-sent because our acknowledgement never reached the rider)
    const again = old && old.acked_at && !a.acked_at && !a.cleared_at;
    if (again) EV.notified = EV.notified.filter((id) => id !== a.id);
    if ((fresh || again) && a.phase === "raise" && !a.acked_at && !a.cleared_at) announce(a);
    renderAlarms();
  }

  // an active critical alarm nobody acknowledged sounds again, like an annunciator, until someone does
  const REPEAT_S = 30;
  setInterval(() => guard(() => {
    const now = Date.now() / 1000;
    const due = Object.values(EV.alarms).some((a) => a.severity === "critical" && a.type !== "sos" && !a.acked_at && !a.cleared_at &&
      now - (a.last_sounded || a.at || 0) >= REPEAT_S);
    if (!due) return;
    for (const a of Object.values(EV.alarms)) if (a.severity === "critical" && !a.acked_at && !a.cleared_at) a.last_sounded = now;
    tone(880, 3);
  }, "repeat"), 5000);

  // ---- the event log ----
  function readFilters() {
    const f = {};
    for (const k of ["type", "severity", "device", "acked"]) { const v = $("#ev-" + k).value.trim(); if (v) f[k] = v; }
    for (const k of ["from", "to"]) { const v = $("#ev-" + k).value; if (v) f[k] = new Date(v).getTime() / 1000; }
    return f;
  }
  function matches(e) {
    const f = filters;
    if (f.from || f.to) return false;  // a time window is a look back: it is not live
    if (f.type && e.type !== f.type) return false;
    if (f.severity && e.severity !== f.severity) return false;
    if (f.device && e.device !== f.device) return false;
    if (f.acked === "no" && !(e.alarm && !e.acked_at)) return false;
    if (f.acked === "yes" && !(e.alarm && e.acked_at)) return false;
    return true;
  }
  function rowHtml(e) {
    const state = e.alarm ? alarmState(e) : e.phase === "clear" ? "cleared" : e.phase === "ack" ? "acknowledgement" : "";
    return '<tr data-id="' + esc(e.id) + '" data-type="' + esc(e.type) + '" data-phase="' + esc(e.phase) + '" class="sev-' + esc(e.severity) + '"><td>' + fmt(e.at) +
      "</td><td>" + esc(e.severity) + "</td><td>" + esc(EV.types[e.type] || e.type) + "</td><td>" + esc(e.device) + "</td><td>" + esc(e.text) +
      (e.count > 1 ? ' <span class="muted">×' + esc(e.count) + "</span>" : "") + '</td><td class="muted">' + state + "</td></tr>";
  }
  let total = null;  // entries matching the filters; a live line that matches adds one
  function showTotal() { $("#ev-info").textContent = (total != null ? total + " entries" : "") + " · page " + (pageNo + 1); }
  async function loadPage() {
    const q = new URLSearchParams({ ...filters, limit: PAGE });
    if (cursors[pageNo] != null) q.set("before", cursors[pageNo]);
    const r = await api("GET", "/api/eventlog?" + q.toString());
    const tb = $("#event-table tbody"); tb.innerHTML = "";
    for (const e of Array.isArray(r.events) ? r.events : []) guard(() => tb.insertAdjacentHTML("beforeend", rowHtml(e)), "event");
    if (!tb.rows.length) tb.innerHTML = '<tr><td colspan="6" class="muted">nothing matches</td></tr>';
    cursors[pageNo + 1] = r.next;
    $("#ev-older").disabled = r.next == null; $("#ev-newer").disabled = pageNo === 0;
    total = isNum(r.total) ? r.total : null;
    showTotal();
    $("#ev-csv").href = "/api/eventlog?" + new URLSearchParams({ ...filters, format: "csv" }).toString();
  }
  function onEventRow(e) {
    if (!e || typeof e !== "object" || !isNum(e.id)) return;
    if (e.alarm) onAlarmRow(e, true);
    updateRow(e, pageNo === 0 && matches(e));
  }
  function updateRow(e, insert) {
    const tb = $("#event-table tbody"); if (!tb) return;
    const old = tb.querySelector('tr[data-id="' + e.id + '"]');
    if (old) { old.outerHTML = rowHtml(e); return; }
    if (!insert) return;
    const empty = tb.querySelector("td[colspan]"); if (empty) tb.innerHTML = "";
    tb.insertAdjacentHTML("afterbegin", rowHtml(e));
    if (total != null) { total++; showTotal(); }
    while (tb.rows.length > PAGE) tb.deleteRow(-1);
  }

  // ---- start-up (after login: app.js attaches its live stream) ----
  async function reload() {
    const r = await api("GET", "/api/alarms");
    EV.types = r.types || {};
    if (!started) {
      started = true;
      const sel = $("#ev-type");
      sel.innerHTML = '<option value="">every type</option>' + Object.entries(EV.types).map(([k, v]) => '<option value="' + esc(k) + '">' + esc(v) + "</option>").join("");
      $("#ev-severity").innerHTML = '<option value="">every severity</option>' + (r.severities || []).map((s) => "<option>" + esc(s) + "</option>").join("");
    }
    // after a reconnection, alarms raised meanwhile are announced; at the first load nothing is
    const known = EV.ready ? new Set(Object.keys(EV.alarms).map(Number)) : null;
    EV.alarms = {};
    for (const a of Array.isArray(r.alarms) ? r.alarms : []) guard(() => onAlarmRow(a, known !== null && !known.has(a.id)), "alarm");
    renderAlarms();
    await loadPage();
    EV.ready = true;
  }
  RE.on("stream", attach);  // on every (re)connect
  function attach(es) {
    const on = (k, f) => es.addEventListener(k, (ev) => guard(() => f(JSON.parse(ev.data)), k));
    on("eventlog", onEventRow);
    on("alarm", (a) => { onAlarmRow(a, false); updateRow(a, false); });
    es.addEventListener("resync", () => reload().catch((e) => console.error(e)));
    // on every (re)connection: what happened while the stream was down is in the store, not in the stream
    es.addEventListener("open", () => reload().catch((e) => toast("could not load the alarms: " + e.message, true)));
  }

  $("#ev-filter").addEventListener("submit", (ev) => { ev.preventDefault(); filters = readFilters(); cursors = [null]; pageNo = 0; loadPage().catch((e) => toast(e.message, true)); });
  $("#ev-older").addEventListener("click", () => { if (cursors[pageNo + 1] == null) return; pageNo++; loadPage().catch((e) => toast(e.message, true)); });
  $("#ev-newer").addEventListener("click", () => { if (pageNo === 0) return; pageNo--; loadPage().catch((e) => toast(e.message, true)); });
  $("#alarm-notify").addEventListener("click", async () => { try { await Notification.requestPermission(); } catch (e) { } notifyState(); });
  notifyState();
})();
