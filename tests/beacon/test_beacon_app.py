"""The beacon app shell in-process with the real platform Device, sim HAL and
virtual peripherals (real asyncio time, short poll period). Acceptance (d):
meter fault or silence -> safe mode and a fault report within two poll
periods (counted in meter polls, not wall-clock); (e): forged, replayed,
expired and out-of-range commands change nothing and are counted."""
from __future__ import annotations

import asyncio
import json

from beacon_harness import Bench
from sim.peripherals import vis_meter as VM

SHORT_TAIL = {"meter": {"poll_s": 0.2, "reply_ms": 80}, "tail_m": 10.0, "enter_s": 0.0, "exit_s": 0.0,
              "sense_s": 0.1}


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def is_event(kind, **fields):
    def pred(topic, p, q, r):
        return topic.endswith("/event") and p["type"] == kind and all(p.get(k) == v for k, v in fields.items())
    return pred


def test_meter_fault_and_silence_enter_safe_mode_within_two_polls(tmp_path):
    async def main():
        async with Bench(tmp_path, visibility=2000) as b:
            await b.mqtt.wait(lambda t, p, q, r: t.endswith("/state") and p["meter"] == "ok")
            assert b.state()["reason"] == "auto" and b.state()["mode"] == "standby"
            for inject, status, reason in ((lambda: b.meter.set_flags(VM.RECEIVER), "fault", "receiver"),
                                           (lambda: b.meter.silence(), "silent", "no_reply")):
                n, since = b.meter.polls, b.mqtt.mark()
                inject()
                _, ev, _, _ = await b.mqtt.wait(is_event("fault", what="meter", status=status), since=since)
                assert b.meter.polls - n <= 2, "fault reported later than two poll periods"
                assert ev["reason"] == reason and ev["safe_mode"] == "guidance"
                st = b.state()
                assert st["mode"] == "guidance" and st["reason"] == "safe" and st["meter"] == status
                # repair: back to the visibility-driven mode
                b.meter.set_flags(0)
                b.meter.silence(False)
                await b.mqtt.wait(is_event("fault_cleared", what="meter"), since=since)
                assert b.state()["reason"] == "auto"
            assert b.dev.counters["meter_faults"] == 2
    run(main())


def test_meter_dead_at_boot_is_reported_and_line_noise_counted(tmp_path):
    async def main():
        async with Bench(tmp_path) as b:
            b.meter.silence()
            await b.mqtt.wait(is_event("fault", what="meter", status="silent"))
            assert b.state()["reason"] == "safe"
            b.meter.silence(False)
            b.meter.garbage()
            b.meter.corrupt_checksum()
            await b.meter.wait_polls(b.meter.polls + 2)
            b.meter.corrupt_checksum(False)
            await b.mqtt.wait(lambda t, p, q, r: t.endswith("/state") and p["meter"] == "ok")
            assert b.dev.counters.get("meter_bad_checksum", 0) >= 1
            assert b.dev.counters.get("meter_bad_format", 0) >= 1
    run(main())


def test_fog_level_event_and_red_tail_on_lamps(tmp_path):
    async def main():
        async with Bench(tmp_path, beacon=SHORT_TAIL, visibility=2000) as b:
            await b.mqtt.wait(lambda t, p, q, r: t.endswith("/state") and p["meter"] == "ok")
            b.visibility = 45
            _, ev, _, _ = await b.mqtt.wait(is_event("vis_level", to=4))
            assert ev["from"] == 0 and ev["vis_m"] == 45 and ev["mode"] == "anti_rear_end"
            b.io.changes.clear()
            await b.io.vehicle(80)
            while ("lamp_red", 0.0) not in b.io.changes[1:] or not any(
                    c == "lamp_red" and d > 0 for c, d in b.io.changes):
                b.io.pwm_event.clear()
                await asyncio.wait_for(b.io.pwm_event.wait(), 5)
            # red came on after the pass and went off again once the (10 m) tail had passed
            reds = [d for c, d in b.io.changes if c == "lamp_red"]
            assert reds[0] > 0 and reds[-1] == 0.0
            assert b.dev.counters["detections"] == 1
            tele = b.dev.telemetry()
            assert tele["mode"] == "anti_rear_end" and tele["vis_m"] == 45 and tele["det"] == 1
            assert tele["clock"]["src"] == "ntp"
    run(main())


