"""A road section on the bench: sign firmware processes on the sim hardware server, a real
Mosquitto, the controller process, and MQTT watchers. Shared by the sign end-to-end tests and
bench/vsl (one way to stand the section up)."""
from __future__ import annotations

import asyncio
import json
import os
import queue
import secrets as pysecrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from host_tools import fw
from sim.hw.server import HardwareServer
from sim.peripherals.sign_io import SignIO
from support.waiting import first_from

from roadedge.core.auth import sign_command

REPO = fw.REPO

OPERATOR_KEY = "c3" * 32  # the console's and the controller's shared operator-action key

class HwThread:
    """The HardwareServer on its own event loop thread, so tests can stay synchronous."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.t = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.t.start()
        self.server = self.call(HardwareServer().start)

    def call(self, fn, *a):
        """Run fn(*a) on the loop (awaiting it if it is a coroutine function) and return the result."""
        async def go():
            r = fn(*a)
            if asyncio.iscoroutine(r):
                r = await r
            return r

        return asyncio.run_coroutine_threadsafe(go(), self.loop).result(30)

    def close(self) -> None:
        try:
            self.call(self.server.close)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.t.join(10)


class Watch:
    """Every message on some topics, latest retained value per topic, waits with deadlines."""

    def __init__(self, port: int, topics: list[str]) -> None:
        self.q: queue.Queue = queue.Queue()
        self.last: dict[str, object] = {}
        self.cond = threading.Condition()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"watch-{os.getpid()}-{id(self)}")
        ready = threading.Event()
        self.c.on_connect = lambda c, u, f, rc, p=None: [c.subscribe(t, 1) for t in topics]
        self.c.on_subscribe = lambda c, u, mid, rcs, p=None: ready.set()
        self.c.on_message = self._msg
        self.c.connect("127.0.0.1", port, 30)
        self.c.loop_start()
        if not ready.wait(10):
            raise TimeoutError("watcher did not subscribe")

    def _msg(self, _c, _u, m) -> None:
        try:
            obj = json.loads(m.payload.decode())
        except (UnicodeDecodeError, json.JSONDecodeError):
            obj = m.payload
        with self.cond:
            self.last[m.topic] = obj
            self.q.put((m.topic, obj, time.monotonic()))
            self.cond.notify_all()

    def wait_for(self, topic: str, pred, timeout: float = 30.0):
        """First message on topic (from now, queued ones included) with pred(obj) true."""
        try:
            return first_from(self.q, lambda m: m[0] == topic and pred(m[1]), timeout)[1]
        except TimeoutError:
            raise TimeoutError(f"no message on {topic} matching; last: {self.last.get(topic)!r}") from None

    def wait_state(self, topic: str, pred, timeout: float = 30.0):
        """Until the latest value on topic satisfies pred (it may already)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                cur = self.last.get(topic)
                if cur is not None and pred(cur):
                    return cur
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{topic} never matched; last: {cur!r}")
                self.cond.wait(left)

    def drain(self) -> None:
        while not self.q.empty():
            self.q.get_nowait()

    def publish(self, topic: str, payload, qos: int = 1, retain: bool = False) -> None:
        if not isinstance(payload, (bytes, str)):
            payload = json.dumps(payload)
        self.c.publish(topic, payload, qos, retain).wait_for_publish(10)

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


