"""The device runtime end to end: a "base"-role sim board runs the real firmware
(compiled as a board gets it) under the MicroPython unix port against a real
Mosquitto that requires per-device credentials, with its hardware served by
sim.hw; and the sim HAL port's round trip through the HardwareServer."""
from __future__ import annotations

import json
import queue
import subprocess
import time
from pathlib import Path

import pytest

from host_tools import fw
from host_tools.broker.mosquitto import Mosquitto
from sim.device_process import DeviceProcess, compiled_lib, make_device_dir
from sim.hw import HardwareServerThread

from roadedge.core import auth  # noqa: E402  (conftest makes the firmware importable)

BOARD = fw.REPO / "board_configs" / "sim-base.json"  # the bare platform board
DEV = json.loads(BOARD.read_text())["id"]
KEY = bytes(range(32))
KEEPALIVE = json.loads(BOARD.read_text())["broker"]["keepalive"]
# A board's heap: 96 KiB of a 32-bit board, in MicroPython's word-adjusted form.
# The unix port here is 64-bit (pointers and object headers twice a board's);
# `-X heapsize=96wK` scales the cap to this build's word size (194,304 bytes),
# so the device gets as many heap words as an ESP32 without PSRAM. bench/heap
# measures the literal byte figures too.
HEAP = "96wK"


@pytest.fixture(scope="module")
def lib(tmp_path_factory) -> Path:
    return compiled_lib(tmp_path_factory.mktemp("lib"))


@pytest.fixture
def secure_broker(tmp_path: Path):
    """Mosquitto with a password file: no anonymous clients."""
    with Mosquitto(tmp_path / "mq", users={DEV: "dev-secret", "observer": "obs-secret"}) as b:
        yield b


def _cfg(broker_url: str, hw_addr: str, tmp_path: Path) -> dict:
    """board_configs/sim-base.json with its secrets merged as flash does,
    pointed at the broker and hardware server, telemetry every second."""
    from sim.boot import load_config

    sec = tmp_path / "secrets"
    sec.mkdir(exist_ok=True)
    (sec / "devices.json").write_text(json.dumps({DEV: {"mqtt_password": "dev-secret", "command_key": KEY.hex()}}))
    (sec / "site.json").write_text("{}")
    cfg = load_config(BOARD, broker_url, str(sec))
    cfg["sim"] = {"hw": hw_addr}
    cfg["device"] = {"tele_s": 1}
    return cfg


def _sign(cmd: str, ctr: int, exp: float, key: bytes = KEY, dev: str = DEV, args=None) -> bytes:
    return auth.sign_command(key, dev, cmd, ctr, int(exp), args or {})


