"""The controller's I/O shell in-process: MQTT input parsing, signing, re-sends, audit and the
standing decisions that survive a restart (a fake client records what would be published)."""
from __future__ import annotations

import json
import time

from host_tools.controller.audit import Audit
from host_tools.controller.cli import Controller, operator_auth
from host_tools.controller.zone import ZoneConfig
from host_tools.keys import Keyring
from roadedge.core.auth import CommandAuth

KEYS = {f"vsl-{i}": {"command_key": f"{i:02x}" * 32, "mqtt_password": "x"} for i in range(3)}
OP_KEY = "a5" * 32
ZONE = ZoneConfig.from_dict({"zone": "z1", "confirm_s": 0, "signs": [
    {"id": f"vsl-{i}", "km": i, "sources": ["bcn-1", f"vsl-{i}"]} for i in range(3)]})


class FakeClient:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | str, int, bool]] = []

    def publish(self, topic, payload, qos=0, retain=False):
        self.sent.append((topic, payload, qos, retain))

    def commands(self, name="set_limit"):
        return [(t.split("/")[1], json.loads(json.loads(p)["body"])) for t, p, _q, _r in self.sent
                if t.endswith("/cmd/" + name)]


class Clock:
    def __init__(self) -> None:
        self.t = time.time()  # the signer stamps expiry from the real clock

    def __call__(self) -> float:
        return self.t


def make(tmp_path, mode="automatic"):
    client, clock = FakeClient(), Clock()
    audit = Audit(tmp_path / "audit.sqlite", "z1")
    keyring = Keyring(KEYS, operator_key=OP_KEY)
    ctl = Controller(ZONE, client, keyring, audit, mode, now=clock,
                     op_auth=operator_auth(keyring, "z1", str(tmp_path / "op-ctr.json")))
    return ctl, client, clock, audit


def op(ctl, retained=False, **action):
    """An operator action as the console sends it: signed with the operator key."""
    ctl.on_message("re/ctl/z1/op", Keyring({}, operator_key=OP_KEY).operator_signer("z1").sign("op", action, 600),
                   retained)


def msg(ctl, topic, obj, retained=False):
    ctl.on_message(topic, json.dumps(obj).encode() if not isinstance(obj, bytes) else obj, retained)


def test_commands_are_signed_for_each_sign_and_verify_on_the_device(tmp_path):
    ctl, client, clock, _ = make(tmp_path)
    msg(ctl, "re/bcn-1/tele", {"vis_m": 150, "ts": clock.t})
    ctl.update()
    sent = client.commands()
    assert {d for d, _ in sent} == {"vsl-0", "vsl-1", "vsl-2"}
    for topic, payload, qos, _r in client.sent:
        if "/cmd/set_limit" in topic:
            dev = topic.split("/")[1]
            auth = CommandAuth(KEYS[dev]["command_key"], dev, str(tmp_path / f"{dev}.json"))
            code, body = auth.check("set_limit", payload, clock.t)
            assert code == "ok" and body["args"]["limit"] == 60 and body["args"]["legend"] == "FOG" and qos == 1
    ctl.heartbeats()
    assert len(client.commands("heartbeat")) == 3
    state = [json.loads(p) for t, p, _q, r in client.sent if t == "re/ctl/z1/state" and r][-1]
    assert state["mode"] == "automatic" and [s["commanded"] for s in state["signs"]] == [60, 60, 60]


def test_inputs_are_checked(tmp_path):
    ctl, client, clock, audit = make(tmp_path)
    msg(ctl, "re/bcn-1/state", {"vis_m": 30, "ts": clock.t - 3600}, retained=True)  # old retained: ignored
    msg(ctl, "re/bcn-1/state", {"vis_m": 30}, retained=True)  # retained without ts: ignored
    msg(ctl, "re/bcn-1/tele", b"\xff not json")
    msg(ctl, "re/bcn-1/tele", {"vis_m": "thick"})
    msg(ctl, "re/bcn-9/tele", {"vis_m": 10})  # not a source of this zone
    msg(ctl, "re/vsl-2/state", {"vis_m": 90, "limit": None, "source": "commLoss", "ts": clock.t})  # a sign's own meter
    ctl.update()
    assert [s.vis_m for s in ctl.policy.signs] == [None, 90, 90]  # the old retained one is too old; vsl-1 is blind: its neighbour
    op(ctl, action="mode", mode="manual", user="old", role="supervisor", retained=True)
    msg(ctl, "re/ctl/z1/op", b"[not an op")
    msg(ctl, "re/ctl/z1/op", {"action": "mode", "mode": "manual", "user": "wang", "role": "supervisor"})  # unsigned
    op(ctl, action="mode", mode="manual", user="li", role="operator")
    assert ctl.policy.mode == "automatic"
    rows = audit.rows()
    assert [(r["who"], r["action"]) for r in rows if r["action"] == "refused"] == [("?", "refused")] * 3 + [
        ("li", "refused")]
    assert ctl.stats["ops_rejected"] == {"retained": 1, "bad_json": 2, "refused": 1}
    msg(ctl, "re/vsl-1/ack", {"cmd": "set_limit", "ok": False, "code": "bad_mac", "ctr": None})
    assert audit.rows("action = 'ack'")[0]["sign"] == "vsl-1"


