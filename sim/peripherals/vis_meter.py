"""Virtual forward-scatter visibility meter on a simulated board's UART.

Speaks the line protocol of docs/visibility_meter.md (written here on its own,
not borrowed from the firmware decoder, so a protocol slip on either side shows
up in tests): it answers `$VMPOL,<addr>*HH` with `$VMMOR,<addr>,<MOR m>,<flags
hex>*HH`, reading the visibility from a callable (a `sim.fog_field.FogField` at the
beacon's chainage, or a constant).

Fault injection, as a meter fails in the field: `set_flags()` (emitter,
receiver, power faults; window/heater warnings; warm-up), `silence()` (no
replies: cable cut, meter dead), `garbage()` (line noise), `corrupt_checksum()`.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

WINDOW, HEATER, EMITTER, RECEIVER, POWER, WARMUP = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
MOR_MAX = 20000


def _cs(body: bytes) -> int:
    c = 0
    for b in body:
        c ^= b
    return c


def sentence(body: str) -> bytes:
    raw = body.encode()
    return b"$%s*%02X\r\n" % (raw, _cs(raw))


class VisibilityMeter:
    def __init__(self, hw, visibility: Callable[[float], float] | float, addr: int = 1, uart: str = "vis_meter",
                 clock: Callable[[], float] = time.monotonic, reply_delay_s: float = 0.0) -> None:
        self.hw = hw
        self.addr = addr
        self.uart = uart
        self.visibility = visibility if callable(visibility) else (lambda t, v=float(visibility): v)
        self.clock = clock
        self.t0 = clock()
        self.reply_delay_s = reply_delay_s
        self.flags = 0
        self.silent = False
        self.bad_checksum = False
        self.polls = 0  # well-formed polls for this address
        self.replies = 0
        self.ignored = 0  # lines that were not a valid poll for us
        self.poll_event = asyncio.Event()
        self._buf = b""
        hw.on_uart(uart, self._rx)

    # ---- fault injection
    def set_flags(self, flags: int) -> None:
        self.flags = flags

    def silence(self, on: bool = True) -> None:
        self.silent = on

    def corrupt_checksum(self, on: bool = True) -> None:
        self.bad_checksum = on

    def garbage(self, data: bytes = b"\x00\xff#noise%%\r\n") -> None:
        self.hw.uart_send(self.uart, data)

    # ---- protocol
    def reading(self) -> bytes:
        t = self.clock() - self.t0
        if self.flags & (WARMUP | EMITTER | RECEIVER | POWER):
            mor = "/////"
        else:
            mor = "%d" % max(0, min(MOR_MAX, round(self.visibility(t))))
        line = sentence("VMMOR,%02d,%s,%02X" % (self.addr, mor, self.flags))
        if self.bad_checksum:
            line = line[:-4] + (b"00" if line[-4:-2] != b"00" else b"11") + b"\r\n"
        return line

    def _rx(self, data: bytes) -> None:
        self._buf = (self._buf + data)[-256:]
        while b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            self._line(line.strip())

    def _line(self, line: bytes) -> None:
        if len(line) < 4 or not line.startswith(b"$") or line[-3:-2] != b"*":
            self.ignored += 1
            return
        body = line[1:-3]
        try:
            ok = int(line[-2:], 16) == _cs(body)
        except ValueError:
            ok = False
        parts = body.split(b",")
        if not ok or len(parts) != 2 or parts[0] != b"VMPOL" or not parts[1].isdigit() or int(parts[1]) != self.addr:
            self.ignored += 1
            return
        self.polls += 1
        self.poll_event.set()
        if self.silent:
            return
        if self.reply_delay_s > 0:
            asyncio.get_event_loop().call_later(self.reply_delay_s, self._reply)
        else:
            self._reply()

    def _reply(self) -> None:
        self.replies += 1
        self.hw.uart_send(self.uart, self.reading())

    async def wait_polls(self, n: int, timeout: float = 10.0) -> None:
        """Wait until at least n polls in total have arrived."""
        async def _w():
            while self.polls < n:
                self.poll_event.clear()
                await self.poll_event.wait()
        await asyncio.wait_for(_w(), timeout)
