"""One simulated board as the host sees it: what the firmware drives
(outputs, PWM, UART TX, SPI, watchdog) and what the world feeds in (inputs,
ADC, UART RX, link state).

A DeviceHW outlives the firmware process: peripherals attach before the device
boots and keep their state across reboots, as a real board's wiring does. The
firmware reaches it through a *link*: a TCP connection of the HardwareServer, or
a direct in-process binding (`DirectLink`) for the CPython simulator.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from collections.abc import Callable

log = logging.getLogger(__name__)

UART_CHUNK = 256  # bytes per uart message to the device (its line limit is 2 KiB)

Send = Callable[[dict], None]


class DeviceHW:
    def __init__(self, dev_id: str) -> None:
        self.id = dev_id
        self.connected = asyncio.Event()
        self.inputs: dict[str, int] = {}
        self.pulls: dict[str, int] = {}  # inputs the firmware pulled up: 1 while undriven
        self.adcs: dict[str, int] = {}
        self.outputs: dict[str, int] = {}
        self.pwms: dict[str, tuple[int, float]] = {}  # name -> (freq, duty)
        self.i2c_mem: dict[str, bytes] = {}
        self.net_up = True
        self.reset_cause = "power_on"
        self.boots = 0
        self.resets_requested = 0
        self.watchdog_ms: int | None = None
        self.watchdog_fired = 0
        self.last_feed = 0.0
        self.rtc: float | None = None
        self.pins: list[str] = []
        self.uarts: list[str] = []
        self._send: Send | None = None
        self._uart_cbs: dict[str, list[Callable[[bytes], Any]]] = {}
        self._spi_cbs: dict[str, list[Callable[[bytes], Any]]] = {}
        self._i2c_cbs: dict[str, list[Callable[[int, int | None, bytes], Any]]] = {}
        self._change_cbs: list[Callable[[str, str, Any], Any]] = []
        self._watchdog_cbs: list[Callable[[DeviceHW], Any]] = []
        self.disconnected = asyncio.Event()
        self.disconnected.set()

    # ---- world -> device
    def set_input(self, name: str, v: int | bool) -> None:
        v = 1 if v else 0
        self.inputs[name] = v
        self._to_device({"op": "in", "name": name, "v": v})

    def set_adc(self, name: str, u16: int) -> None:
        u16 = max(0, min(0xFFFF, int(u16)))
        self.adcs[name] = u16
        self._to_device({"op": "adc", "name": name, "v": u16})

    def uart_send(self, name: str, data: bytes) -> None:
        """Bytes into the device's UART RX (lost while the device is off, as on a wire)."""
        for i in range(0, len(data), UART_CHUNK):
            self._to_device({"op": "uart", "name": name, "data": data[i:i + UART_CHUNK].hex()})

    def set_i2c(self, bus: str, addr: int, reg: int, data: bytes) -> None:
        """Register contents a device on the bus returns to readfrom_mem."""
        key = f"{bus}/{addr}/{reg}"
        self.i2c_mem[key] = bytes(data)
        self._to_device({"op": "i2c_mem", "name": bus, "addr": addr, "reg": reg, "data": data.hex()})

    def set_net(self, up: bool) -> None:
        """Simulated radio link: the device sees hal.net_ok() follow this."""
        self.net_up = bool(up)
        self._to_device({"op": "net", "up": self.net_up})

    def input_level(self, name: str) -> int:
        """What the firmware reads on input `name`: the driven value, else its pull."""
        return self.inputs.get(name, self.pulls.get(name, 0))

    # ---- device -> world: last values and callbacks
    def output(self, name: str) -> int | None:
        return self.outputs.get(name)

    def pwm(self, name: str) -> float | None:
        """Last PWM duty (0.0..1.0) the device set on `name`, or None."""
        p = self.pwms.get(name)
        return None if p is None else p[1]

    def pwm_freq(self, name: str) -> int | None:
        p = self.pwms.get(name)
        return None if p is None else p[0]

    def on_uart(self, name: str, cb: Callable[[bytes], Any]) -> None:
        self._uart_cbs.setdefault(name, []).append(cb)

    def on_spi(self, name: str, cb: Callable[[bytes], Any]) -> None:
        self._spi_cbs.setdefault(name, []).append(cb)

    def on_i2c(self, bus: str, cb: Callable[[int, int | None, bytes], Any]) -> None:
        self._i2c_cbs.setdefault(bus, []).append(cb)

    def on_change(self, cb: Callable[[str, str, Any], Any]) -> None:
        """cb(kind, name, value) for kind in out/pwm (value: 0/1, duty) and
        boot/lost/reset/watchdog (name: device id)."""
        self._change_cbs.append(cb)

    def on_watchdog(self, cb: Callable[[DeviceHW], Any]) -> None:
        """cb(hw) when the device stopped feeding its watchdog in time."""
        self._watchdog_cbs.append(cb)

    # ---- link plumbing
    def welcome(self) -> dict:
        return {"op": "welcome", "reset_cause": self.reset_cause, "net": self.net_up,
                "in": dict(self.inputs), "adc": dict(self.adcs),
                "i2c": {k: v.hex() for k, v in self.i2c_mem.items()}}

    def attach(self, hello: dict, send: Send) -> dict:
        """A firmware instance said hello: bind its sender, return the welcome."""
        self.pins = list(hello.get("pins") or [])
        self.uarts = list(hello.get("uarts") or [])
        w = self.welcome()
        self._send = send
        self.boots += 1
        self.watchdog_ms = None
        self.reset_cause = "power_on"  # the next boot is a power-on unless a reset says otherwise
        self.connected.set()
        self.disconnected.clear()
        return w

    def booted(self) -> None:
        """Tell peripherals the firmware is up. Transports call this once the
        welcome is on its way, so nothing a peripheral sends on "boot" can
        overtake the welcome (the device would take it for the welcome)."""
        self._emit("boot", self.id, self.boots)

    def detach(self) -> None:
        self._send = None
        self.watchdog_ms = None
        self.connected.clear()
        self.disconnected.set()
        self._emit("lost", self.id, None)

    def _to_device(self, msg: dict) -> None:
        if self._send is not None:
            self._send(msg)

    def _emit(self, kind: str, name: str, value: Any) -> None:
        for cb in list(self._change_cbs):
            try:
                cb(kind, name, value)
            except Exception:  # a peripheral's bug must not break the link
                log.exception("on_change callback failed for %s", self.id)

    def _call(self, cbs, *a) -> None:
        for cb in list(cbs):
            try:
                cb(*a)
            except Exception:
                log.exception("callback failed for %s", self.id)

    def from_device(self, m: dict) -> None:
        op = m.get("op")
        name = m.get("name", "")
        if op == "out":
            v = 1 if m.get("v") else 0
            self.outputs[name] = v
            self._emit("out", name, v)
        elif op == "pwm":
            d = float(m.get("duty", 0.0))
            self.pwms[name] = (int(m.get("freq", 0)), d)
            self._emit("pwm", name, d)
        elif op == "uart":
            self._call(self._uart_cbs.get(name, ()), bytes.fromhex(m.get("data", "")))
        elif op == "spi":
            self._call(self._spi_cbs.get(name, ()), bytes.fromhex(m.get("data", "")))
        elif op == "i2c":
            self._call(self._i2c_cbs.get(name, ()), int(m.get("addr", 0)), m.get("reg"),
                       bytes.fromhex(m.get("data", "")))
        elif op == "pull":
            self.pulls[name] = 1 if m.get("up") else 0
        elif op == "wdt":
            self.watchdog_ms = int(m.get("ms", 0)) or None
            self.last_feed = time.monotonic()
        elif op == "feed":
            self.last_feed = time.monotonic()
        elif op == "rtc":
            self.rtc = m.get("t")
        elif op == "reset":
            self.resets_requested += 1
            self.reset_cause = "soft"
            self._emit("reset", self.id, None)

    def check_watchdog(self, now: float | None = None) -> bool:
        """True (once) when an armed watchdog went unfed past its timeout."""
        if self.watchdog_ms is None or self._send is None:
            return False
        now = time.monotonic() if now is None else now
        if (now - self.last_feed) * 1000 <= self.watchdog_ms:
            return False
        self.watchdog_ms = None
        self.watchdog_fired += 1
        self.reset_cause = "watchdog"
        self._emit("watchdog", self.id, None)
        self._call(self._watchdog_cbs, self)
        return True


class DirectLink:
    """In-process transport for the CPython simulator: a firmware SimHAL
    (roadedge.hal.sim) bound straight to a DeviceHW, no socket.

    `roadedge.hal.open(cfg, link=DirectLink(hw))`; messages are the same
    dicts the TCP link carries, delivered on the event loop's next turn so
    neither side re-enters the other.
    """

    def __init__(self, hw: DeviceHW) -> None:
        self.hw = hw
        self._receive: Callable[[dict], None] | None = None
        self._pending: list[dict] = []
        self.closed = False

    async def hello(self, msg: dict) -> dict:
        welcome = self.hw.attach(msg, self._deliver)
        asyncio.get_event_loop().call_soon(self.hw.booted)  # after the caller has the welcome
        return welcome

    def _deliver(self, msg: dict) -> None:
        if self._receive is None:
            self._pending.append(msg)
        else:
            asyncio.get_event_loop().call_soon(self._receive, msg)

    def send(self, msg: dict) -> None:
        if not self.closed:
            self.hw.from_device(msg)

    def start(self, receive: Callable[[dict], None]) -> None:
        self._receive = receive
        pending, self._pending = self._pending, []
        for m in pending:
            receive(m)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.hw.detach()