def test_device_credentials_birth_will_and_signed_commands(secure_broker, collector_factory, lib, tmp_path):
    col = collector_factory(secure_broker.port, [f"re/{DEV}/#"], username="observer", password="obs-secret")
    # The broker time beacon, retained so the device gets it on subscribe.
    col.c.publish("re/sys/time", json.dumps({"t": int(time.time() * 1000)}), 0, retain=True)
    with HardwareServerThread() as hws:
        d = make_device_dir(tmp_path / "devices", _cfg(secure_broker.url, hws.addr, tmp_path), fresh=True)
        p = DeviceProcess(d, "micropython", heap=HEAP, lib=lib).start()
        try:
            col.wait_for(lambda t, pl, r, q: t == f"re/{DEV}/status" and pl == b"online", 20)
            info = col.wait_for(lambda t, pl, r, q: t == f"re/{DEV}/info", 10)
            assert info[2] or True  # retained flag is only set for late subscribers
            inf = json.loads(info[1])
            assert inf["role"] == "base" and inf["board"] == "sim" and inf["boot"] == "power_on" and inf["cfg"]
            hws.wait_connected(DEV)

            def ack(pred_ctr=None, timeout=15):
                return json.loads(col.wait_for(
                    lambda t, pl, r, q: t == f"re/{DEV}/ack" and (
                        pred_ctr is None or json.loads(pl).get("ctr") == pred_ctr), timeout)[1])

            now = time.time()
            col.c.publish(f"re/{DEV}/cmd/ping", _sign("ping", 10, now + 60), 1)
            a = ack()
            assert a["ok"] and a["code"] == "ok" and a["cmd"] == "ping" and a["ctr"] == 10, a
            # forged (wrong key), replayed (same counter), expired
            col.c.publish(f"re/{DEV}/cmd/ping", _sign("ping", 11, now + 60, key=b"\x01" * 32), 1)
            a = ack()
            assert not a["ok"] and a["code"] == "bad_mac", a
            col.c.publish(f"re/{DEV}/cmd/ping", _sign("ping", 10, now + 60), 1)
            a = ack()
            assert not a["ok"] and a["code"] == "replay", a
            col.c.publish(f"re/{DEV}/cmd/ping", _sign("ping", 12, now - 3600), 1)
            a = ack()
            assert not a["ok"] and a["code"] == "expired", a
            # a command for another device on our topic, and an unknown command
            col.c.publish(f"re/{DEV}/cmd/ping", _sign("ping", 13, now + 60, dev="other"), 1)
            assert ack()["code"] == "wrong_device"
            col.c.publish(f"re/{DEV}/cmd/fly", _sign("fly", 14, now + 60), 1)
            assert ack()["code"] == "unknown_command"
            col.c.publish(f"re/{DEV}/cmd/selftest", _sign("selftest", 15, now + 60), 1)
            a = ack(15)
            assert a["ok"] and a["detail"]["checks"]["mqtt"][0] and a["detail"]["checks"]["storage"][0], a

            def counted(t, pl, r, q):
                if t != f"re/{DEV}/tele":
                    return False
                c = json.loads(pl)["ctr"]
                return c.get("cmd_bad_mac") == 1 and c.get("cmd_replay") == 1 and c.get("cmd_expired") == 1
            tele = json.loads(col.wait_for(counted, 15)[1])
            assert tele["ctr"]["cmd_ok"] >= 2 and tele["ctr"]["mqtt_connects"] >= 1 and tele["up_s"] >= 0
            assert tele["seq"] > 0 and tele["ts"] > 0

            # simulated link loss: the client drops its session at once (the
            # broker sends the will) and waits for the link; once it is back the
            # device reconnects and what it logged meanwhile arrives
            hws.call(hws.server.device(DEV).set_net, False)
            col.wait_for(lambda t, pl, r, q: t == f"re/{DEV}/status" and pl == b"offline", 10)
            with pytest.raises(TimeoutError):  # no session while the link is down
                col.wait_for(lambda t, pl, r, q: t == f"re/{DEV}/status" and pl == b"online", 3)
            hws.call(hws.server.device(DEV).set_net, True)
            col.wait_for(lambda t, pl, r, q: t == f"re/{DEV}/status" and pl == b"online", 15)
            col.wait_for(lambda t, pl, r, q: t == f"re/{DEV}/log" and json.loads(pl)["msg"] == "network lost", 15)
            col.wait_for(lambda t, pl, r, q: t == f"re/{DEV}/log" and json.loads(pl)["msg"] == "network back", 15)
            ctr = json.loads(col.wait_for(lambda t, pl, r, q: t == f"re/{DEV}/tele" and json.loads(pl)["ctr"].get(
                "net_lost") == 1, 15)[1])["ctr"]
            assert ctr["mqtt_link_down"] == 1 and ctr["mqtt_disconnects"] == 1, ctr

            # kill -9: the broker publishes the will within 1.5 x keepalive
            p.kill()
            col.wait_for(lambda t, pl, r, q: t == f"re/{DEV}/status" and pl == b"offline", 1.5 * KEEPALIVE)
        finally:
            p.kill()
            out = p.console()
    late = collector_factory(secure_broker.port, [f"re/{DEV}/status"], username="observer", password="obs-secret")
    t, pl, retained, _ = late.wait_for(lambda t, pl, r, q: True, 5)
    assert pl == b"offline" and retained, out


def test_device_refuses_wrong_password(secure_broker, collector_factory, lib, tmp_path):
    col = collector_factory(secure_broker.port, [f"re/{DEV}/status"], username="observer", password="obs-secret")
    with HardwareServerThread() as hws:
        cfg = _cfg(secure_broker.url, hws.addr, tmp_path)
        cfg["broker"]["password"] = "wrong"
        d = make_device_dir(tmp_path / "devices", cfg, fresh=True)
        p = DeviceProcess(d, "micropython", heap=HEAP, lib=lib).start()
        try:
            hws.wait_connected(DEV, 20)
            with pytest.raises(TimeoutError):
                col.wait_for(lambda t, pl, r, q: pl == b"online", 3)
            assert p.running(), p.console()  # refused, retrying with backoff, not crashed
        finally:
            p.kill()


