"""One broker account per fog zone's controller (`controller-<zone>`), provisioned from the zone configs,
with the access table's zone-controller entry filled in for its zone: two zone controllers run at once
against one real Mosquitto without displacing each other, each drives its own signs and takes the
console's operator actions for its zone, and one zone's account is refused the other's signs and
re/ctl/<zone>/ topics (probed with mosquitto_pub/mosquitto_sub, clients nobody here wrote)."""
from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from host_tools import fw
from host_tools.config.secrets import Secrets
from host_tools.controller.cli import Controller, account
from host_tools.controller.zone import ZoneConfig
from host_tools.provision import acl, dynsec
from host_tools.provision.core import provision
from roadedge import wire, wire_access

from test_broker_identity import Sub, pub, wait_subscribed

needs_clients = pytest.mark.skipif(not shutil.which("mosquitto_sub"), reason="mosquitto-clients not installed")

# two fog sections of one city, each with its own controller process
ZONES = {
    "F1": {"zone": "F1", "interval_s": 1, "confirm_s": 0, "heartbeat_s": 2,
           "signs": [{"id": "vsl-f1-1", "km": 1.0, "sources": ["bcn-f1-1"]},
                     {"id": "vsl-f1-2", "km": 2.0, "sources": ["bcn-f1-1", "vsl-f1-2"]}]},
    "F2": {"zone": "F2", "interval_s": 1, "confirm_s": 0, "heartbeat_s": 2,
           "signs": [{"id": "vsl-f2-1", "km": 5.0, "sources": ["bcn-f2-1"]}]},
}
ROLES = {"vsl-f1-1": "sign", "vsl-f1-2": "sign", "vsl-f2-1": "sign", "bcn-f1-1": "beacon", "bcn-f2-1": "beacon"}


def zone_files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for z, cfg in ZONES.items():
        out[z] = tmp_path / f"{z}.json"
        out[z].write_text(json.dumps(cfg))
    return out


def provision_zones(provisioned, files: dict[str, Path]):
    s = Secrets.load(provisioned.secrets_dir)
    res = provision(s, list(ROLES), out=provisioned.out, tls_hosts=None, roles=ROLES,
                    zones=[ZoneConfig.load(f) for f in files.values()])
    return s, res


def test_each_zone_gets_an_account_bound_to_its_name_with_its_zones_rules(provisioned, tmp_path):
    s, res = provision_zones(provisioned, zone_files(tmp_path))
    assert res.zones_created == ["controller-F1", "controller-F2"]
    e = s.services["controller-F1"]
    assert e["role"] == wire_access.ZONE_CONTROLLER and e["zone"] == "F1" and e["mqtt_password"]
    assert e["signs"] == ["vsl-f1-1", "vsl-f1-2"] and e["sources"] == ["bcn-f1-1"]
    assert "operator_key" in s.services["controller"]  # the console's signing key stays where both read it
    cfg = json.loads((provisioned.out / dynsec.FILE_NAME).read_text())
    clients = {c["username"]: c for c in cfg["clients"]}
    roles = {r["rolename"]: r["acls"] for r in cfg["roles"]}
    for z in ZONES:
        acct = f"controller-{z}"
        assert clients[acct]["clientid"] == acct
        cfgz = ZoneConfig.from_dict(ZONES[z])
        pub_f, sub_f = wire_access.zone_access(z, sorted(x.id for x in cfgz.signs),
                                        sorted({src for x in cfgz.signs for src in x.sources} - {x.id for x in cfgz.signs}))
        assert {a["topic"] for a in roles[acct] if a["acltype"] == "publishClientSend"} == set(pub_f)
        assert {a["topic"] for a in roles[acct] if a["acltype"] == "publishClientReceive"} == set(sub_f)
        # exactly what its controller subscribes to, nothing more (re/# is the single-zone account's)
        ctl = Controller(cfgz, None, None, _NoAudit())
        assert set(ctl.topics()) == set(sub_f)
    # the readable acl says the same
    text = (provisioned.out / "acl").read_text()
    f1 = text.split("user controller-F1\n")[1].split("\n\n")[0].splitlines()
    assert "topic write re/vsl-f1-1/cmd/#" in f1 and "topic write re/ctl/F1/state" in f1
    assert not [line for line in f1 if "f2" in line or "F2" in line or line.endswith(("re/#", "+/cmd/#"))], f1


