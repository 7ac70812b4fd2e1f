/* Reports in the console: per unit and day (distance, duty times, stops) and per fog section (patrol
   presence, response times), the incidents behind them, and each table as CSV. The figures come
   from the console (reports.py); this only shows them. Uses app.js's hooks: RE.api, RE.on("start"). */
"use strict";
(function () {
  const $ = (s) => document.querySelector(s);
  const esc = window.RE.esc;  // app.js's: one HTML escape for every console script
  const dlg = $("#reports-dialog");
  const HEAD = {
    day: "day", unit: "unit", distance_km: "km", patrol_min: "patrol min", en_route_min: "en route min", on_scene_min: "on scene min",
    off_duty_min: "off duty min", offline_min: "offline min", stops: "stops", stopped_min: "stopped min", longest_stop_min: "longest stop min",
    fixes: "fixes", first_fix: "first fix", last_fix: "last fix", bad_fixes: "bad fixes", jumps: "glitches",
    section: "section", name: "name", road: "road", from_km: "from km", to_km: "to km", presence_min: "patrol present min",
    presence_pct: "present %", longest_gap_min: "longest gap min", units_seen: "units", unit_min: "unit min", incidents: "incidents",
    reached: "reached", median_response_min: "median response min", max_response_min: "max response min", incident: "incident",
    created: "created", priority: "P", text: "text", status: "status", units: "units", to_dispatch_s: "to dispatch s",
    to_accept_s: "to accept s", response_s: "response s",
  };
  let table = "units", data = null;
  const tz = () => -new Date().getTimezoneOffset();  // the desk's own calendar day
  const today = () => { const d = new Date(); return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 10); };
  const query = () => "day=" + encodeURIComponent($("#report-dlg-day").value) + "&days=" + $("#report-days").value + "&tz=" + tz();
  const cell = (k, v) => {
    if (v == null || v === "") return '<td class="muted">—</td>';
    if ((k === "first_fix" || k === "last_fix" || k === "created") && typeof v === "string") return "<td>" + esc(v.slice(11, 19)) + "</td>";
    return '<td class="' + (typeof v === "number" ? "num" : "") + '">' + esc(v) + "</td>";
  };
  function render() {
    document.querySelectorAll("#reports-dialog .dlg-tabs button").forEach((b) => b.classList.toggle("on", b.dataset.table === table));
    $("#report-csv").href = "/api/reports/" + table + ".csv?" + query();
    const thead = $("#report-table thead"), tbody = $("#report-table tbody");
    thead.innerHTML = ""; tbody.innerHTML = "";
    if (!data) return;
    const cols = data.columns[table].filter((c) => c !== "day" || data.days.length > 1);
    thead.innerHTML = "<tr>" + cols.map((c) => "<th>" + esc(HEAD[c] || c) + "</th>").join("") + "</tr>";
    const rows = data.days.flatMap((d) => d[table] || []);
    if (!rows.length) tbody.innerHTML = '<tr><td class="muted" colspan="' + cols.length + '">nothing recorded</td></tr>';
    for (const r of rows) {
      const tr = document.createElement("tr");
      tr.dataset.key = r.unit || r.section || r.incident || "";
      tr.innerHTML = cols.map((c) => cell(c, r[c])).join("");
      tbody.appendChild(tr);
    }
    const cut = data.days.reduce((n, d) => n + (d.truncated_units || 0), 0);
    const last = data.days[data.days.length - 1];
    $("#report-note").textContent = (last && last.until * 1000 < Date.now() - 60000 ? "" : "up to now · ") +
      "presence: a unit within 200 m of the section; stop: below 5 km/h for more than 2 min" + (cut ? " · " + cut + " unit-days had more fixes than are read" : "");
  }
  async function load() {
    data = null; render();
    $("#report-note").textContent = "computing…";
    try { data = await RE.api("GET", "/api/reports?" + query()); render(); }
    catch (e) { $("#report-note").textContent = e.message; }
  }
  function init() { if (!$("#report-day").value) $("#report-day").value = today(); }
  RE.on("start", init);
  if (window.RE && RE.me) init();
  $("#report-open").addEventListener("click", () => {
    $("#report-dlg-day").value = $("#report-day").value || today();
    dlg.showModal(); load();
  });
  $("#report-dlg-day").addEventListener("change", load);
  $("#report-days").addEventListener("change", load);
  document.querySelectorAll("#reports-dialog .dlg-tabs button").forEach((b) => b.addEventListener("click", () => { table = b.dataset.table; render(); }));
  dlg.querySelector(".dlg-close").addEventListener("click", () => dlg.close());
})();