def test_burnt_lamp_and_low_battery_are_reported(tmp_path):
    async def main():
        async with Bench(tmp_path, beacon=SHORT_TAIL, visibility=300) as b:  # contour: steady yellow
            await b.mqtt.wait(lambda t, p, q, r: t.endswith("/state") and p["mode"] == "contour")
            b.io.burn_out("lamp_yellow")
            await b.mqtt.wait(is_event("fault", what="lamp_yellow"))
            assert b.state()["lamps"]["yellow"] == "out"
            b.io.burn_out("lamp_yellow", False)
            await b.mqtt.wait(is_event("fault_cleared", what="lamp_yellow"))
            full = b.io.duty("lamp_yellow")
            b.io.battery(11.5)
            await b.mqtt.wait(is_event("battery", state="dim"))
            await b.mqtt.wait(lambda t, p, q, r: t.endswith("/state") and p["battery"] == "dim")
            await asyncio.sleep(0.3)
            assert 0 < b.io.duty("lamp_yellow") < full  # dimmed, still lit
            b.io.battery(10.8)
            await b.mqtt.wait(is_event("battery", state="cutoff"))
            await asyncio.sleep(0.3)
            assert b.io.duty("lamp_yellow") == 0.0
    run(main())


def test_bad_commands_change_nothing_and_are_counted(tmp_path):
    async def main():
        async with Bench(tmp_path) as b:
            await b.mqtt.wait(lambda t, p, q, r: t.endswith("/state") and p["meter"] == "ok")
            before = b.state()
            stored = (tmp_path / "data" / "beacon.json")
            bad = [
                ("mode", {"mode": "disco"}), ("mode", {"mode": "contour", "ttl_s": 0}),
                ("mode", {"mode": "contour", "ttl_s": 10 ** 9}), ("mode", {"mode": "contour", "x": 1}),
                ("section_alarm", {"on": "yes"}), ("section_alarm", {"on": True, "ttl_s": -5}),
                ("thresholds", {"levels_m": [100, 200, 300, 400]}), ("thresholds", {"levels_m": [500, 0]}),
                ("thresholds", {"hyst_pct": 150}), ("thresholds", {"enter_s": True}),
                ("thresholds", {"levels_m": [500, 200, 100, 50], "exit_s": 99999}),
                ("thresholds", {"level_modes": ["standby"] * 4}), ("thresholds", {}),
                ("thresholds", {"levels_m": "500,200"}),
            ]
            for cmd, args in bad:
                ack = await b.command(cmd, b.signed(cmd, args))
                assert ack["code"] == "bad_args" and not ack["ok"], (cmd, args, ack)
            good = b.signed("mode", {"mode": "contour"})
            forged = json.loads(good)
            forged["body"] = forged["body"].replace("contour", "standby")
            assert (await b.command("mode", json.dumps(forged)))["code"] == "bad_mac"
            other_key = b.signed("mode", {"mode": "contour"}, key="ff" * 32)
            assert (await b.command("mode", other_key))["code"] == "bad_mac"
            assert (await b.command("mode", b.signed("mode", {"mode": "contour"}, exp=1000)))["code"] == "expired"
            assert (await b.command("section_alarm", b.signed("mode", {"on": True})))["code"] == "wrong_command"
            assert b.state() == before and not stored.exists()
            c = b.dev.counters
            assert c["cmd_bad_args"] == len(bad) and c["cmd_bad_mac"] == 2 and c["cmd_expired"] == 1
            # a good command is applied, acked and stored; replaying it is refused and counted
            ack = await b.command("mode", good)
            assert ack["ok"] and ack["detail"] == {"mode": "contour", "reason": "override"}
            assert b.state()["mode"] == "contour"
            assert (await b.command("mode", good))["code"] == "replay"
            assert b.dev.counters["cmd_replay"] == 1 and b.state()["mode"] == "contour"
            ack = await b.command("section_alarm", b.signed("section_alarm", {"on": True}))
            assert ack["ok"] and b.state()["mode"] == "section_alarm"
            ack = await b.command("thresholds", b.signed("thresholds", {"levels_m": [1000, 400, 150, 60],
                                                                         "exit_s": 120}))
            assert ack["ok"] and b.state()["levels_m"] == [1000, 400, 150, 60]
            assert json.loads(stored.read_text())["alarm"] is True
        # settings survive a restart; the counter store refuses the old command after it too
        async with Bench(tmp_path) as b2:
            _, st, _, _ = await b2.mqtt.wait(lambda t, p, q, r: t.endswith("/state"))
            assert st["levels_m"] == [1000, 400, 150, 60] and st["mode"] == "section_alarm"
            assert st["override"] == "contour"
            assert (await b2.command("mode", good))["code"] == "replay"
            ack = await b2.command("thresholds", b2.signed("thresholds", {"reset": True}))
            assert ack["ok"] and b2.app.logic.modes.level.levels == [500, 200, 100, 50]
            assert json.loads(stored.read_text())["thresholds"] is None
    run(main())