class _NoAudit:
    def saved_mode(self):
        return None

    def standing(self):
        return {}


def test_reprovisioning_keeps_the_zone_passwords_and_follows_the_zone_config(provisioned, tmp_path):
    files = zone_files(tmp_path)
    s, _ = provision_zones(provisioned, files)
    pw = {z: s.services[f"controller-{z}"]["mqtt_password"] for z in ZONES}
    before = (provisioned.out / dynsec.FILE_NAME).read_text()
    # without the zone configs (a device added, say) and with them again: nothing changes
    provision(Secrets.load(provisioned.secrets_dir), [], out=provisioned.out, tls_hosts=None)
    _s, res = provision_zones(provisioned, files)
    assert (provisioned.out / dynsec.FILE_NAME).read_text() == before
    assert res.zones_created == [] and res.zones_changed == []
    # a sign added to F2: same password, the new sign in its rules
    files["F2"].write_text(json.dumps(dict(ZONES["F2"], signs=ZONES["F2"]["signs"] + [
        {"id": "vsl-f2-2", "km": 6.0, "sources": ["bcn-f2-1"]}])))
    s, res = provision_zones(provisioned, files)
    assert res.zones_changed == ["controller-F2"]
    assert {z: s.services[f"controller-{z}"]["mqtt_password"] for z in ZONES} == pw
    assert "re/vsl-f2-2/cmd/#" in acl.rules([], sorted(s.services), acl.zones_of(s.services))["controller-F2"][1]
    # removed: the account goes, the other zone's stays
    res = provision(s, [], out=provisioned.out, tls_hosts=None, remove_zones=["F2"])
    assert res.zones_removed == ["controller-F2"] and "controller-F2" not in Secrets.load(provisioned.secrets_dir).services
    assert Secrets.load(provisioned.secrets_dir).services["controller-F1"]["mqtt_password"] == pw["F1"]


def test_a_sign_in_two_zones_and_ids_that_would_be_a_controllers_account_are_refused(provisioned, tmp_path):
    files = zone_files(tmp_path)
    provision_zones(provisioned, files)
    files["F2"].write_text(json.dumps(dict(ZONES["F2"], signs=[{"id": "vsl-f1-1", "km": 1.0}])))
    with pytest.raises(ValueError, match="two zones"):
        provision_zones(provisioned, files)
    s = Secrets.load(provisioned.secrets_dir)
    assert s.services["controller-F2"]["signs"] == ["vsl-f2-1"]  # nothing of the refused run was saved
    with pytest.raises(ValueError, match="reserved"):
        provision(s, ["controller-F3"], out=provisioned.out, tls_hosts=None)
    for bad in ("a b", "a:b", "a/b"):
        with pytest.raises(ValueError):
            acl.zone_entry(bad, ["vsl-1"], [])


def test_the_controller_logs_in_as_its_zones_account(provisioned, tmp_path):
    files = zone_files(tmp_path)
    # a single-zone set-up (no zone accounts): the one `controller` account, as before
    s = Secrets.load(provisioned.secrets_dir)
    assert account(s, ZoneConfig.load(files["F1"]))[0] == "controller"
    s, _ = provision_zones(provisioned, {"F1": files["F1"]})
    assert account(s, ZoneConfig.load(files["F1"])) == ("controller-F1", s.services["controller-F1"]["mqtt_password"])
    # zone accounts exist, not this zone's: refused, rather than every sign under the shared account
    with pytest.raises(ValueError, match="controller-F2"):
        account(s, ZoneConfig.load(files["F2"]))


