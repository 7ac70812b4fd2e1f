"""A sign's firmware through the device runtime (MicroPython unix port), the sim hardware server
and a real Mosquitto: what the LEDs show is read back from the SPI traffic, not taken from the
sign's word."""
from __future__ import annotations

import json
import random
import time

import pytest

from vsl_rig import Rig

FAILSAFE = {"heartbeat_s": 1, "comm_loss_heartbeats": 3, "comm_loss_min_s": 3,
            "power_long_s": 300, "power_short_msg": {"limit": 80, "legend": "FOG"}, "power_long_msg": "blank",
            "reset_msg": {"limit": 60}, "comm_loss_msg": "blank"}


@pytest.fixture
def rig(tmp_path, mosquitto):
    r = Rig(tmp_path, mosquitto.port)
    r.time_beacon()
    yield r
    r.close()


def ready(rig, s, boots=None):
    """The sign is up, its clock set (commands carry expiry times)."""
    topic = f"re/{s.id}/state"
    return rig.watch.wait_state(topic, lambda o: o["ts"] > 0 and (boots is None or o is not boots), 30)


def command(rig, s, name, payload, timeout=15):
    rig.watch.drain()
    rig.watch.publish(f"re/{s.id}/cmd/{name}", payload)
    return rig.watch.wait_for(f"re/{s.id}/ack", lambda o: o["cmd"] == name, timeout)


@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
def test_telemetry_counts_each_command_result_once(rig, runtime):
    s = rig.sign("vsl-c", runtime=runtime).start()
    ready(rig, s)
    assert command(rig, s, "set_limit", s.signed("set_limit", {"limit": 80}))["ok"]
    tele = rig.watch.wait_for("re/vsl-c/tele", lambda o: o["ctr"].get("cmd_ok", 0) > 0, 30)
    assert tele["ctr"]["cmd_ok"] == 1, tele["ctr"]
    ack = command(rig, s, "set_limit", s.signed("set_limit", {"limit": 65}))
    assert ack["code"] == "bad_args"
    tele = rig.watch.wait_for("re/vsl-c/tele", lambda o: o["ctr"].get("cmd_rejected", 0) > 0, 30)
    assert (tele["ctr"]["cmd_ok"], tele["ctr"]["cmd_rejected"], tele["ctr"]["cmd_bad_args"]) == (1, 1, 1), tele["ctr"]


def test_a_far_future_counter_locks_out_nothing_across_a_reboot(rig):
    """The issue's attack: one validly signed command with a counter 10 years ahead. The sign refuses
    it ("future", display unchanged); the console's next command (wall-clock counter) runs, and
    after a power cut too."""
    s = rig.sign("vsl-f").start()
    ready(rig, s)
    assert command(rig, s, "set_limit", s.signed("set_limit", {"limit": 80}))["ok"]
    rig.watch.wait_state("re/vsl-f/state", lambda o: o["limit"] == 80)
    far = int(time.time() * 1000) + 10 * 365 * 86400 * 1000
    ack = command(rig, s, "set_limit", s.signed("set_limit", {"limit": 60}, ctr=far))
    assert (ack["ok"], ack["code"]) == (False, "future"), ack
    assert command(rig, s, "set_limit", s.signed("set_limit", {"limit": 100}))["ok"]
    before = rig.watch.wait_state("re/vsl-f/state", lambda o: o["limit"] == 100)
    s.kill()
    s.start()
    ready(rig, s, boots=before)
    assert command(rig, s, "set_limit", s.signed("set_limit", {"limit": 80}))["ok"]
    rig.watch.wait_state("re/vsl-f/state", lambda o: o["limit"] == 80)


