"""Contract tests: the firmware and the simulator's in-process devices publish the same payloads for the
same inputs; every payload the devices publish decodes in dispatch ingest; seq never repeats per device and
kind; every broker's ACL grants the same rights (all from roadedge.wire)."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from host_tools import fw
from host_tools.dispatch.decode import Reject, decode
from host_tools.provision import acl
from roadedge import wire, wire_access
from host_tools.deployment.scenario import load
from sim.world import World
from sim.world.inprocess_devices import SimBeacon, SimSign
from sim.world.sinks import MemorySink

HERE = Path(__file__).parent
REPO = HERE.parents[1]
DEMO = REPO / "sim" / "scenarios" / "demo.json"

FOG = [[t * 5000, v] for t, v in enumerate([2000, 1500, 600, 400, 180, 150, 90, 80, 45, 40, 40, 120, 400, 900,
                                             2500, 3000, 3000, 3000])]
BEACON = {"position_m": 1230.0, "enter_s": 0, "exit_s": 5}
COMMANDS = [[1000, "set_limit", {"limit": 60, "legend": "FOG"}], [2000, "heartbeat", {"zone": "z"}],
            [3000, "set_limit", {"limit": 55}], [4000, "set_limit", {"limit": 40, "legend": "FOG", "check": 1}],
            [5000, "clear", {}], [6000, "set_limit", {"limit": 80, "priority": 300}], [7000, "nope", {}]]


def _strip(payload: dict) -> dict:
    return {k: v for k, v in payload.items() if k not in ("seq", "ts")}


def _in_process() -> tuple[list, list]:
    sent: list = []

    def out(topic, obj, qos=0, retain=False):
        sent.append((wire.parse(topic)[0], obj))

    b = SimBeacon(SimpleNamespace(id="bcn-1", km=1.23), 0.0, BEACON, out)
    for t, vis in FOG:
        b.reading(t, vis, 0)
    beacon = [(k, _strip(p)) for k, p in sent]
    sent.clear()
    s = SimSign(SimpleNamespace(id="vsl-1"), {}, False, out)
    for t, name, args in COMMANDS:
        code, detail = s.command(t, name, args)
        s.ack(0, name, None, code, detail)
        s.step(t, 0)
    return beacon, [(k, _strip(p)) for k, p in sent]


@pytest.mark.parametrize("runtime", fw.RUNTIMES)
def test_firmware_and_world_devices_publish_the_same_payloads(runtime, tmp_path):
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"beacon": {"params": BEACON, "readings": FOG},
                               "sign": {"params": {}, "commands": COMMANDS}}))
    res = fw.run(runtime, HERE / "fw_contract_driver.py", [str(job)], heap="256K", timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    halves = res.stdout.split("--\n")
    fw_beacon, fw_sign = ([tuple(json.loads(line)) for line in h.splitlines() if line.strip()] for h in halves)
    fw_beacon = [(k, _strip(p)) for k, p in fw_beacon]
    fw_sign = [(k, _strip(p)) for k, p in fw_sign]
    sim_beacon, sim_sign = _in_process()
    assert any(k == "event" and p["type"] == "vis_level" for k, p in sim_beacon)
    assert any(k == "state" and p["mode"] == "anti_rear_end" for k, p in sim_beacon)
    assert fw_beacon == sim_beacon
    assert {p["code"] for k, p in sim_sign if k == "ack"} >= {"ok", "bad_args", "unknown_command"}
    assert fw_sign == sim_sign


@pytest.fixture(scope="module")
def world_messages():
    w = World(load(DEMO))
    m = MemorySink()
    w.sinks.append(m)
    w.run(300)
    return m.messages


def test_every_world_payload_decodes_in_ingest_and_seq_never_repeats(world_messages):
    seen: dict[tuple[str, str], set[int]] = {}
    kinds = set()
    for msg in world_messages:
        try:
            rec = decode(msg.topic, msg.payload)
        except Reject as e:
            pytest.fail(f"{msg.topic}: {e} ({msg.payload[:200]!r})")
        kinds.add(rec.kind)
        if rec.seq is not None and rec.seq >= 0:
            key = (rec.device, rec.kind)
            assert rec.seq not in seen.setdefault(key, set()), f"seq {rec.seq} repeated for {key}"
            seen[key].add(rec.seq)
    assert {"location", "state", "event", "ack", "status", "ctl"} <= kinds
    events = [json.loads(m.payload) for m in world_messages if m.topic.endswith("/event")]
    assert events and all(e["seq"] > 0 for e in events)


def _rights_mosquitto(text: str) -> dict[str, set]:
    rights: dict[str, set] = {}
    user = None
    for line in text.splitlines():
        if line.startswith("user "):
            user = line.split()[1]
        elif line.startswith("topic ") and user:
            _t, how, topic = line.split()
            rights.setdefault(user, set()).add(("publish" if how == "write" else "subscribe", topic))
    return rights


def _rights_table(user: str) -> set:
    pub, sub = wire_access.access(wire_access.DEVICE_USER, user) if user not in wire.SERVICES else wire_access.access(user)
    return {("publish", t) for t in pub} | {("subscribe", t) for t in sub}


def test_the_broker_acl_grants_exactly_the_access_table():
    devices = ["bcn-1", "vsl-1", "trk-1"]
    mosq = _rights_mosquitto(acl.acl_file(devices, list(wire.SERVICES)))
    for user in devices + list(wire.SERVICES):
        assert mosq.get(user, set()) == _rights_table(user), user
    # a device may publish exactly what it sends, under its own id only
    assert ("publish", wire.location_topic("trk-1")) in mosq["trk-1"]
    assert all(t.startswith(("re/trk-1/", "owntracks/roadedge/trk-1", "re/sys/")) for _h, t in mosq["trk-1"])
    for bad in wire.RESERVED_IDS + wire.SERVICES:
        with pytest.raises(ValueError):
            acl.device_rules(bad)