@needs_clients
def test_a_zones_account_is_refused_the_other_zones_signs_and_topics(secure_broker, provisioned, tmp_path):
    s, _ = provision_zones(provisioned, zone_files(tmp_path))
    secure_broker.restart()  # Mosquitto reads the accounts at start-up
    port, pw = secure_broker.port, provisioned_pw(s)
    f1 = ("controller-F1", pw("controller-F1"))
    tech = ("technician", pw("technician"))
    watch = Sub(port, "ingest-1", pw("ingest-1"), ["re/#"], "5")  # its own account: ids are bound to accounts
    try:
        wait_subscribed(port, watch, "re/vsl-f1-1/cmd/probe", "5", *tech)
        allowed = ["re/vsl-f1-1/cmd/heartbeat", "re/vsl-f1-2/cmd/set_limit", "re/ctl/F1/state", wire.TIME_TOPIC]
        refused = ["re/vsl-f2-1/cmd/set_limit", "re/vsl-f2-1/cmd/heartbeat", "re/ctl/F2/state", "re/ctl/F2/op",
                   "re/ctl/F1/op",  # operator actions are the console's to send, not the controller's
                   "re/bcn-f1-1/cmd/mode", "re/vsl-f1-1/state", "re/sys/other", "re/ctl/F1/other"]
        for version in ("311", "5"):
            for t in allowed + refused:
                r = pub(port, *f1, t, f"from-f1-{version}", version)
                if version == "5":  # MQTT 5 says so in the PUBACK; 3.1.1 has no way to: delivery shows it
                    said_no = "not authori" in (r.stdout + r.stderr).lower()
                    assert said_no == (t not in allowed), (t, r.returncode, r.stdout, r.stderr)
            assert pub(port, *tech, "re/vsl-f1-1/cmd/end", f"end-{version}", version).returncode == 0
            heard = [line for line in _lines_until(watch, f"re/vsl-f1-1/cmd/end end-{version}")
                     if f"from-f1-{version}" in line]
            assert sorted(line.split(" ", 1)[0] for line in heard) == sorted(allowed), heard
        # reading: its own sign's reports yes; the other zone's sign, its operator actions, everything: no
        own = Sub(port, *f1, ["re/vsl-f1-1/state"], "5")
        try:
            wait_subscribed(port, own, "re/vsl-f1-1/state", "5", "vsl-f1-1", pw("vsl-f1-1"))
        finally:
            own.close()
        for topics in (["re/vsl-f2-1/state"], ["re/ctl/F2/op"], ["re/#"], ["re/+/cmd/#"]):
            denied = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-u", f1[0], "-P", f1[1],
                                     "-i", f1[0], "-V", "5", "-t", topics[0], "-C", "1", "-W", "20"],
                                    capture_output=True, text=True, timeout=30)
            assert "all subscription requests were denied" in (denied.stdout + denied.stderr).lower(), (topics, denied)
    finally:
        watch.close()


def provisioned_pw(s: Secrets):
    def pw(user: str) -> str:
        return (s.devices.get(user) or s.services[user])["mqtt_password"]

    return pw


def _lines_until(sub: Sub, marker: str) -> list[str]:
    got = []
    while not got or not got[-1].endswith(marker):
        line = sub.next(timeout=30)
        assert line is not None, f"subscriber exited before {marker!r}: {got}"
        got.append(line)
    return got