@pytest.mark.parametrize("runtime,display", [("micropython", "matrix"), ("cpython", "7seg")])
def test_commands_checked_rejections_leave_the_display_and_fuzz_never_crashes(rig, runtime, display):
    s = rig.sign("vsl-a", runtime=runtime, sign_cfg={"display": display, "selftest_ms": 200}).start()
    ready(rig, s)
    # the lamp test runs at boot (then daily): every LED on for a moment, then back to the message
    ev = rig.watch.wait_for("re/vsl-a/event", lambda o: o.get("type") == "selftest")
    assert ev["kind"] == "lamp"
    s.wait_io(lambda io: io.lamp_tests == 1 and not io.lamp_test(), what="lamp test over")
    ack = command(rig, s, "set_limit", s.signed("set_limit", {"limit": 80, "legend": "FOG"}))
    assert ack["ok"] and ack["code"] == "ok"
    st = rig.watch.wait_state("re/vsl-a/state", lambda o: o["limit"] == 80)
    before = s.wait_face((80, "FOG"), st["check"])
    assert st["source"] == "central"

    cases = [
        ("forged", s.signed("set_limit", {"limit": 60}, key="00" * 32), "bad_mac"),
        ("expired", s.signed("set_limit", {"limit": 60}, exp=int(time.time()) - 3600), "expired"),
        ("other device", s.signed("set_limit", {"limit": 60}, dev="vsl-zz"), "wrong_device"),
        ("out of range", s.signed("set_limit", {"limit": 130}), "bad_args"),
        ("not in the set", s.signed("set_limit", {"limit": 65}), "bad_args"),
        ("bad legend", s.signed("set_limit", {"limit": 60, "legend": "SLOW"}), "bad_args"),
    ]
    for what, payload, code in cases:
        ack = command(rig, s, "set_limit", payload)
        assert not ack["ok"] and ack["code"] == code, (what, ack)
        assert s.face() == before, what
    # an activation naming the wrong check value of its message is refused
    ack = command(rig, s, "set_limit", s.signed("set_limit", {"limit": 60, "check": (before[1] + 1) & 0xFFFF}))
    assert not ack["ok"] and (ack["code"], ack["detail"]) == ("refused", "check_value")
    assert s.face() == before
    good = s.signed("set_limit", {"limit": 60})
    ack = command(rig, s, "set_limit", good)
    assert ack["ok"]
    rig.watch.wait_state("re/vsl-a/state", lambda o: o["limit"] == 60)
    ack = command(rig, s, "set_limit", good)  # the same message again
    assert not ack["ok"] and ack["code"] == "replay"
    after = s.wait_face((60, ""))

    rnd = random.Random(5)
    junk = [b"", b"{", b"[]", b"null", b"\xff\xfe", b"{\"body\": 5, \"mac\": []}", b"x" * 2000,
            json.dumps({"body": "{}", "mac": "00"}).encode()]
    for _ in range(12):
        args = {rnd.choice(["limit", "duration_s", "priority", "legend", "zz"]):
                rnd.choice([None, -1, 0, 1e9, "60", [], {}, True, 2 ** 40, "\u96fe"]) for _ in range(3)}
        junk.append(s.signed("set_limit", args))
    for i, payload in enumerate(junk):
        ack = command(rig, s, rnd.choice(["set_limit", "clear", "heartbeat"]) if i % 3 else "set_limit", payload)
        assert ack["code"] != "ok" or ack["cmd"] == "heartbeat", (payload[:80], ack)
        assert s.p.poll() is None, s.console()
    assert s.face() == after
    # larger than the device's MQTT packet limit: its client drops the connection and comes back
    rig.watch.drain()
    rig.watch.publish("re/vsl-a/cmd/set_limit", b"x" * 6000)
    rig.watch.wait_for("re/vsl-a/status", lambda o: o == b"offline")
    rig.watch.wait_for("re/vsl-a/status", lambda o: o == b"online")
    # "online" comes behind its subscriptions: the first command after it is heard
    assert command(rig, s, "ping", s.signed("ping", {}), timeout=10)["ok"]
    assert s.p.poll() is None and s.face() == after
    from host_tools.controller.cli import face_check

    chk = face_check({"display": display, "digits": 3, "lamp": True}, 40, "\u96fe")
    ack = command(rig, s, "set_limit", s.signed("set_limit", {"limit": 40, "legend": "\u96fe", "check": chk}))
    assert ack["ok"]
    st = rig.watch.wait_state("re/vsl-a/state", lambda o: o["limit"] == 40)
    if display == "matrix":
        s.wait_face((40, "\u96fe"), st["check"])
    else:  # the lamp panel reads FOG whatever the legend's script
        assert st["legend"] == "\u96fe"
        s.wait_face((40, "FOG"), st["check"])


def test_fail_safe_comms_power_and_reset(rig):
    s = rig.sign("vsl-b", sign_cfg=FAILSAFE).start()
    ready(rig, s)
    assert command(rig, s, "set_limit", s.signed("set_limit", {"limit": 100}))["ok"]
    rig.watch.wait_state("re/vsl-b/state", lambda o: o["limit"] == 100 and o["source"] == "central")
    # no heartbeat from the controller: after 3 missed (and at least 3 s) the comm-loss message
    st = rig.watch.wait_state("re/vsl-b/state", lambda o: o["source"] == "commLoss", 30)
    assert st["limit"] is None and st["comm"] == "lost"
    s.wait_face((None, ""), st["check"])

    # short power loss: the sign was alive a few seconds ago
    assert command(rig, s, "set_limit", s.signed("set_limit", {"limit": 100}))["ok"]
    rig.watch.wait_state("re/vsl-b/state", lambda o: o["limit"] == 100)
    s.kill()
    s.alive(time.time() - 5)
    s.start()
    st = rig.watch.wait_for("re/vsl-b/state", lambda o: o["power_loss"] == "short", 30)
    assert st["source"] == "powerRecovery" and (st["limit"], st["legend"]) == (80, "FOG")
    s.wait_face((80, "FOG"), st["check"])

    # long power loss: off for hours
    s.kill()
    s.alive(time.time() - 4 * 3600)
    s.start()
    st = rig.watch.wait_for("re/vsl-b/state", lambda o: o["power_loss"] == "long", 30)
    assert st["source"] == "powerRecovery" and st["limit"] is None
    s.wait_face((None, ""), st["check"])

    # reset: a commanded reboot (the sim board restarts the process, as a board's soft reset does)
    assert command(rig, s, "reboot", s.signed("reboot", {}))["ok"]
    assert s.wait_exit(30) == 75  # the sim port's "reset" exit
    assert s.hw.reset_cause == "soft"
    s.start()
    st = rig.watch.wait_for("re/vsl-b/state", lambda o: o["source"] == "reset", 30)
    assert st["limit"] == 60 and st["power_loss"] is None
    s.wait_face((60, ""), st["check"])


