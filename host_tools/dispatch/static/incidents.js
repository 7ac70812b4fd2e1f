/* The incident lifecycle at the desk: place an incident on the map (or raise it from an SOS or an alarm),
   fill in the form, send units, follow them (sent -> accepted -> en route with ETA -> on scene -> cleared)
   on the map and in the timeline, close with a summary. Uses app.js's hooks (RE.api, RE.on, RE.layers, ...). */
"use strict";
(function () {
  const RE = window.RE;
  const $ = (s) => document.querySelector(s);
  const esc = (s) => RE.esc(s);
  const ACTIVE = ["sent", "delivered", "accepted", "en_route", "on_scene"];
  const WORDS = { sent: "sent", delivered: "delivered to the bike", accepted: "accepted by the rider", en_route: "en route",
    on_scene: "on scene", cleared: "cleared", cancelled: "recalled", declined: "declined", failed: "failed", closed: "cleared",
    created: "created", note: "note", sos_acknowledged: "SOS acknowledged" };
  const label = (s) => String(s == null ? "" : s).replace(/_/g, " ");
  const mins = (s) => (typeof s === "number" && isFinite(s) ? Math.max(1, Math.round(s / 60)) + " min" : "");
  let form = { types: ["other"], directions: ["both"], lanes: [] };
  let current = null, placing = false, draft = null, downAt = null;
  const lines = (RE.incidentLines = {});  // dispatch id -> the line from its unit to the incident
  const seenStatus = {};

  // ---- placing: a click anywhere on the map, whatever is under the cursor (a label, a marker) ----
  function arm(on) {
    placing = on;
    $("#new-incident").classList.toggle("armed", on);
    $("#new-incident").textContent = on ? "click the map… (Esc)" : "+ Incident";
    $("#incident-placing").classList.toggle("hidden", !on);
    $("#map").classList.toggle("placing", on);
  }
  $("#new-incident").addEventListener("click", () => arm(!placing));
  $("#incident-place-cancel").addEventListener("click", () => arm(false));
  document.addEventListener("keydown", (e) => { if (e.key === "Escape" && placing) arm(false); });
  const mapEl = $("#map");
  // capture phase: before any marker or label sees the click; a drag (panning) is not a placement
  mapEl.addEventListener("mousedown", (e) => { downAt = [e.clientX, e.clientY]; }, true);
  mapEl.addEventListener("click", (e) => {
    if (!placing || !RE.map || e.target.closest(".leaflet-control")) return;
    if (downAt && Math.hypot(e.clientX - downAt[0], e.clientY - downAt[1]) > 6) return;
    e.stopPropagation(); e.preventDefault();
    arm(false);
    const ll = RE.map.mouseEventToLatLng(e);
    openForm({ lat: ll.lat, lon: ll.lng, source: "map" });
  }, true);

  // ---- the form ----
  function options(sel, values, chosen) {
    sel.innerHTML = values.map((v) => '<option value="' + esc(v) + '"' + (v === chosen ? " selected" : "") + ">" + esc(label(v)) + "</option>").join("");
  }
  function openForm(o) {
    draft = o;
    options($("#incident-type"), form.types, o.type || form.types[0]);
    options($("#incident-direction"), form.directions, o.direction || "both");
    $("#incident-lanes").innerHTML = "<legend>Lanes blocked</legend>" + form.lanes.map((l) =>
      '<label class="lane"><input type="checkbox" class="incident-lane" value="' + esc(l) + '"> ' + esc(label(l)) + "</label>").join("");
    $("#incident-priority").value = String(o.priority || 2);
    $("#incident-text").value = o.text || "";
    $("#incident-form-error").textContent = "";
    $("#incident-form-where").textContent = "at " + o.lat.toFixed(5) + ", " + o.lon.toFixed(5) + (o.source && o.source !== "map" ? " · from " + label(o.source.replace(":", " ")) : "");
    if (RE.map && window.L) {
      if (draft.marker) draft.marker.remove();
      draft.marker = L.marker([o.lat, o.lon], { icon: L.divIcon({ className: "inc-icon inc-draft", html: "<span></span><b>new</b>", iconSize: [24, 24], iconAnchor: [12, 12] }) }).addTo(RE.map);
    }
    const dlg = $("#incident-dialog");
    if (!dlg.open) dlg.showModal();
    $("#incident-type").focus();
  }
  function dropDraft() { if (draft && draft.marker) draft.marker.remove(); draft = null; }
  $("#incident-form-cancel").addEventListener("click", () => $("#incident-dialog").close());
  $("#incident-dialog").addEventListener("close", dropDraft);  // Esc, Cancel or after creating
  $("#incident-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!draft) return;
    const body = { lat: draft.lat, lon: draft.lon, source: draft.source || "map", type: $("#incident-type").value,
      priority: parseInt($("#incident-priority").value, 10), direction: $("#incident-direction").value,
      lanes: [...document.querySelectorAll(".incident-lane:checked")].map((x) => x.value), text: $("#incident-text").value.trim() };
    $("#incident-create").disabled = true;
    try {
      const i = await RE.api("POST", "/api/incidents", body);
      $("#incident-dialog").close();
      created(i);
    } catch (err) { $("#incident-form-error").textContent = err.message; }
    finally { $("#incident-create").disabled = false; }
  });
  function created(i) { RE.upsertIncident(i); RE.showRank(i.id); openIncident(i.id); return i; }
  RE.openIncidentForm = openForm;  // from an alarm: RE.openIncidentForm({lat, lon, type, priority, text, source: "alarm:<id>"})
  RE.createIncident = (lat, lon, priority, text, more) => RE.api("POST", "/api/incidents", Object.assign({ lat, lon, priority, text }, more || {})).then(created);

  // from an SOS: the rider's position, priority 1
  document.addEventListener("click", (e) => {
    const b = e.target.closest && e.target.closest(".sos-incident"); if (!b) return;
    const s = RE.sos.find((x) => x.device === b.dataset.unit && !x.acked_at) || RE.sos.find((x) => x.device === b.dataset.unit);
    const u = RE.devices[b.dataset.unit] || {};
    const lat = s && RE.isPos(s.lat, s.lon) ? s.lat : u.lat, lon = s && RE.isPos(s.lat, s.lon) ? s.lon : u.lon;
    if (!RE.isPos(lat, lon)) { RE.toast("no position for " + b.dataset.unit + ": place the incident on the map", true); arm(true); return; }
    openForm({ lat, lon, type: "rider_sos", priority: 1, text: "SOS from " + b.dataset.unit, source: "sos:" + b.dataset.unit });
  });

  // from a fog section on the map: its band offers an incident where it was clicked
  function offerOnFog(segs) {
    if (!RE.layers || !window.L) return;
    const bands = RE.layers.fog.getLayers();  // drawn by app.js in the order of segs
    (Array.isArray(segs) ? segs : []).forEach((sg, k) => {
      const band = bands[k]; if (!band || band._offersIncident) return;
      band._offersIncident = true;
      band.on("click", (e) => {
        const what = "fog " + sg.from_km + "–" + sg.to_km + " km, visibility down to " + Math.round(sg.min_vis) + " m";
        L.popup().setLatLng(e.latlng).setContent(esc(what) + '<br><button class="fog-incident" data-lat="' + e.latlng.lat +
          '" data-lon="' + e.latlng.lng + '" data-what="' + esc(what) + '" data-src="' + esc(("alarm:fog:" + sg.from_km + "-" + sg.to_km).slice(0, 64)) + '">Incident here…</button>').openOn(RE.map);
      });
    });
  }
  document.addEventListener("click", (e) => {
    const b = e.target.closest && e.target.closest(".fog-incident"); if (!b) return;
    RE.map.closePopup();
    openForm({ lat: Number(b.dataset.lat), lon: Number(b.dataset.lon), type: "fog", priority: 2, text: b.dataset.what, source: b.dataset.src });
  });

  // ---- the incident's panel: units, timeline, note, close ----
  async function openIncident(id) {
    current = id;
    $("#incident-detail").classList.remove("hidden");
    $("#incident-timeline").innerHTML = "<li>loading…</li>";
    let d;
    try { d = await RE.api("GET", "/api/incidents/" + id); } catch (e) { $("#incident-timeline").innerHTML = "<li>" + esc(e.message) + "</li>"; return; }
    if (current !== id) return;
    RE.incidents[id] = Object.assign(RE.incidents[id] || {}, d.incident);
    (d.dispatches || []).forEach((x) => { RE.dispatches[x.id] = Object.assign(RE.dispatches[x.id] || {}, x); });
    $("#incident-timeline").innerHTML = "";
    (d.timeline || []).forEach(addTimeline);
    renderHeader(); renderUnits();
  }
  RE.openIncident = openIncident;
  $("#incident-hide").addEventListener("click", () => { current = null; $("#incident-detail").classList.add("hidden"); });
  function renderHeader() {
    const i = RE.incidents[current]; if (!i) return;
    $("#incident-title").textContent = "#" + i.id + " " + label(i.type || "incident") + " · P" + i.priority + (i.status === "closed" ? " · closed" : "");
    $("#incident-detail").dataset.id = i.id; $("#incident-detail").dataset.status = i.status;
    const lanes = Array.isArray(i.lanes) && i.lanes.length ? i.lanes.map(label).join(", ") + " blocked" : "no lanes blocked";
    $("#incident-facts").textContent = [i.text, lanes, "direction: " + label(i.direction || "both"), "from " + label((i.source || "map").replace(":", " ")),
      "by " + (i.by || "?") + " at " + RE.fmtTime(i.created)].filter(Boolean).join(" · ");
    const closed = i.status === "closed";
    $("#incident-close-form").classList.toggle("hidden", closed);
    $("#incident-note-form").classList.toggle("hidden", closed);
    $("#incident-closed").classList.toggle("hidden", !closed);
    if (closed) $("#incident-closed").textContent = "Closed by " + (i.closed_by || "?") + " at " + RE.fmtTime(i.closed_at) + ": " + (i.summary || "");
  }
  function renderUnits() {
    const ul = $("#incident-units"); if (current == null) return;
    const ds = Object.values(RE.dispatches).filter((d) => d.incident === current).sort((a, b) => a.id - b.id);
    ul.innerHTML = ds.length ? "" : '<li class="muted">none sent yet: pick one under “Nearest units”</li>';
    ds.forEach((d) => {
      const li = document.createElement("li");
      li.dataset.unit = d.unit; li.dataset.status = d.status; li.dataset.dispatch = d.id;
      const live = ACTIVE.includes(d.status);
      li.innerHTML = "<b>" + esc(d.unit) + "</b> " + esc(WORDS[d.status] || label(d.status)) +
        (live && d.status !== "on_scene" && d.eta_s != null ? " · ETA " + esc(mins(d.eta_s)) : "") + (d.detail ? ' <span class="muted">' + esc(d.detail) + "</span>" : "") +
        '<span class="grow"></span>' + (live ? (d.status === "on_scene" ? '<button class="clear-btn">Clear</button>' : '<button class="cancel-btn" title="recall the unit">Recall</button>') : "");
      const act = (what) => async () => { try { await RE.api("POST", "/api/dispatch/" + d.id + "/" + what); } catch (e) { RE.toast(e.message, true); } };
      if (li.querySelector(".clear-btn")) li.querySelector(".clear-btn").onclick = act("clear");
      if (li.querySelector(".cancel-btn")) li.querySelector(".cancel-btn").onclick = act("cancel");
      ul.appendChild(li);
    });
  }
  function addTimeline(r) {
    const ol = $("#incident-timeline");
    if (r.incident !== current || ol.querySelector('li[data-log="' + Number(r.id) + '"]')) return;
    const det = r.detail || {};
    const extra = r.what === "note" ? det.text : r.what === "closed" ? det.summary : r.what === "created" ? [label(det.type), "P" + det.priority, det.text].filter(Boolean).join(" ")
      : det.eta_s != null ? "ETA " + mins(det.eta_s) : det.reason || (det.tracker && det.tracker !== "sent" ? det.tracker : "");
    const li = document.createElement("li");
    li.dataset.log = r.id; li.dataset.what = r.what; if (r.unit) li.dataset.unit = r.unit;
    li.innerHTML = '<span class="muted">' + esc(RE.fmtTime(r.at)) + "</span> <b>" + esc(r.unit && r.what !== "created" ? r.unit + " " : "") + esc(WORDS[r.what] || label(r.what)) + "</b> " +
      esc(extra || "") + ' <span class="muted">· ' + esc(r.who || "") + "</span>";
    // in time order (a report may arrive after a later action)
    const after = [...ol.children].find((x) => Number(x.dataset.at) > r.at);
    li.dataset.at = r.at;
    ol.insertBefore(li, after || null);
  }
  $("#incident-note-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const t = $("#incident-note").value.trim(); if (!t || current == null) return;
    try { await RE.api("POST", "/api/incidents/" + current + "/note", { text: t }); $("#incident-note").value = ""; } catch (err) { RE.toast(err.message, true); }
  });
  $("#incident-close-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const summary = $("#incident-summary").value.trim();
    if (!summary) { RE.toast("closing needs a summary", true); return; }
    try { await RE.api("POST", "/api/incidents/" + current + "/close", { summary }); $("#incident-summary").value = ""; } catch (err) { RE.toast(err.message, true); }
  });

  // closed incidents stay readable: their summary, and their timeline one click away
  function renderClosed() {
    const closed = Object.values(RE.incidents).filter((i) => i && i.status === "closed").sort((a, b) => (b.closed_at || 0) - (a.closed_at || 0));
    $("#incident-closed-count").textContent = closed.length;
    const ul = $("#incident-closed-list"); ul.innerHTML = "";
    closed.slice(0, 50).forEach((i) => {
      const li = document.createElement("li"); li.dataset.id = i.id;
      li.innerHTML = "<b>#" + i.id + "</b> " + esc(label(i.type || "")) + ' <span class="muted">' + esc(RE.fmtTime(i.closed_at)) + " · " + esc((i.summary || "").slice(0, 80)) +
        '</span><span class="grow"></span><button class="open-btn">Timeline</button>';
      li.querySelector(".open-btn").onclick = () => openIncident(i.id);
      ul.appendChild(li);
    });
  }

  // ---- on the map: a line from each unit under way to its incident, coloured by its step ----
  const COLOURS = { sent: "#8e44ad", delivered: "#8e44ad", accepted: "#d9822b", en_route: "#d9822b", on_scene: "#2e8b57" };
  function drawLine(d) {
    const old = lines[d.id];
    const i = RE.incidents[d.incident], u = RE.devices[d.unit];
    const ok = ACTIVE.includes(d.status) && i && i.status !== "closed" && u && RE.isPos(u.lat, u.lon) && RE.isPos(i.lat, i.lon) && RE.layers && window.L;
    if (!ok) { if (old) { old.remove(); delete lines[d.id]; } return; }
    const pts = [[u.lat, u.lon], [i.lat, i.lon]];
    const tip = esc(d.unit) + " → #" + d.incident + ": " + esc(WORDS[d.status] || d.status) + (d.eta_s != null && d.status !== "on_scene" ? " · ETA " + mins(d.eta_s) : "");
    const style = { color: COLOURS[d.status] || "#555", weight: 3, dashArray: d.status === "on_scene" ? null : "6 6", opacity: 0.9 };
    if (old) { old.setLatLngs(pts); old.setStyle(style); old.setTooltipContent(tip); old.status = d.status; return; }
    lines[d.id] = L.polyline(pts, style).bindTooltip(tip).addTo(RE.layers.incidents);
    lines[d.id].status = d.status;
  }
  // the incident's marker tells who is coming and who is there
  function markIncident(iid) {
    const i = RE.incidents[iid], m = i && i._m; if (!m) return;
    const ds = Object.values(RE.dispatches).filter((d) => d.incident === iid && ACTIVE.includes(d.status));
    m.setTooltipContent("#" + i.id + " P" + i.priority + " " + esc(label(i.type || "")) + " " + esc(i.text) +
      ds.map((d) => "<br>" + esc(d.unit) + ": " + esc(WORDS[d.status] || d.status) + (d.eta_s != null && d.status !== "on_scene" ? " · ETA " + mins(d.eta_s) : "")).join(""));
    const el = m.getElement && m.getElement();
    if (el) { el.classList.toggle("inc-covered", ds.some((d) => d.status === "on_scene")); el.classList.toggle("inc-coming", ds.length > 0); }
  }
  function redrawLines() { Object.values(RE.dispatches).forEach((d) => RE.guard(() => drawLine(d), "dispatch line")); }

  // ---- live ----
  RE.on("fog", offerOnFog);
  RE.on("snapshot", (s) => {
    if (s.incident_form) form = s.incident_form;
    offerOnFog(s.fog);
    renderClosed();
    Object.values(RE.dispatches).forEach((d) => { seenStatus[d.id] = d.status; });
    redrawLines();
    Object.keys(RE.incidents).forEach((id) => RE.guard(() => markIncident(Number(id)), "incident marker"));
    if (current != null) openIncident(current);
  });
  RE.on("dispatch", (d) => {
    drawLine(d); markIncident(d.incident);
    if (d.incident === current) renderUnits();
    const changed = seenStatus[d.id] !== d.status; seenStatus[d.id] = d.status;
    // a unit that became busy (or free again) leaves (or rejoins) the nearest-unit list at once
    if (changed && RE.rankFor() != null && !$("#rank-box").classList.contains("hidden")) RE.showRank(RE.rankFor());
  });
  RE.on("devices", (list) => {
    (Array.isArray(list) ? list : []).forEach((u) => { if (u && u.kind === "unit") Object.values(RE.dispatches).forEach((d) => { if (d.unit === u.id) RE.guard(() => drawLine(d), "dispatch line"); }); });
  });
  RE.on("timeline", addTimeline);
  RE.on("incident", (i) => {
    if (!i) return;
    if (i.status === "closed") Object.values(RE.dispatches).forEach((d) => { if (d.incident === i.id) drawLine(d); });
    markIncident(i.id);
    if (i.id === current) { RE.incidents[i.id] = Object.assign(RE.incidents[i.id] || {}, i); renderHeader(); renderUnits(); }
    renderClosed();
  });
})();
