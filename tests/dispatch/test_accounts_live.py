"""Accounts live (issue 15): the console reads the accounts store, not a copy. An account added,
disabled or re-roled from the CLI or by a supervisor in the console counts at once, sessions
included; only a supervisor manages accounts, and every attempt is audited."""
from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
from urllib.parse import urlparse

import pytest
from test_console_http import Client
from test_dispatch_cli import roadedge

from host_tools.broker.mosquitto import free_port, wait_port
from host_tools.dispatch.users import AccountConflict, Users


def session_events(base: str, client: Client):
    """The live-update stream as the page gets it (opened now): an iterator of (event, data)."""
    u = urlparse(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    jars = [h.cookiejar for h in client.op.handlers if hasattr(h, "cookiejar")]
    conn.request("GET", "/api/events", headers={"Cookie": "; ".join(f"{c.name}={c.value}" for j in jars for c in j)})
    resp = conn.getresponse()
    assert resp.status == 200

    def read():
        kind = None
        while line := resp.fp.readline():
            line = line.decode().rstrip("\r\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind:
                yield kind, json.loads(line[6:])
                kind = None

    return read()


def test_an_account_added_from_the_cli_logs_in_at_once_and_disabling_it_ends_its_session(mosquitto, tmp_path,
                                                                                          deployment):
    db = tmp_path / "d.db"
    assert roadedge("dispatch", "--db", str(db), "--add-user", "chief", "--role", "supervisor", "--password-stdin",
                    input="chief-long-password\n").returncode == 0
    port = free_port()
    p = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "dispatch", "--broker", mosquitto.url, "--http",
                          f"127.0.0.1:{port}", "--db", str(db), "--deployment", str(deployment)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_port("127.0.0.1", port, 30)
        late = Client(base)
        assert late.login("late", "late-long-password") == 401
        # added while the console runs: no restart
        r = roadedge("dispatch", "--db", str(db), "--add-user", "late", "--role", "dispatcher", "--password-stdin",
                     input="late-long-password\n")
        assert r.returncode == 0, r.stderr
        assert late.login("late", "late-long-password") == 200
        assert late.req("GET", "/api/me")[1]["role"] == "dispatcher"
        st, _ = late.req("POST", "/api/incidents", {"lat": 30.3, "lon": 120.0, "text": "x"})
        assert st == 200
        # re-roled from the CLI: the open session is a viewer now
        assert roadedge("dispatch", "--db", str(db), "--set-role", "late", "--role", "viewer").returncode == 0
        assert late.req("GET", "/api/me")[1]["role"] == "viewer"
        assert late.req("POST", "/api/incidents", {"lat": 30.3, "lon": 120.0})[0] == 403
        # disabled from the CLI: the open session is refused at once, and so is a new login
        events = session_events(base, late)
        assert roadedge("dispatch", "--db", str(db), "--disable-user", "late").returncode == 0
        assert late.req("GET", "/api/snapshot")[0] == 401
        for kind, data in events:  # the page's live stream is told, then closed
            if kind == "session":
                assert data["ended"] is True
                break
        else:
            pytest.fail("the live stream ended without telling the page")
        assert late.login("late", "late-long-password") == 401
        r = roadedge("dispatch", "--db", str(db), "--list-users")
        assert "late" in r.stdout and "disabled" in r.stdout
        assert roadedge("dispatch", "--db", str(db), "--enable-user", "late").returncode == 0
        assert late.login("late", "late-long-password") == 200
        # the last enabled supervisor cannot be disabled (nobody could manage accounts then)
        r = roadedge("dispatch", "--db", str(db), "--disable-user", "chief")
        assert r.returncode == 2 and "supervisor" in r.stderr
        chief = Client(base)
        assert chief.login("chief", "chief-long-password") == 200
        ops = {(a["target"], a["action"]) for a in chief.req("GET", "/api/audit")[1] if a["user"].startswith("cli:")}
        assert {("late", "account_add"), ("late", "account_role"), ("late", "account_disable"),
                ("late", "account_enable")} <= ops
    finally:
        p.send_signal(signal.SIGTERM)
        _out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err


def test_a_supervisor_manages_accounts_in_the_console_and_every_change_counts_at_once(console):
    sup = Client(console.url)
    assert sup.login("sup", "sup-pass-1234") == 200
    st, listed = sup.req("GET", "/api/accounts")
    assert st == 200 and {a["name"] for a in listed} == {"disp", "sup", "view"}
    assert all("hash" not in a for a in listed)

    # added with the password policy
    st, err = sup.req("POST", "/api/accounts", {"name": "newbie", "role": "dispatcher", "password": "password1234"})
    assert st == 400 and "attackers try" in err["error"]
    st, err = sup.req("POST", "/api/accounts", {"name": "bad name!", "role": "dispatcher",
                                                "password": "tidal-basin-lantern"})
    assert st == 400
    st, err = sup.req("POST", "/api/accounts", {"name": "newbie", "role": "admin", "password": "tidal-basin-lantern"})
    assert st == 400 and "role" in err["error"]
    st, _ = sup.req("POST", "/api/accounts", {"name": "newbie", "role": "dispatcher", "password": "tidal-basin-lantern"})
    assert st == 200
    assert sup.req("POST", "/api/accounts", {"name": "newbie", "role": "viewer",
                                             "password": "other-long-phrase"})[0] == 409  # no silent overwrite
    nb = Client(console.url)
    assert nb.login("newbie", "tidal-basin-lantern") == 200
    assert nb.req("POST", "/api/incidents", {"lat": 30.3, "lon": 120.0})[0] == 200

    # re-roled: the open session follows
    assert sup.req("POST", "/api/accounts/newbie/role", {"role": "viewer"})[0] == 200
    assert nb.req("POST", "/api/incidents", {"lat": 30.3, "lon": 120.0})[0] == 403
    assert nb.req("GET", "/api/me")[1]["role"] == "viewer"

    # disabled: refused at once, then enabled again
    assert sup.req("POST", "/api/accounts/newbie/enabled", {"enabled": False})[0] == 200
    assert nb.req("GET", "/api/snapshot")[0] == 401
    assert nb.login("newbie", "tidal-basin-lantern") == 401
    assert sup.req("POST", "/api/accounts/newbie/enabled", {"enabled": "no"})[0] == 400
    assert sup.req("POST", "/api/accounts/newbie/enabled", {"enabled": True})[0] == 200
    assert nb.login("newbie", "tidal-basin-lantern") == 200

    # a new password: the old one and the sessions opened with it end
    st, err = sup.req("POST", "/api/accounts/newbie/password", {"password": "short"})
    assert st == 400 and "at least 12" in err["error"]
    assert sup.req("POST", "/api/accounts/newbie/password", {"password": "harbour-crane-evening"})[0] == 200
    assert nb.req("GET", "/api/snapshot")[0] == 401
    assert nb.login("newbie", "tidal-basin-lantern") == 401
    assert nb.login("newbie", "harbour-crane-evening") == 200
    # a supervisor's own new password keeps their session
    assert sup.req("POST", "/api/accounts/sup/password", {"password": "new-sup-pass-phrase"})[0] == 200
    assert sup.req("GET", "/api/snapshot")[0] == 200

    # no supervisor locks themselves (or everyone) out; unknown names are refused
    assert sup.req("POST", "/api/accounts/sup/enabled", {"enabled": False})[0] == 409
    assert sup.req("POST", "/api/accounts/sup/role", {"role": "viewer"})[0] == 409
    assert sup.req("POST", "/api/accounts/ghost/role", {"role": "viewer"})[0] == 404
    assert sup.req("POST", "/api/accounts/newbie/role", {"role": "viewer"}, csrf=False)[0] == 403

    audit = [(a["user"], a["target"], a["action"], a["result"]) for a in console.store.audit()]
    for op in ("add", "role", "disable", "enable", "password"):
        assert ("sup", "newbie", f"account_{op}", "ok") in audit, op
    assert ("sup", "newbie", "account_add", "refused: an account named newbie exists") in audit
    assert any(r.startswith("refused: that password") for _u, t, _o, r in audit)
    assert ("sup", "ghost", "account_role", "refused: no such account") in audit
    assert any(a == "/api/accounts/newbie/role" and r == "refused: bad CSRF token" for _u, _t, a, r in audit)
    assert "tidal-basin-lantern" not in json.dumps(console.store.audit(1000))  # passwords never in the record
    login = [(a["user"], a["result"]) for a in console.store.audit() if a["action"] == "login"]
    assert ("newbie", "refused: account disabled") in login


def test_a_dispatcher_or_viewer_cannot_manage_accounts(console, users_file):
    before = users_file.read_bytes()
    for name, pw in (("disp", "disp-pass-123"), ("view", "view-pass-123")):
        c = Client(console.url)
        assert c.login(name, pw) == 200
        assert c.req("GET", "/api/accounts")[0] == 403
        assert c.req("POST", "/api/accounts", {"name": "mole", "role": "supervisor",
                                               "password": "tidal-basin-lantern"})[0] == 403
        assert c.req("POST", f"/api/accounts/{name}/role", {"role": "supervisor"})[0] == 403
        assert c.req("POST", "/api/accounts/sup/enabled", {"enabled": False})[0] == 403
        assert c.req("POST", "/api/accounts/sup/password", {"password": "tidal-basin-lantern"})[0] == 403
        assert c.req("GET", "/api/me")[1]["role"] != "supervisor"
    assert users_file.read_bytes() == before
    refused = {(a["user"], a["action"], a["result"]) for a in console.store.audit()}
    for name, role in (("disp", "dispatcher"), ("view", "viewer")):
        for op in ("list", "add", "role", "disable", "password"):
            assert (name, f"account_{op}", f"refused: role {role} may not manage accounts") in refused, (name, op)
    assert Client(console.url).req("GET", "/api/accounts")[0] == 401


def test_a_broken_accounts_file_fails_closed_and_recovers_without_a_restart(console, users_file):
    c = Client(console.url)
    assert c.login("disp", "disp-pass-123") == 200
    good = users_file.read_text()
    users_file.write_text("{not json")
    assert c.req("GET", "/api/snapshot")[0] == 401
    assert Client(console.url).login("sup", "sup-pass-1234") == 401
    with pytest.raises(AccountConflict):  # never overwritten while it cannot be read
        Users(users_file).set_role("disp", "viewer")
    assert users_file.read_text() == "{not json"
    users_file.write_text(good)
    assert c.req("GET", "/api/snapshot")[0] == 200  # the session was kept, only not honoured meanwhile


def test_two_writers_never_lose_each_others_change(tmp_path):
    f = tmp_path / "u.json"
    a, b = Users(f), Users(f)
    a.add("ann", "supervisor", "tidal-basin-lantern")
    b.add("bob", "viewer", "harbour-crane-evening")  # b had read the file before ann existed
    a.set_disabled("bob", True)
    assert {u["name"]: u["disabled"] for u in Users(f).list()} == {"ann": False, "bob": True}
    assert b.verify("bob", "harbour-crane-evening") is None and b.verify("ann", "tidal-basin-lantern") == "supervisor"


def test_a_password_set_again_from_the_cli_ends_the_sessions_opened_with_the_old_one(tmp_path):
    from host_tools.dispatch.users import Sessions

    f = tmp_path / "u.json"
    users, sessions = Users(f), Sessions()
    users.add("ann", "supervisor", "tidal-basin-lantern")
    users.add("bob", "dispatcher", "harbour-crane-evening")
    acct = users.login("bob", "harbour-crane-evening")
    assert acct == {"role": "dispatcher", "epoch": 0, "disabled": False}
    old = sessions.create("bob", acct["role"], acct["epoch"])
    assert sessions.current(old["token"], users) is old
    Users(f).add("bob", "dispatcher", "quiet-harbour-night")  # `--add-user bob` again, another process
    assert sessions.current(old["token"], users) is None and sessions.get(old["token"]) is None  # forgotten
    assert users.login("bob", "harbour-crane-evening") is None
    new = users.login("bob", "quiet-harbour-night")
    assert new and new["epoch"] == 1
    # re-adding the last supervisor as something else would leave nobody to manage accounts
    with pytest.raises(AccountConflict):
        Users(f).add("ann", "viewer", "tidal-basin-lantern")
    assert Users(f).account("ann")["role"] == "supervisor"
