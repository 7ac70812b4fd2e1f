"""Console HTTP API: accounts, sessions, CSRF, roles and the audit table; history export."""
from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request
from http.cookiejar import CookieJar

import pytest
from dispatch_support import location

from host_tools.dispatch.users import Users, check_password, hash_password, password_problem


class Client:
    def __init__(self, base: str) -> None:
        self.base = base
        self.op = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        self.csrf = ""

    def req(self, method: str, path: str, body=None, csrf: bool = True, ctype="application/json"):
        data = json.dumps(body or {}).encode() if method == "POST" else None
        r = urllib.request.Request(self.base + path, data=data, method=method)
        if method == "POST":
            r.add_header("Content-Type", ctype)
            if csrf:
                r.add_header("X-CSRF-Token", self.csrf)
        try:
            with self.op.open(r, timeout=10) as resp:
                raw = resp.read()
                return resp.status, (json.loads(raw) if "json" in resp.headers.get("Content-Type", "") else raw)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def login(self, user: str, pw: str) -> int:
        st, body = self.req("POST", "/api/login", {"user": user, "password": pw}, csrf=False)
        if st == 200:
            self.csrf = body["csrf"]
        return st


def test_password_hashes_are_salted_argon2id(tmp_path):
    h1, h2 = hash_password("correct horse"), hash_password("correct horse")
    assert h1 != h2 and h1.startswith("$argon2id$")
    assert check_password("correct horse", h1) and not check_password("wrong", h1)
    u = Users(tmp_path / "u.json")
    u.add("ann", "viewer", "long-enough-phrase")
    assert "long-enough-phrase" not in (tmp_path / "u.json").read_text()
    assert Users(tmp_path / "u.json").verify("ann", "long-enough-phrase") == "viewer"
    assert Users(tmp_path / "u.json").verify("ann", "wrong") is None
    assert Users(tmp_path / "u.json").verify("nobody", "long-enough-phrase") is None
    with pytest.raises(ValueError):
        u.add("bob", "admin", "long-enough-phrase")


def test_an_account_with_an_old_scrypt_hash_logs_in_and_is_upgraded(tmp_path):
    # as users.py wrote them before Argon2: scrypt$N$r$p$salt$hash
    salt = bytes(range(16))
    h = hashlib.scrypt(b"old-but-long-pw", salt=salt, n=2**14, r=8, p=1, dklen=32)
    f = tmp_path / "u.json"
    f.write_text(json.dumps({"users": {"old": {"role": "dispatcher",
                                               "hash": f"scrypt${2**14}$8$1${salt.hex()}${h.hex()}"}}}))
    assert Users(f).verify("old", "wrong-password") is None
    assert json.loads(f.read_text())["users"]["old"]["hash"].startswith("scrypt$")  # not upgraded on a failure
    assert Users(f).verify("old", "old-but-long-pw") == "dispatcher"
    upgraded = json.loads(f.read_text())["users"]["old"]["hash"]
    assert upgraded.startswith("$argon2id$")
    assert Users(f).verify("old", "old-but-long-pw") == "dispatcher"


@pytest.mark.parametrize("pw, why", [("short-pw-11", "at least 12"), ("password", "at least 12"),
                                     ("password1234", "attackers try"), ("Password2024!", "attackers try"),
                                     ("qwertyuiopasdfgh", "attackers try"), ("aaaaaaaaaaaaaaaa", "attackers try"),
                                     ("carolcarol1234", "user name"), ("Carol_2024-12-01", "user name")])
def test_password_policy_refuses_short_and_common_passwords(tmp_path, pw, why):
    with pytest.raises(ValueError, match=why):
        Users(tmp_path / "u.json").add("carol", "viewer", pw)
    assert password_problem("carol", "tidal-basin-lantern") is None


