"""Least privilege for the console's keys: it holds only the trackers' command keys and signs only what its
users may send to the devices that accept it: a dispatch to a sign's id is refused with a clear error and
nothing reaches the sign (probed with mosquitto_sub), an SOS ack goes only to the tracker that raised an
open SOS."""
from __future__ import annotations

import queue
import secrets
import shutil
import subprocess
import threading
import time

import pytest
from dispatch_support import location
from support.waiting import first_from
from test_console_http import Client

from host_tools.config.secrets import Secrets
from host_tools.deployment.scenario import load
from host_tools.dispatch.service import DispatchService
from host_tools.keys import Keyring
from host_tools.provision.core import provision

SIGN = "vsl-1"  # the deployment's sign (dispatch_support.U_ROAD)


def _key() -> dict:
    return {"command_key": secrets.token_hex(32), "mqtt_password": "x"}


def test_the_console_keeps_only_the_trackers_keys(tmp_path, deployment):
    beacon = load(deployment).beacons[0].id
    sd = tmp_path / "secrets"
    sec = Secrets.load(sd)
    provision(sec, ["trk-a", "trk-c", SIGN, "vsl-9", "bcn-9"], out=tmp_path / "gen", tls_hosts=None,
              roles={"trk-a": "tracker", "trk-c": "tracker", SIGN: "sign", "vsl-9": "sign", "bcn-9": "beacon"})
    # provisioned without a role: trk-b and the beacon are in the deployment, x-1 nowhere
    provision(sec, ["trk-b", beacon, "x-1"], out=tmp_path / "gen", tls_hosts=None)
    assert Secrets.load(sd).devices[SIGN]["role"] == "sign"
    svc = DispatchService("mqtt://127.0.0.1:1", tmp_path / "d.db", tmp_path / "u.json", None, deployment, sd)
    try:
        held = svc.console.keyring
        assert set(held.devices) == {"trk-a", "trk-b", "trk-c"}
        assert held.operator_key  # operator actions for the controllers are the console's to sign
        assert not {SIGN, "vsl-9", "bcn-9", beacon} & set(held.devices)
    finally:
        svc.store.close()
        svc.console.close()
    # a device provisioned as something else stays out even if a deployment lists it as a tracker
    k = Keyring({"trk-b": {**_key(), "role": "beacon"}, "trk-a": _key()})
    assert set(k.of_role("tracker", ["trk-a", "trk-b"]).devices) == {"trk-a"}


def test_provisioning_refuses_to_change_a_devices_role_without_new_credentials(tmp_path):
    sec = Secrets.load(tmp_path / "s")
    provision(sec, ["trk-z"], out=tmp_path / "g", tls_hosts=None, roles={"trk-z": "tracker"})
    with pytest.raises(ValueError, match="provisioned as tracker"):
        provision(sec, ["trk-z"], out=tmp_path / "g", tls_hosts=None, roles={"trk-z": "sign"})
    with pytest.raises(ValueError, match="role"):
        provision(sec, ["trk-y"], out=tmp_path / "g", tls_hosts=None, roles={"trk-y": "toaster"})


class CmdProbe:
    """mosquitto_sub (a client nobody here wrote) on a device's command topics."""

    def __init__(self, port: int, dev: str) -> None:
        if not shutil.which("mosquitto_sub"):
            pytest.skip("mosquitto-clients not installed")
        self.port, self.dev = port, dev
        self.p = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-v",
                                   "-t", f"re/{dev}/cmd/#"], stdout=subprocess.PIPE, text=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [self.lines.put(x.rstrip("\n")) for x in self.p.stdout or ()],
                         daemon=True).start()

    def mark(self, publisher, name: str) -> list[str]:
        """Publish a marker command topic and return every line heard up to it (waits; no sleeping)."""
        for _ in range(100):
            publisher.send(f"re/{self.dev}/cmd/{name}", name)
            try:
                first = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue  # not subscribed yet
            got = [first]
            while not got[-1].endswith(f"cmd/{name} {name}"):
                got.append(self.lines.get(timeout=20))
            return got
        raise AssertionError("probe never heard its marker")

    def close(self) -> None:
        self.p.terminate()
        self.p.wait(10)


@pytest.fixture
def wide_keyring(keyring) -> Keyring:
    """What a careless deployment hands the console: every device's key (a sign's and a beacon's too)."""
    devices = dict(keyring.devices)
    devices[SIGN] = {**_key(), "role": "sign"}
    devices["vsl-9"] = _key()
    return Keyring(devices, operator_key=keyring.operator_key)