@needs_clients
def test_two_zone_controllers_run_at_once_each_driving_its_own_signs(secure_broker, provisioned, tmp_path):
    from host_tools.keys import Keyring

    files = zone_files(tmp_path)
    s, _ = provision_zones(provisioned, files)
    secure_broker.restart()
    port, pw = secure_broker.port, provisioned_pw(s)
    tech = ("technician", pw("technician"))
    watch = Sub(port, "ingest-1", pw("ingest-1"), ["re/ctl/+/state", "re/+/cmd/#"], "5")
    ctls: dict[str, subprocess.Popen] = {}
    logs = {}
    try:
        wait_subscribed(port, watch, "re/vsl-f1-1/cmd/probe", "5", *tech)
        for z, f in files.items():
            logs[z] = open(tmp_path / f"controller-{z}.log", "wb")
            ctls[z] = subprocess.Popen(
                [sys.executable, "-m", "host_tools.cli", "controller", "--zone", str(f), "--db",
                 str(tmp_path / f"{z}.sqlite"), "--quiet", "--broker", secure_broker.url,
                 "--secrets", str(provisioned.secrets_dir)],
                cwd=fw.REPO, stdout=logs[z], stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        view = View(watch, tmp_path)
        for z in ZONES:
            view.until(lambda v, z=z: z in v.state, f"zone {z}'s state")

        # fog at each zone's beacon (as the beacon reports it): each controller commands its own signs
        seq = 0
        for z, bcn, signs in (("F1", "bcn-f1-1", ["vsl-f1-1", "vsl-f1-2"]), ("F2", "bcn-f2-1", ["vsl-f2-1"])):
            def fogged(v, z=z, signs=signs):
                return all(v.commanded(z, sid) == 40 for sid in signs)

            while not fogged(view):  # telemetry keeps coming, as from a real beacon, until the zone acts
                seq += 1
                tele = json.dumps({"seq": seq, "ts": _now(), "vis_m": 80, "level": 2})
                assert pub(port, bcn, pw(bcn), f"re/{bcn}/tele", tele, "5").returncode == 0
                view.step()
        keyring = Keyring.load(provisioned.secrets_dir)
        for sid, body in view.commands:
            assert body["dev"] == sid and body["cmd"] == "set_limit"
            assert keyring.command_key(sid)  # signed with its own key (verified below for every command)
        _verify(view.commands, keyring)
        assert {sid for sid, _b in view.commands} == {"vsl-f1-1", "vsl-f1-2", "vsl-f2-1"}
        assert view.commanded("F2", "vsl-f1-1") is None and view.commanded("F1", "vsl-f2-1") is None

        # the console's signed operator action for F2 (the dispatcher account, re/ctl/F2/op): F2 only
        action = {"action": "mode", "mode": "manual", "user": "wang", "role": "supervisor", "reason": "drill"}
        payload = keyring.operator_signer("F2").sign("op", action, 60).decode()
        assert pub(port, "dispatcher", pw("dispatcher"), "re/ctl/F2/op", payload, "5").returncode == 0
        view.until(lambda v: v.state["F2"]["mode"] == "manual", "F2 in manual mode")
        assert view.state["F1"]["mode"] == "automatic"
        assert view.state["F2"]["stats"]["ops_accepted"] == 1 and view.state["F1"]["stats"]["ops"] == 0

        # both still on their first connection: nobody displaced, no reconnect loop
        for z in ZONES:
            assert f"MQTT user controller-{z}" in (tmp_path / f"controller-{z}.log").read_text()
        assert all(p.poll() is None for p in ctls.values())
        log = secure_broker.log_path.read_text()
        for z in ZONES:
            assert log.count(f" as controller-{z} (p2, c0,") == 1, log[-3000:]
        assert "already connected, closing old connection" not in log, log[-3000:]
    finally:
        watch.close()
        for z, p in ctls.items():
            p.terminate()
            try:
                p.wait(20)
            finally:
                logs[z].close()


def _now() -> float:
    import time

    return time.time()


def _verify(commands, keyring) -> None:
    import hashlib
    import hmac

    for sid, env in commands:
        raw = env["_raw"]
        mac = hmac.new(keyring.command_key(sid), raw["body"].encode(), hashlib.sha256).hexdigest()
        assert hmac.compare_digest(mac, raw["mac"]), sid


class View:
    """What a technician's mosquitto_sub sees: each zone's retained state and the set_limit commands."""

    def __init__(self, sub: Sub, tmp_path: Path) -> None:
        self.sub = sub
        self.tmp = tmp_path
        self.state: dict[str, dict] = {}
        self.commands: list[tuple[str, dict]] = []

    def step(self, timeout: float = 0.5) -> None:
        try:
            line = self.sub.next(timeout=timeout)
        except queue.Empty:
            return
        assert line is not None, "the watcher exited"
        topic, _, payload = line.partition(" ")
        parsed = wire.parse(topic)
        if parsed and parsed[0] == wire.CTL_STATE:
            self.state[parsed[1]] = json.loads(payload)
        elif parsed and parsed[0] == wire.COMMAND and parsed[2] == "set_limit":
            raw = json.loads(payload)
            body = json.loads(raw["body"])
            body["_raw"] = raw
            self.commands.append((parsed[1], body))

    def commanded(self, zone: str, sign: str):
        for s in self.state.get(zone, {}).get("signs", []):
            if s["id"] == sign:
                return s["commanded"]
        return None

    def until(self, pred, what: str, steps: int = 600) -> None:
        for _ in range(steps):
            if pred(self):
                return
            self.step()
        logs = {p.name: p.read_text()[-1500:] for p in self.tmp.glob("controller-*.log")}
        raise AssertionError(f"never saw {what}: {logs}")


def test_roadedge_provision_takes_zone_files(tmp_path):
    from tooling_support import roadedge

    files = zone_files(tmp_path)
    sd, out = tmp_path / "secrets", tmp_path / "gen"
    r = roadedge("provision", *ROLES, "--zone", str(files["F1"]), "--zone", str(files["F2"]), "--secrets", str(sd),
                 "--out", str(out), "--no-tls")
    assert r.returncode == 0, r.stderr
    assert "controller-F1" in r.stdout and "controller-F2" in r.stdout and "restart Mosquitto" in r.stderr
    first = json.loads((sd / "services.json").read_text())
    r = roadedge("provision", "--zone", str(files["F1"]), "--secrets", str(sd), "--out", str(out), "--no-tls")
    assert r.returncode == 0, r.stderr
    assert json.loads((sd / "services.json").read_text()) == first  # passwords and rules as they were
    r = roadedge("provision", "--remove-zone", "F2", "--secrets", str(sd), "--out", str(out), "--no-tls")
    assert r.returncode == 0 and "removed" in r.stdout, r.stdout
    assert "user controller-F2" not in (out / "acl").read_text() and "user controller-F1" in (out / "acl").read_text()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dict(ZONES["F2"], zone="F 2")))
    r = roadedge("provision", "--zone", str(bad), "--secrets", str(sd), "--out", str(out), "--no-tls")
    assert r.returncode == 1 and "zone id" in r.stderr, r.stderr


@needs_clients
def test_roadedge_broker_provisions_the_zones_it_is_given(tmp_path):
    import signal

    files = zone_files(tmp_path)
    sd = tmp_path / "secrets"
    p = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "broker", "--zone", str(files["F1"]),
                          "--listen", "127.0.0.1:0", "--secrets", str(sd)], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        assert p.stdout
        line = p.stdout.readline()
        assert "listening on mqtt://127.0.0.1:" in line, line
        port = int(line.split("mqtt://127.0.0.1:")[1].split()[0])
        f1 = ("controller-F1", json.loads((sd / "services.json").read_text())["controller-F1"]["mqtt_password"])
        assert pub(port, *f1, "re/vsl-f1-1/cmd/heartbeat", "{}", "5").stderr == ""
        assert "not authori" in pub(port, *f1, "re/vsl-f2-1/cmd/heartbeat", "{}", "5").stderr.lower()
    finally:
        p.send_signal(signal.SIGINT)
        assert p.wait(20) == 0