def test_bad_config_is_a_clear_error(tmp_path):
    d = tmp_path / "dev"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"id": "x-1", "board": "sim", "role": "lamp"}))
    r = fw.run("micropython", fw.MAIN, cwd=d, heap="256K", timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 2 and "config field 'role'" in out, out


@pytest.mark.parametrize("runtime", fw.RUNTIMES)
def test_hal_sim_round_trip(runtime, tmp_path):
    """Output, PWM readback, input edges into the edge queue, UART both ways
    (with an overlong line cut and counted), ADC and link state through the
    HardwareServer; the device process ends when the server goes away."""
    lines: queue.Queue = queue.Queue()
    with HardwareServerThread() as hws:
        hw = hws.device("probe")
        hws.call(hw.set_adc, "batt", 4321)
        hws.call(hw.on_uart, "ctl", lambda b: lines.put(b))
        probe = Path(__file__).parent / "firmware" / "hal_sim_probe.py"
        proc = fw.spawn(runtime, probe, [hws.addr], heap="256K", stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            def ask(cmd: str) -> bytes:
                hws.call(hw.uart_send, "ctl", cmd.encode() + b"\n")
                return lines.get(timeout=20)

            assert lines.get(timeout=20) == b"ready power_on\n"
            assert ask("out") == b"out 1\n"
            assert hws.call(hw.output, "lamp") == 1
            assert ask("pwm") == b"pwm 25\n"
            assert hws.call(hw.pwm, "fan") == 0.25 and hws.call(hw.pwm_freq, "fan") == 500
            assert ask("adc") == b"adc 4321\n"
            hws.call(hw.set_input, "btn", 1)
            hws.call(hw.set_input, "btn", 0)
            assert ask("edges") == b"edges 1 1 0\n"
            hws.call(hw.uart_send, "gnss", b"$GPRMC,1*00\r\n" + b"y" * 100 + b"\r\n")
            assert ask("gnss") == b"gnss $GPRMC,1*00 " + b"y" * 32 + b" 1\n"
            assert ask("pull") == b"pull 1\n"
            assert hws.call(hw.input_level, "sos") == 1
            hws.call(hw.set_net, False)
            assert ask("net") == b"net 0\n"
            # the simulator goes away: the board loses power, no orphan process
            hws.stop()
            assert proc.wait(20) == 76  # roadedge.hal.sim.EXIT_POWER_OFF
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_fleet_reboots_after_reset_command_and_watchdog(mosquitto, collector_factory, lib, tmp_path):
    """`reboot` acks, the process exits for a reset and the fleet boots it again
    (info says boot "soft"); a device whose health check fails stops feeding its
    watchdog, the hardware server fires it and the device comes back with boot
    "watchdog"."""
    import asyncio

    from sim.boot import boot_devices

    col = collector_factory(mosquitto.port, ["re/#"])
    col.c.publish("re/sys/time", json.dumps({"t": int(time.time() * 1000)}), 0, retain=True)
    base = {"board": "sim", "role": "base", "command_key": KEY.hex(), "pins": {},
            "broker": {"url": mosquitto.url, "keepalive": KEEPALIVE}}
    rebooter = dict(base, id="base-rb", broker=dict(base["broker"], user="base-rb"))
    # stall_ms below the heartbeat period: the loop never looks healthy, the watchdog starves
    starved = dict(base, id="base-wd", broker=dict(base["broker"], user="base-wd"),
                   watchdog_ms=1000, device={"stall_ms": 1})

    def info_boot(dev, boot):
        return lambda t, pl, r, q: t == f"re/{dev}/info" and json.loads(pl)["boot"] == boot

    async def scenario():
        fleet = await boot_devices([rebooter, starved], mosquitto.url, tmp_path / "fleet", heap=HEAP, lib=lib)
        try:
            # birth goes out right after CONNACK, before the queued info
            await asyncio.to_thread(col.wait_for, lambda t, pl, r, q: t == "re/base-rb/status" and pl == b"online", 30)
            await asyncio.to_thread(col.wait_for, info_boot("base-rb", "power_on"), 30)
            col.c.publish("re/base-rb/cmd/reboot", _sign("reboot", 1, time.time() + 60, dev="base-rb"), 1)
            a = await asyncio.to_thread(col.wait_for, lambda t, pl, r, q: t == "re/base-rb/ack", 20)
            assert json.loads(a[1])["ok"]
            await asyncio.to_thread(col.wait_for, info_boot("base-rb", "soft"), 30)
            assert fleet.devices["base-rb"].restarts == 1
            await asyncio.to_thread(col.wait_for, info_boot("base-wd", "watchdog"), 30)
            assert fleet.devices["base-wd"].hw.watchdog_fired >= 1
        finally:
            await fleet.stop()
            await fleet.hw.close()

    asyncio.run(scenario())


def test_in_process_device_over_direct_link(mosquitto, collector_factory, tmp_path):
    """The CPython simulator's path: the same device app in this process, its
    sim HAL bound straight to a DeviceHW (no socket), its own data folder."""
    import asyncio

    from roadedge.core import app
    from sim.hw import DirectLink, HardwareServer

    col = collector_factory(mosquitto.port, ["re/#"])
    col.c.publish("re/sys/time", json.dumps({"t": int(time.time() * 1000)}), 0, retain=True)
    cfg = {"id": "base-ip", "board": "sim", "role": "base", "command_key": KEY.hex(), "pins": {"lamp": 2},
           "broker": {"url": mosquitto.url, "user": "base-ip", "keepalive": KEEPALIVE}}

    async def scenario():
        srv = HardwareServer()  # not listening: only its DeviceHW registry is used
        hw = srv.device("base-ip")
        dev = await app.open_device(cfg, link=DirectLink(hw), data_dir=str(tmp_path / "base-ip" / "data"))
        dev.log.echo = False
        dev.on_command("lamp", lambda args: ("ok", dev.hal.output("lamp").value(args.get("on", 0))))
        task = asyncio.create_task(dev.run())
        try:
            await asyncio.to_thread(col.wait_for, lambda t, pl, r, q: t == "re/base-ip/status" and pl == b"online", 20)
            col.c.publish("re/base-ip/cmd/lamp", _sign("lamp", 1, time.time() + 60, dev="base-ip", args={"on": 1}), 1)
            a = await asyncio.to_thread(col.wait_for, lambda t, pl, r, q: t == "re/base-ip/ack", 20)
            assert json.loads(a[1])["ok"]
            assert hw.output("lamp") == 1
        finally:
            dev.stop()
            await asyncio.wait_for(task, 10)
        assert not hw.connected.is_set()
        assert (tmp_path / "base-ip" / "data" / "cmd_ctr.json").exists()

    asyncio.run(scenario())


@pytest.mark.parametrize("runtime", fw.RUNTIMES)
def test_clean_stop_says_offline_itself(runtime, mosquitto, collector_factory, lib, tmp_path):
    """Ctrl-C (unix port) / SIGTERM (CPython): the device publishes `offline`
    and disconnects; with a 60 s keepalive the broker's will could not explain
    an `offline` within the wait below."""
    col = collector_factory(mosquitto.port, [f"re/{DEV}/status"])
    with HardwareServerThread() as hws:
        cfg = _cfg(mosquitto.url, hws.addr, tmp_path)
        cfg["broker"]["keepalive"] = 60
        d = make_device_dir(tmp_path / "devices", cfg, fresh=True)
        p = DeviceProcess(d, runtime, heap=HEAP, lib=lib if runtime == "micropython" else None).start()
        try:
            col.wait_for(lambda t, pl, r, q: pl == b"online", 20)
            p.stop(timeout=20)
            col.wait_for(lambda t, pl, r, q: pl == b"offline", 20)
            assert p.returncode() in (0, 130), p.console()
        finally:
            p.kill()


def test_roadedge_sim_boot_cli(mosquitto, collector_factory, tmp_path):
    """`roadedge sim boot` boots a board config's device and stops it cleanly."""
    import os
    import sys

    cfg = dict(_cfg(mosquitto.url, "127.0.0.1:7000", tmp_path), id="base-cli")
    cfg["broker"] = dict(cfg["broker"], user="base-cli")
    path = tmp_path / "sim-base.json"
    path.write_text(json.dumps(cfg))
    col = collector_factory(mosquitto.port, ["re/base-cli/status"])
    proc = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "sim", "boot", "--broker", mosquitto.url,
                             "--workdir", str(tmp_path / "wd"), "--heap", HEAP, "--for", "60", str(path)],
                            cwd=fw.REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, COLUMNS="200"))
    try:
        col.wait_for(lambda t, pl, r, q: pl == b"online", 60)
        proc.send_signal(subprocess.signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    col.wait_for(lambda t, pl, r, q: pl == b"offline", 20)
    assert proc.returncode == 0, out
    assert "base-cli" in out and (tmp_path / "wd" / "base-cli" / "config.json").exists()


@pytest.mark.parametrize("name", ["sim-base", "sim-sign", "sim-beacon", "sim-tracker"])
def test_shipped_sim_board_configs_boot(name, mosquitto, collector_factory, lib, tmp_path):
    """Each shipped sim board config, with its secrets merged as flash does,
    boots its role under the unix port and comes online with its own id."""
    from sim.boot import load_config

    raw = json.loads((fw.REPO / "board_configs" / f"{name}.json").read_text())
    dev = raw["id"]
    sec = tmp_path / "secrets"
    sec.mkdir()
    (sec / "devices.json").write_text(json.dumps({dev: {"mqtt_password": "pw", "command_key": KEY.hex()}}))
    (sec / "site.json").write_text("{}")
    cfg = load_config(fw.REPO / "board_configs" / f"{name}.json", mosquitto.url, str(sec))
    col = collector_factory(mosquitto.port, [f"re/{dev}/#"])
    with HardwareServerThread() as hws:
        cfg["sim"] = {"hw": hws.addr}
        # Role devices need 172-184K of this build's heap (bench/heap): inside a board's 96wK, not by much.
        p = DeviceProcess(make_device_dir(tmp_path / "devices", cfg, fresh=True), "micropython",
                          heap=HEAP if raw["role"] == "base" else "256K", lib=lib).start()
        try:
            col.wait_for(lambda t, pl, r, q: t == f"re/{dev}/status" and pl == b"online", 30)
            info = json.loads(col.wait_for(lambda t, pl, r, q: t == f"re/{dev}/info", 15)[1])
            assert info["role"] == raw["role"] and info["boot"] == "power_on"
            tele = json.loads(col.wait_for(lambda t, pl, r, q: t == f"re/{dev}/tele", 15)[1])
            assert "role_start_failed" not in tele["ctr"] and "task_errors" not in tele["ctr"], (tele, p.console())
        finally:
            p.kill()


def test_offline_with_link_up_resets_and_keeps_persisted_state(collector_factory, lib, tmp_path):
    """Issue 18: a device that cannot reach the broker while its link is up is
    unhealthy after offline_reset_s, so the watchdog resets it; it comes back
    online (boot "watchdog") once the broker is back, and its persisted
    message sequence goes on from where it was (no record numbers reused)."""
    import asyncio

    from sim.boot import boot_devices

    broker = Mosquitto(tmp_path / "mq").start()
    dev = "base-or"
    cfg = {"board": "sim", "role": "base", "command_key": KEY.hex(), "pins": {}, "id": dev,
           "broker": {"url": broker.url, "user": dev, "keepalive": 5}, "watchdog_ms": 1000,
           "device": {"offline_reset_s": 3, "tele_s": 1}}

    def tele_seq(col):
        t, pl, _r, _q = col.wait_for(lambda t, pl, r, q: t == f"re/{dev}/tele", 30)
        return json.loads(pl)["seq"]

    async def scenario():
        col = collector_factory(broker.port, [f"re/{dev}/#"])
        col.c.publish("re/sys/time", json.dumps({"t": int(time.time() * 1000)}), 0, retain=True)
        fleet = await boot_devices([cfg], broker.url, tmp_path / "fleet", heap=HEAP, lib=lib)
        try:
            before = max([await asyncio.to_thread(tele_seq, col) for _ in range(3)])
            broker.stop()  # the link stays up: only the broker is gone
            deadline = time.monotonic() + 60
            while fleet.devices[dev].hw.watchdog_fired < 1:
                assert time.monotonic() < deadline, "never reset while offline with the link up"
                await asyncio.sleep(0.1)
            broker.start()
            col2 = collector_factory(broker.port, [f"re/{dev}/#"])
            col2.c.publish("re/sys/time", json.dumps({"t": int(time.time() * 1000)}), 0, retain=True)
            await asyncio.to_thread(col2.wait_for, lambda t, pl, r, q: t == f"re/{dev}/info"
                                    and json.loads(pl)["boot"] == "watchdog", 60)
            assert await asyncio.to_thread(tele_seq, col2) > before
        finally:
            await fleet.stop()
            await fleet.hw.close()
            broker.stop()

    asyncio.run(scenario())
