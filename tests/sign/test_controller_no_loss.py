"""The controller loses nothing handed to it: `roadedge controller` (its own process) is killed with
SIGKILL; visibility reports and signed operator actions published while it is down wait in its persistent
session at the broker; after the restart every one is applied exactly once (the fog tightens the signs, each
action is in the audit once, none refused as expired or replayed) and an operator's mode survives it."""
from __future__ import annotations

import json
import signal
import sqlite3
import time

import pytest

from host_tools.keys import Keyring
from vsl_rig import OPERATOR_KEY, Rig

ZONE = {"zone": "z-nl", "interval_s": 1, "confirm_s": 0, "relax_s": 600, "heartbeat_s": 5,
        "signs": [{"id": "vsl-1", "km": 10.0, "sources": ["bcn-fog"]},
                  {"id": "vsl-2", "km": 10.5, "sources": ["bcn-fog"]}]}
STATE = f"re/ctl/{ZONE['zone']}/state"
SUPERVISOR = {"user": "sup", "role": "supervisor", "reason": "drill"}
# each an action to apply once; the last one stands (automatic: the fog then tightens the signs whatever
# the modes in between did with it)
MODES = ["approve", "automatic", "manual", "approve", "manual", "approve", "manual", "automatic"]


@pytest.fixture
def rig(tmp_path, mosquitto):
    r = Rig(tmp_path, mosquitto.port)
    yield r
    r.close()


def op(rig: Rig, mode: str, ttl: int = 300) -> int:
    """A supervisor's mode change as the console signs it; returns its counter once the broker has it."""
    action = {"action": "mode", "mode": mode, "sign": None, "limit": None, "ts": time.time(), **SUPERVISOR}
    payload = Keyring({}, operator_key=OPERATOR_KEY).operator_signer(ZONE["zone"]).sign("op", action, ttl)
    rig.watch.publish(f"re/ctl/{ZONE['zone']}/op", payload, qos=1)  # returns after the broker's PUBACK
    return json.loads(json.loads(payload)["body"])["ctr"]


def report(rig: Rig, seq: int, vis_m: int) -> None:
    # the beacon's level-change event (QoS 1, not retained: only the session can keep it)
    rig.watch.publish("re/bcn-fog/event", {"seq": seq, "ts": time.time(), "type": "vis_level", "from": 0,
                                           "to": 2, "vis_m": vis_m, "mode": "guidance"}, qos=1)


def sign(state: dict, sid: str) -> dict:
    return next(s for s in state["signs"] if s["id"] == sid)


def audited_ops(db) -> list[int]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        rows = con.execute("SELECT inputs FROM audit WHERE action = 'op' ORDER BY id").fetchall()
    finally:
        con.close()
    return [json.loads(r[0])["ctr"] for r in rows]


def test_kill_9_then_everything_sent_while_down_is_applied_once_after_restart(rig):
    for s in ZONE["signs"]:
        rig.sign(s["id"])  # their keys only (no firmware): the commands are read off the broker
    rig.start_controller(ZONE)
    # up (its state comes after the broker confirmed its subscriptions); a report it heard and an action
    # it applied show in that state
    rig.watch.wait_state(STATE, lambda st: True, 60)
    report(rig, 1, 1000)
    rig.watch.wait_state(STATE, lambda st: sign(st, "vsl-1")["vis_m"] == 1000, 30)
    first = op(rig, "manual")
    rig.watch.wait_state(STATE, lambda st: st["mode"] == "manual" and st["stats"]["ops_accepted"] == 1, 30)

    rig.ctl.send_signal(signal.SIGKILL)  # no clean disconnect, nothing flushed
    rig.ctl.wait(30)
    rig.watch.drain()
    # while it is down: thick fog at the beacon, then a supervisor changes the mode again and again
    report(rig, 2, 80)
    ctrs = [op(rig, m) for m in MODES]

    rig.start_controller(ZONE, mode=None)
    # the fog (< 100 m: 40 km/h, Art. 81) reaches both signs; the last action stands
    want = MODES[-1]
    st = rig.watch.wait_state(STATE, lambda st: st["mode"] == want and st["stats"]["ops"] == len(MODES)
                              and all(sign(st, s["id"])["commanded"] == 40 for s in ZONE["signs"]), 90)
    assert st["stats"]["ops_accepted"] == len(MODES) and st["stats"]["ops_rejected"] == {}, st["stats"]
    for s in ZONE["signs"]:
        cmd = rig.watch.wait_for(f"re/{s['id']}/cmd/set_limit", lambda p: json.loads(p["body"])["args"]["limit"] == 40,
                                 30)
        assert cmd
    # each action applied exactly once, in order, across the kill
    assert audited_ops(rig.tmp / "audit.sqlite") == [first, *ctrs]

    # a clean restart keeps the mode the supervisor last set (acknowledged, so persisted)
    rig.stop_controller()
    rig.watch.drain()
    rig.start_controller(ZONE, mode=None)
    st = rig.watch.wait_for(STATE, lambda st: st["stats"]["ops"] == 0, 60)
    assert st["mode"] == want
    assert audited_ops(rig.tmp / "audit.sqlite") == [first, *ctrs]