def test_a_supervisors_hold_survives_a_power_loss(rig):
    """Held at 40 by a veto, the sign loses power: it comes back showing the hold, not its configured
    power-recovery message (80 here), until the controller says otherwise."""
    s = rig.sign("vsl-h", sign_cfg=FAILSAFE).start()
    ready(rig, s)
    assert command(rig, s, "set_limit", s.signed("set_limit", {"limit": 40, "legend": "FOG", "hold": True}))["ok"]
    rig.watch.wait_state("re/vsl-h/state", lambda o: o["limit"] == 40 and o["held"] == 40)
    s.kill()
    s.start()
    st = rig.watch.wait_for("re/vsl-h/state", lambda o: o["source"] == "powerRecovery" and o["power_loss"] != "unknown",
                            30)
    assert (st["limit"], st["legend"]) == (40, "FOG") and st["held"] == 40
    s.wait_face((40, "FOG"), st["check"])
    assert command(rig, s, "set_limit", s.signed("set_limit", {"limit": 60, "legend": "FOG"}))["ok"]
    rig.watch.wait_state("re/vsl-h/state", lambda o: o["limit"] == 60 and o["held"] is None)


def test_local_meter_autonomy_local_control_and_over_temperature(rig):
    from sim.peripherals.vis_meter import VisibilityMeter

    vis = {"m": 80.0}
    s = rig.sign("vsl-c", meter=True, sign_cfg={"heartbeat_s": 1, "comm_loss_heartbeats": 3, "comm_loss_min_s": 3})
    rig.hw.call(lambda: VisibilityMeter(s.hw, lambda t: vis["m"]))
    s.start()
    ready(rig, s)
    assert command(rig, s, "set_limit", s.signed("set_limit", {"limit": 100}))["ok"]
    # the controller goes quiet: the sign applies Art. 81 from its own meter (80 m -> 40 km/h)
    st = rig.watch.wait_state("re/vsl-c/state", lambda o: o["source"] == "autonomous", 30)
    assert (st["limit"], st["legend"]) == (40, "FOG") and st["vis_m"] == 80
    s.wait_face((40, "FOG"), st["check"])
    vis["m"] = 30.0
    st = rig.watch.wait_state("re/vsl-c/state", lambda o: o["limit"] == 20, 30)
    assert st["source"] == "autonomous"

    # a technician flips the maintenance switch: local control refuses the centre
    rig.hw.call(s.io.set_maintenance, True)
    rig.watch.wait_state("re/vsl-c/state", lambda o: o["source"] == "local")
    ack = command(rig, s, "set_limit", s.signed("set_limit", {"limit": 80}))
    assert not ack["ok"] and (ack["code"], ack["detail"]) == ("refused", "local_control")
    rig.hw.call(s.io.set_maintenance, False)
    rig.watch.wait_state("re/vsl-c/state", lambda o: o["source"] != "local")
    rig.heartbeats(s)  # the controller is back
    assert command(rig, s, "set_limit", s.signed("set_limit", {"limit": 80}))["ok"]
    rig.watch.wait_state("re/vsl-c/state", lambda o: o["limit"] == 80 and o["source"] == "central")

    # over-temperature: LEDs off at 60 C, back once cooled
    rig.hw.call(s.io.set_temperature, 64.0)
    st = rig.watch.wait_state("re/vsl-c/state", lambda o: "over_temp" in o["faults"], 30)
    assert st["limit"] is None
    s.wait_face((None, ""), st["check"])
    rig.hw.call(s.io.set_temperature, 40.0)
    st = rig.watch.wait_state("re/vsl-c/state", lambda o: not o["faults"], 30)
    s.wait_face((80, ""), st["check"])
