/* Accounts in the console: a supervisor lists, adds, disables / enables, re-roles accounts and sets
   a new password (the server checks the role and audits every attempt). Every page also follows its
   own session: the console ends it when the account is disabled or gets a new password, and tells
   the page when the role changed. Uses app.js's hooks: RE.api, RE.es, RE.on("start" | "stream"). */
"use strict";
(function () {
  const $ = (s) => document.querySelector(s);
  const esc = window.RE.esc;  // app.js's: one HTML escape for every console script
  const ROLES = ["viewer", "dispatcher", "supervisor"];
  const ENDED = "re:session-ended";
  const dlg = $("#accounts-dialog");
  let accounts = [];

  // ---- this page's own session ----
  try {
    const why = sessionStorage.getItem(ENDED);
    if (why) { sessionStorage.removeItem(ENDED); $("#login-error").textContent = why; }
  } catch (e) { }
  function restart(why) {
    try { sessionStorage.setItem(ENDED, why); } catch (e) { }
    location.reload();  // the page starts again as the account now is: the login form, or the new role
  }
  const GONE = "Your session was ended (account disabled or password changed). Log in again.";
  function follow(es) {
    es.addEventListener("session", (ev) => {
      let d = {}; try { d = JSON.parse(ev.data); } catch (e) { }
      es.close();
      restart(d.ended ? GONE : "Your role is now " + d.role + ".");
    });
    // the stream refused outright (the session ended before it opened): the browser does not retry
    es.addEventListener("error", async () => {
      if (es.readyState !== EventSource.CLOSED) return;
      try { const me = await RE.api("GET", "/api/me"); if (!me.user) restart(GONE); } catch (e) { }
    });
    es.addEventListener("accounts", () => { if (dlg.open) load(); else if (isSup()) summary(); });
  }
  RE.on("stream", follow);
  if (window.RE && RE.es) follow(RE.es);

  const isSup = () => window.RE && RE.me && RE.me.role === "supervisor";
  function init() {
    $("#accounts-panel").classList.toggle("hidden", !isSup());
    if (isSup()) summary();
  }
  RE.on("start", init);
  if (window.RE && RE.me) init();

  // ---- the supervisor's dialog ----
  async function summary() {
    try { accounts = await RE.api("GET", "/api/accounts"); } catch (e) { $("#accounts-summary").textContent = e.message; return; }
    const off = accounts.filter((a) => a.disabled).length;
    $("#accounts-summary").textContent = accounts.length + " accounts" + (off ? ", " + off + " disabled" : "");
  }
  function fail(e) { $("#accounts-error").textContent = e.message; }
  async function act(method, url, body, done) {
    $("#accounts-error").textContent = "";
    try { const r = await RE.api(method, url, body); if (r && r.accounts) { accounts = r.accounts; render(); summary(); } if (done) done(); }
    catch (e) { fail(e); }
  }
  async function load() {
    try { accounts = await RE.api("GET", "/api/accounts"); render(); } catch (e) { fail(e); }
    summary();
  }
  const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "");
  function render() {
    const tb = $("#accounts-table tbody"); tb.innerHTML = "";
    const me = RE.me.user;
    for (const a of accounts) {
      const tr = document.createElement("tr"); tr.dataset.user = a.name; tr.className = a.disabled ? "acc-disabled" : "";
      tr.innerHTML = "<td><b>" + esc(a.name) + "</b>" + (a.name === me ? ' <span class="muted">(you)</span>' : "") + "</td>" +
        '<td><select class="acc-role"' + (a.name === me ? " disabled title=\"ask another supervisor\"" : "") + ">" + ROLES.map((r) => "<option" + (r === a.role ? " selected" : "") + ">" + r + "</option>").join("") + "</select></td>" +
        '<td class="acc-state">' + (a.disabled ? "disabled" : "enabled") + "</td>" +
        '<td class="muted">' + esc(when(a.changed)) + (a.by ? " · " + esc(a.by) : "") + "</td>" +
        '<td class="acc-actions"><button class="acc-toggle"' + (a.name === me ? " disabled" : "") + ">" + (a.disabled ? "Enable" : "Disable") + '</button><button class="acc-pw">New password…</button></td>';
      tr.querySelector(".acc-role").onchange = (ev) => act("POST", "/api/accounts/" + encodeURIComponent(a.name) + "/role", { role: ev.target.value }, null);
      tr.querySelector(".acc-toggle").onclick = () => act("POST", "/api/accounts/" + encodeURIComponent(a.name) + "/enabled", { enabled: !!a.disabled }, null);
      tr.querySelector(".acc-pw").onclick = () => passwordRow(tr, a.name);
      tb.appendChild(tr);
    }
  }
  function passwordRow(tr, name) {
    const old = tr.nextElementSibling; if (old && old.classList.contains("acc-pw-row")) { old.remove(); return; }
    const row = document.createElement("tr"); row.className = "acc-pw-row";
    row.innerHTML = '<td colspan="5"><form class="dlg-form inline"><label>New password for ' + esc(name) + ' <input type="password" class="pw1" required minlength="12" maxlength="256" autocomplete="new-password"></label>' +
      '<label>Again <input type="password" class="pw2" required minlength="12" maxlength="256" autocomplete="new-password"></label><button type="submit">Set</button></form></td>';
    row.querySelector("form").onsubmit = (ev) => {
      ev.preventDefault();
      const p1 = row.querySelector(".pw1").value, p2 = row.querySelector(".pw2").value;
      if (p1 !== p2) { fail(new Error("the two passwords differ")); return; }
      act("POST", "/api/accounts/" + encodeURIComponent(name) + "/password", { password: p1 }, () => { row.remove(); toastOk("new password set for " + name + "; their other sessions ended"); });
    };
    tr.after(row); row.querySelector(".pw1").focus();
  }
  function toastOk(msg) { const t = $("#toast"); t.textContent = msg; t.className = ""; setTimeout(() => t.classList.add("hidden"), 4000); }
  $("#account-add").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const name = $("#acc-name").value.trim(), p1 = $("#acc-pass").value, p2 = $("#acc-pass2").value;
    if (p1 !== p2) { fail(new Error("the two passwords differ")); return; }
    act("POST", "/api/accounts", { name, role: $("#acc-role").value, password: p1 }, () => { $("#account-add").reset(); toastOk("account " + name + " added"); });
  });
  $("#accounts-open").addEventListener("click", () => { $("#accounts-error").textContent = ""; dlg.showModal(); load(); });
  dlg.querySelector(".dlg-close").addEventListener("click", () => dlg.close());
})();