def test_a_sign_showing_something_else_gets_the_decision_again(tmp_path):
    ctl, client, clock, audit = make(tmp_path)
    msg(ctl, "re/bcn-1/tele", {"vis_m": 1000, "ts": clock.t})
    ctl.update()
    n = len(client.commands())
    msg(ctl, "re/vsl-1/state", {"limit": 100, "source": "central", "legend": ""})
    assert len(client.commands()) == n
    clock.t += 60
    msg(ctl, "re/vsl-1/state", {"limit": None, "source": "powerRecovery", "legend": ""})
    assert client.commands()[-1] == ("vsl-1", client.commands()[-1][1]) and client.commands()[-1][1]["args"]["limit"] == 100
    msg(ctl, "re/vsl-1/state", {"limit": None, "source": "powerRecovery", "legend": ""})
    assert len(client.commands()) == n + 1  # not more often than every few seconds
    msg(ctl, "re/vsl-2/state", {"limit": None, "source": "local", "legend": ""})
    assert len(client.commands()) == n + 1  # a technician has it
    assert audit.rows("action = 'resend'")[0]["sign"] == "vsl-1"


def test_a_veto_hold_survives_a_controller_restart(tmp_path):
    ctl, client, clock, audit = make(tmp_path)
    msg(ctl, "re/bcn-1/tele", {"vis_m": 150, "ts": clock.t})
    ctl.update()
    clock.t += 60
    msg(ctl, "re/bcn-1/tele", {"vis_m": 150, "ts": clock.t})
    ctl.update()
    op(ctl, action="veto", sign="vsl-1", user="wang", role="supervisor")
    assert ctl.policy.by_id["vsl-1"].hold == 60
    audit.close()
    ctl2, client2, clock2, audit2 = make(tmp_path)
    assert ctl2.policy.by_id["vsl-1"].hold == 60 and ctl2.policy.by_id["vsl-0"].commanded == 60
    clock2.t = clock.t + 60
    msg(ctl2, "re/bcn-1/tele", {"vis_m": 1000, "ts": clock2.t})
    for _ in range(4):
        clock2.t += 60
        msg(ctl2, "re/bcn-1/tele", {"vis_m": 1000, "ts": clock2.t})
        ctl2.update()
    assert [s.commanded for s in ctl2.policy.signs] == [80, 60, 80]


def test_commands_carry_the_check_value_of_a_known_face(tmp_path):
    from roadedge.sign.display_max7219 import MatrixDisplay

    zone = ZoneConfig.from_dict({"zone": "z1", "confirm_s": 0, "signs": [
        {"id": "vsl-0", "km": 0, "sources": ["bcn-1"], "face": {"display": "matrix", "cols": 4, "rows": 3}},
        {"id": "vsl-1", "km": 1, "sources": ["bcn-1"]}]})
    client, clock = FakeClient(), Clock()
    ctl = Controller(zone, client, Keyring(KEYS), Audit(tmp_path / "a.sqlite", "z1"), now=clock)
    msg(ctl, "re/bcn-1/tele", {"vis_m": 150, "ts": clock.t})
    ctl.update()
    args = {d: b["args"] for d, b in client.commands()}
    from host_tools.controller.cli import _Nowhere

    d = MatrixDisplay(_Nowhere(), 4, 3)
    d.show(60, "FOG")
    assert args["vsl-0"]["check"] == d.check() and "check" not in args["vsl-1"]