@pytest.fixture
def wide_console(mosquitto, tmp_path, deployment, wide_keyring, users_file):
    with DispatchService(mosquitto.url, tmp_path / "dispatch.db", users_file, ("127.0.0.1", 0), deployment,
                         keyring=wide_keyring) as svc:
        yield svc


def _login(svc) -> Client:
    c = Client(svc.url)
    assert c.login("disp", "disp-pass-123") == 200
    return c


def test_a_dispatch_to_a_signs_id_is_refused_and_nothing_reaches_the_sign(wide_console, mosquitto, publisher):
    assert SIGN not in wide_console.console.keyring.devices
    probe = CmdProbe(mosquitto.port, SIGN)
    try:
        probe.mark(publisher, "probe")
        c = _login(wide_console)
        st, inc = c.req("POST", "/api/incidents", {"lat": 30.3, "lon": 120.005, "priority": 2, "text": "crash"})
        assert st == 200, inc
        st, body = c.req("POST", "/api/dispatch", {"incident": inc["id"], "unit": SIGN})
        assert st == 409 and "vsl-1 is a sign" in body["error"] and "only to patrol trackers" in body["error"], body
        # a device the console knows nothing about is refused as clearly
        st, body = c.req("POST", "/api/dispatch", {"incident": inc["id"], "unit": "vsl-9"})
        assert st == 409 and "not a patrol tracker" in body["error"], body
        # nothing but the probes reached the sign's command topics
        heard = probe.mark(publisher, "end")
        assert all(line.split(" ", 1)[0] in (f"re/{SIGN}/cmd/probe", f"re/{SIGN}/cmd/end") for line in heard), heard
        audit = wide_console.store.audit(5)
        assert any(a["action"] == "dispatch" and a["target"] == SIGN and a["result"].startswith("refused: vsl-1 is a")
                   for a in audit), audit
        # the same dispatch to a tracker goes out, signed (the positive control)
        bus = wide_console.console.bus.subscribe()
        publisher.send("owntracks/roadedge/trk-a", location(1, 30.3000, 120.0010, time.time()))
        first_from(bus, lambda e: e[0] == "devices" and any(d["id"] == "trk-a" for d in e[1]), 10)
        st, d = c.req("POST", "/api/dispatch", {"incident": inc["id"], "unit": "trk-a"})
        assert st == 200 and d["unit"] == "trk-a", d
    finally:
        probe.close()


def _wait_open_sos(svc, dev: str) -> None:
    deadline = time.monotonic() + 20
    while not any(s["device"] == dev for s in svc.store.sos(open_only=True)):
        assert time.monotonic() < deadline, f"SOS of {dev} never stored"
        time.sleep(0.05)


def test_an_sos_ack_goes_only_to_the_tracker_that_raised_an_open_sos(wide_console, mosquitto, publisher):
    c = _login(wide_console)
    # trk-a raised nothing: refused, and nothing is signed for it
    st, body = c.req("POST", "/api/sos/ack", {"unit": "trk-a"})
    assert st == 409 and "no open SOS from trk-a" in body["error"], body
    # a sign that "raises" an SOS (any device can publish an event) gets no acknowledgement either
    probe = CmdProbe(mosquitto.port, SIGN)
    try:
        probe.mark(publisher, "probe")
        publisher.send(f"re/{SIGN}/event", {"seq": 9, "ts": time.time(), "type": "sos", "id": 1,
                                            "lat": 30.3, "lon": 120.0})
        _wait_open_sos(wide_console, SIGN)
        st, body = c.req("POST", "/api/sos/ack", {"unit": SIGN})
        assert st == 409 and "vsl-1 is a sign" in body["error"], body
        heard = probe.mark(publisher, "end")
        assert not [line for line in heard if "/cmd/sos_ack" in line], heard
    finally:
        probe.close()
    # the tracker that raised one is acknowledged, with the console's signature
    publisher.send("re/trk-b/event", {"seq": 50, "ts": time.time(), "type": "sos", "id": 7, "since": time.time(),
                                      "duty": "patrol", "lat": 30.305, "lon": 120.008})
    _wait_open_sos(wide_console, "trk-b")
    st, body = c.req("POST", "/api/sos/ack", {"unit": "trk-b"})
    assert st == 200 and body["ok"], body
    assert isinstance(body["ctr"], int)  # the counter it was signed with