def test_no_anonymous_access_csrf_required_and_roles_enforced(console):
    anon = Client(console.url)
    assert anon.req("GET", "/api/snapshot")[0] == 401
    assert anon.req("POST", "/api/incidents", {"lat": 30.3, "lon": 120.0}, csrf=False)[0] == 401
    assert anon.req("GET", "/")[0] == 200  # the login page itself is public
    assert anon.login("disp", "wrong-password") == 401

    d = Client(console.url)
    assert d.login("disp", "disp-pass-123") == 200
    # a forged cross-site POST has the cookie but not the token
    assert d.req("POST", "/api/incidents", {"lat": 30.3, "lon": 120.0}, csrf=False)[0] == 403
    assert d.req("POST", "/api/incidents", {"lat": 30.3, "lon": 120.0}, ctype="text/plain")[0] == 415
    st, inc = d.req("POST", "/api/incidents", {"lat": 30.305, "lon": 120.001, "priority": 2, "text": "crash"})
    assert st == 200 and inc["text"] == "crash"

    v = Client(console.url)
    assert v.login("view", "view-pass-123") == 200
    assert v.req("GET", "/api/snapshot")[0] == 200
    st, err = v.req("POST", "/api/incidents", {"lat": 30.3, "lon": 120.0})
    assert st == 403 and "viewer" in err["error"]
    assert d.req("POST", "/api/sign", {"zone": "z1", "action": "manual", "sign": "vsl-1", "limit": 40})[0] == 403

    audit = [(a["user"], a["action"], a["result"]) for a in console.store.audit()]
    assert ("disp", "login", "refused: bad credentials") in audit
    assert ("disp", "incident_create", "ok") in audit
    assert ("view", "incident_create", "refused: role viewer may not incident_create") in audit
    assert ("disp", "sign_op", "refused: role dispatcher may not sign_op") in audit
    assert any(a[1] == "/api/incidents" and a[2] == "refused: bad CSRF token" for a in audit)


def test_track_history_and_exports(console, publisher):
    t0 = time.time() - 600
    for i in range(5):
        publisher.send("owntracks/roadedge/trk-a", location(i + 1, 30.300, 120.000 + i * 0.001, t0 + i * 10, vel=30 + i))
    publisher.send("owntracks/roadedge/trk-a", location(9, 30.300, 120.009, t0 + 500))  # outside the range
    assert console.ingest.wait_idle(6)
    c = Client(console.url)
    assert c.login("view", "view-pass-123") == 200
    q = f"/api/track?unit=trk-a&from={t0 - 1}&to={t0 + 100}"
    st, pts = c.req("GET", q)
    assert st == 200 and [p["seq"] for p in pts] == [1, 2, 3, 4, 5]
    st, gj = c.req("GET", q + "&format=geojson")
    coords = gj["features"][0]["geometry"]["coordinates"]
    assert st == 200 and coords[0] == [120.0, 30.3] and len(coords) == 5
    st, gpx = c.req("GET", q + "&format=gpx")
    assert st == 200
    import xml.etree.ElementTree as ET

    root = ET.fromstring(gpx)
    ns = {"g": "http://www.topografix.com/GPX/1/1"}
    pts_x = root.findall(".//g:trkpt", ns)
    assert len(pts_x) == 5 and pts_x[4].get("lon") == "120.0040000"


def test_login_throttle_slows_guessing_but_never_locks_the_owner_out():
    from host_tools.dispatch.users import LoginThrottle

    t, now = LoginThrottle(cap=100), 1000.0
    # 40 attempts at once on one account: 5 are let through to the password check, the rest wait
    admitted = [t.admit("sup", "10.0.0.9", None, now) == 0 for _ in range(40)]
    assert sum(admitted) == 5
    for _ in range(5):
        t.done("sup", "10.0.0.9", None, False, now)
    # after that: one try at a time, each after a back-off that doubles, never more than the cap
    waits = []
    for _ in range(20):
        w = t.admit("sup", "10.0.0.9", None, now)
        waits.append(w)
        now += w
        assert t.admit("sup", "10.0.0.9", None, now) == 0
        t.done("sup", "10.0.0.9", None, False, now)
    assert waits[0] == 1 and max(waits) <= LoginThrottle.ADDRESS_CAP_S
    assert all(w <= LoginThrottle.ACCOUNT_CAP_S for w in waits[:14])  # until the address limit joins in
    # the owner's browser (a device cookie from an earlier login) is not held up by any of it
    owner = t.trusted(t.device_cookie("sup"), "sup", now)
    assert owner and t.admit("sup", "192.0.2.1", owner, now) == 0
    t.done("sup", "192.0.2.1", owner, True, now)
    assert t.trusted(t.device_cookie("sup"), "disp", now) is None  # a cookie is for its own account only
    # an undecided (cancelled) attempt is released without counting
    assert t.admit("ann", "10.0.0.8", None, now) == 0
    t.done("ann", "10.0.0.8", None, None, now)
    assert t.accounts.get("ann", now) == (0, 0.0)
    # memory stays bounded whatever names are tried
    for i in range(500):
        addr = f"10.1.{i // 250}.{i % 250}"
        assert t.admit(f"u{i}", addr, None, now) == 0
        t.done(f"u{i}", addr, None, False, now)
    assert len(t.accounts.m) == len(t.addresses.m) == 100 and not t.in_flight and not t.addr_in_flight