class SignProc:
    """One sign's firmware process (its device folder persists across restarts, like flash)."""

    def __init__(self, rig: Rig, dev_id: str, sign_cfg: dict | None = None, meter: bool = False,
                 runtime: str = "micropython", heap: str | None = None, lib: Path | None = None) -> None:
        self.rig = rig
        self.id = dev_id
        self.key = pysecrets.token_hex(32)
        self.runtime = runtime
        # from source the unix port compiles every module at import (RAM a board never spends:
        # it runs .mpy); with lib = a compiled tree, a small board's heap can be set
        self.heap = heap or ("256K" if lib is None else "96K")
        self.lib = lib
        self.dir = rig.tmp / dev_id
        self.dir.mkdir(parents=True, exist_ok=True)
        cfg = {"id": dev_id, "board": "sim", "role": "sign", "fw_version": "test",
               "broker": {"url": f"mqtt://127.0.0.1:{rig.port}", "keepalive": 30},
               "command_key": self.key, "sim": {"hw": rig.hw.server.addr}, "watchdog_ms": 0,
               "device": {"tele_s": 5},
               "pins": {"maint_switch": 2, "temp": 26, "ambient": 27},
               "sign": dict({"selftest_ms": 0, "tick_ms": 100, "sensor_s": 1}, **(sign_cfg or {}))}
        if meter:
            cfg["uarts"] = {"vis_meter": {"id": 1, "baud": 9600, "tx": 4, "rx": 5}}
            cfg["sign"]["meter"] = {"poll_s": 1}
        (self.dir / "config.json").write_text(json.dumps(cfg))
        self.hw = rig.hw.call(rig.hw.server.device, dev_id)
        seven = cfg["sign"].get("display") == "7seg"
        if seven:
            cfg["pins"]["legend"] = 15  # the FOG lamp beside the digits
            (self.dir / "config.json").write_text(json.dumps(cfg))
        self.io = SignIO(self.hw, display="7seg", lamp="legend") if seven else SignIO(self.hw)
        rig.hw.call(self.io.set_temperature, 25.0)
        rig.hw.call(self.io.set_ambient, 0.5)
        self.p: subprocess.Popen | None = None
        self.ctr = 0
        self.face_cond = threading.Condition()
        self.face_ver = 0
        rig.hw.call(self.io.on_change, self._face_changed)

    def _face_changed(self, _io) -> None:
        with self.face_cond:
            self.face_ver += 1
            self.face_cond.notify_all()

    def face(self) -> tuple:
        """(reading, check) of what the LEDs show, from the decoded SPI traffic."""
        return self.rig.hw.call(lambda: (self.io.reading(), self.io.check()))

    def wait_io(self, pred, timeout: float = 15.0, what: str = "condition"):
        """Until pred(io) holds (evaluated on the hardware loop); returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            with self.face_cond:
                seen = self.face_ver
            v = self.rig.hw.call(pred, self.io)  # never under the lock: the hardware loop takes it to signal
            if v:
                return v
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.id}: {what} not reached; face shows {self.face()}")
            with self.face_cond:
                if self.face_ver == seen:
                    self.face_cond.wait(min(left, 0.5))

    def wait_face(self, reading, check: int | None = None, timeout: float = 15.0) -> tuple:
        """Until the face shows `reading` (and has check value `check`): the SPI frames and the MQTT
        state travel separately, so either may arrive first."""
        def shows(io):
            f = (io.reading(), io.check())
            return f if f[0] == reading and (check is None or f[1] == check) else None

        return self.wait_io(shows, timeout, f"face {reading} / {check}")

    def start(self) -> SignProc:
        log = open(self.dir / "console.log", "ab")
        main = fw.MAIN if self.lib is None else self.lib.parent / "main.py"
        self.p = fw.spawn(self.runtime, main, cwd=self.dir, stdout=log, stderr=subprocess.STDOUT,
                          heap=self.heap, lib=self.lib)
        return self

    def kill(self) -> None:
        """Pull the power: no goodbye."""
        if self.p and self.p.poll() is None:
            self.p.kill()
            self.p.wait(10)

    def wait_exit(self, timeout: float = 30) -> int:
        assert self.p is not None
        return self.p.wait(timeout)

    def console(self) -> str:
        try:
            return (self.dir / "console.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def signed(self, cmd: str, args: dict, ctr: int | None = None, exp: int | None = None, key: str | None = None,
               dev: str | None = None) -> bytes:
        if ctr is None:
            self.ctr = max(self.ctr + 1, int(time.time() * 1000))
            ctr = self.ctr
        return sign_command(bytes.fromhex(key or self.key), dev or self.id, cmd, ctr,
                            int(time.time()) + 60 if exp is None else exp, args)

    def alive(self, unix_s: float) -> None:
        """Pretend the sign was last alive at unix_s (the persisted power-loss marker)."""
        from roadedge.core import state

        (self.dir / "data").mkdir(exist_ok=True)
        state.write_json(str(self.dir / "data" / "sign.json"), {"alive": unix_s})


class Rig:
    def __init__(self, tmp: Path, port: int) -> None:
        self.tmp = tmp
        self.port = port
        self.hw = HwThread()
        self.signs: dict[str, SignProc] = {}
        self.ctl: subprocess.Popen | None = None
        self.watch = Watch(port, ["re/#"])
        self._time_stop = threading.Event()
        self._time_t: threading.Thread | None = None

    def sign(self, dev_id: str, **kw) -> SignProc:
        s = self.signs[dev_id] = SignProc(self, dev_id, **kw)
        return s

    def time_beacon(self, period: float = 1.0) -> None:
        """The broker time beacon the controller normally keeps (for runs without a controller)."""
        def loop():
            while not self._time_stop.is_set():
                self.watch.publish("re/sys/time", {"t": int(time.time() * 1000)}, qos=0)
                self._time_stop.wait(period)

        self._time_t = threading.Thread(target=loop, daemon=True)
        self._time_t.start()

    def heartbeats(self, sign: SignProc, period: float = 0.5) -> threading.Event:
        """Play the controller's heartbeat to one sign until the returned event is set."""
        stop = threading.Event()

        def loop():
            while not stop.is_set() and not self._time_stop.is_set():
                self.watch.publish(f"re/{sign.id}/cmd/heartbeat", sign.signed("heartbeat", {}), qos=0)
                stop.wait(period)

        threading.Thread(target=loop, daemon=True).start()
        return stop

    def secrets(self) -> Path:
        d = self.tmp / "secrets"
        d.mkdir(exist_ok=True)
        (d / "devices.json").write_text(json.dumps(
            {s.id: {"command_key": s.key, "mqtt_password": "x"} for s in self.signs.values()}))
        # the key the console signs operator actions with (see op())
        (d / "services.json").write_text(json.dumps({"controller": {"operator_key": OPERATOR_KEY}}))
        return d

    def op(self, zone: str, **action) -> None:
        """An operator action as the console sends it: signed with the operator key."""
        from host_tools.keys import Keyring

        payload = Keyring({}, operator_key=OPERATOR_KEY).operator_signer(zone).sign("op", action, 30)
        self.watch.c.publish(f"re/ctl/{zone}/op", payload, qos=1)

    def zone_file(self, zone: dict) -> Path:
        f = self.tmp / "zone.json"
        f.write_text(json.dumps(zone))
        return f

    def start_controller(self, zone: dict, mode: str | None = "automatic") -> subprocess.Popen:
        """mode None: the controller's own choice (the mode a supervisor last set, else automatic)."""
        env = dict(os.environ, ROADEDGE_SECRETS=str(self.secrets()))
        log = open(self.tmp / "controller.log", "ab")
        self.ctl = subprocess.Popen(
            [sys.executable, "-m", "host_tools.cli", "controller", "--zone", str(self.zone_file(zone)),
             "--db", str(self.tmp / "audit.sqlite"), *(["--mode", mode] if mode else []), "--quiet",
             "--broker", f"mqtt://127.0.0.1:{self.port}"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        return self.ctl

    def stop_controller(self) -> None:
        if self.ctl and self.ctl.poll() is None:
            self.ctl.terminate()
            try:
                self.ctl.wait(15)
            except subprocess.TimeoutExpired:
                self.ctl.kill()
                self.ctl.wait(5)

    def close(self) -> None:
        self._time_stop.set()
        self.stop_controller()
        for s in self.signs.values():
            s.kill()
        self.watch.close()
        self.hw.close()
