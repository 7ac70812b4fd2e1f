"""One beacon in-process: the real platform Device (commands, auth, counters),
the real sim HAL bound to a DeviceHW by DirectLink, the virtual meter and the
post's I/O. Publishes are captured instead of going to a broker."""
from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from roadedge.core import auth, state
from roadedge.core.app import Device
from roadedge.core.clock import Clock
from roadedge.core.log import Log
from roadedge import hal as hal_mod
from roadedge.beacon import app as beacon_app
from sim.hw import DeviceHW, DirectLink
from sim.peripherals.beacon_io import BeaconIO
from sim.peripherals.vis_meter import VisibilityMeter

KEY = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
PINS = {"detector": 2, "lamp_yellow": 3, "lamp_red": 4, "ambient": 26, "lamp_current": 27, "battery": 28}
UARTS = {"vis_meter": {"id": 1, "baud": 9600, "tx": 4, "rx": 5}, "radar": {"id": 0, "baud": 9600, "tx": 0, "rx": 1}}


def beacon_cfg(dev_id="fb-k1-000", beacon=None, hw_addr=None):
    cfg = {"id": dev_id, "board": "sim", "role": "beacon", "broker": {"url": "mqtt://127.0.0.1:1883"},
           "command_key": KEY, "pins": dict(PINS), "uarts": dict(UARTS),
           "beacon": beacon if beacon is not None else {"meter": {"poll_s": 0.2, "reply_ms": 80}}}
    if hw_addr:
        cfg["sim"] = {"hw": hw_addr}
    return cfg


class FakeMQTT:
    """Stands in for the MQTT session: records what the device publishes."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, object, int, bool]] = []
        self.event = asyncio.Event()
        self.stats: dict = {}

    def publish(self, topic, payload, qos=0, retain=False):
        self.sent.append((topic, json.loads(payload) if payload[:1] in ("{", "[") else payload, qos, retain))
        self.event.set()
        return True

    def is_connected(self):
        return True

    def queued(self):
        return 0

    def of(self, kind):
        return [p for t, p, _q, _r in self.sent if t.endswith("/" + kind)]

    def mark(self):
        return len(self.sent)

    async def wait(self, pred, timeout=10.0, since=0):
        """The first message (topic, payload, qos, retain) from index `since` on with pred true."""
        async def _w():
            i = since
            while True:
                while i < len(self.sent):
                    m = self.sent[i]
                    i += 1
                    if pred(*m):
                        return m
                self.event.clear()
                await self.event.wait()
        return await asyncio.wait_for(_w(), timeout)


class Bench:
    def __init__(self, tmp: Path, beacon=None, visibility=2000.0, unix_ms=-1) -> None:
        self.cfg = beacon_cfg(beacon=beacon)
        self.tmp = tmp
        self.visibility = visibility
        self.unix_ms = unix_ms

    async def __aenter__(self):
        data = str(self.tmp / "data")
        os.makedirs(data, exist_ok=True)
        self.hw = DeviceHW(self.cfg["id"])
        self.meter = VisibilityMeter(self.hw, lambda t: self.visibility)
        self.io = BeaconIO(self.hw)
        self.hal = hal_mod.open(self.cfg, link=DirectLink(self.hw))
        await self.hal.start()
        clock = Clock()
        if self.unix_ms is not None:  # -1: the host's time, as if NTP had synced
            import time

            clock.set(int(time.time() * 1000) if self.unix_ms == -1 else self.unix_ms, "ntp")
        self.dev = Device(self.cfg, self.hal, clock, Log(16, echo=False, clock=clock), data)
        self.dev.auth = auth.CommandAuth(KEY, self.cfg["id"], data + "/cmd_ctr.json")
        self.mqtt = self.dev.mqtt = FakeMQTT()
        beacon_app.start(self.dev)
        self.app = self.dev.beacon
        return self

    async def __aexit__(self, *exc):
        for t in self.dev._tasks:
            t.cancel()
        await asyncio.gather(*self.dev._tasks, return_exceptions=True)
        self.hal.close()

    ctr = 0

    def signed(self, cmd, args, ctr=None, exp=None, key=KEY):
        import time

        if ctr is None:
            Bench.ctr += 1
            ctr = Bench.ctr
        return auth.sign_command(auth.key_from_hex(key), self.cfg["id"], cmd, ctr,
                                 exp if exp is not None else int(time.time()) + 60, args)

    async def command(self, cmd, payload):
        n = len(self.mqtt.of("ack"))
        await self.dev._run_command(cmd, payload)
        acks = self.mqtt.of("ack")
        assert len(acks) == n + 1
        return acks[-1]

    def state(self):
        return self.mqtt.of("state")[-1]


_ = state
