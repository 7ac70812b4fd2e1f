"""A simulated sign's face and sensors on a `DeviceHW`.

Display readback: decodes the MAX7219 traffic on the "display" SPI bus (one chip-select frame =
one (register, data) pair per chip, the farthest chip's pair first) into each chip's registers,
so the host sees what the LEDs show, computes the same check value the sign reports, and reads
the limit and legend back by matching the pixels against the firmware's own renderer.
Sensors: temperature (LM35 on the "temp" ADC), ambient light, the maintenance switch.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable


from roadedge.sign import display_max7219 as mx  # noqa: E402
from roadedge.sign.render import SEG, Matrix, crc16  # noqa: E402

LEGENDS = ("", "FOG", "\u96fe")


class SignIO:
    def __init__(self, hw, display: str = "matrix", cols: int = 4, rows: int = 3, digits: int = 3,
                 limits=range(20, 130, 10), legends=LEGENDS, lamp: str | None = None) -> None:
        self.hw = hw
        self.kind = display
        self.cols, self.rows, self.digits = cols, rows, digits
        self.n = cols * rows if display == "matrix" else 1
        self.regs = [bytearray(16) for _ in range(self.n)]  # per chip, by register number
        self.lamp = lamp
        self.frames = 0
        self.bad_frames = 0
        self.lamp_tests = 0  # times every LED was lit by the sign's lamp test
        self.changed = asyncio.Event()
        self._cbs: list[Callable[[SignIO], None]] = []
        self._catalogue: dict[bytes, tuple[int | None, str]] = {}
        if display == "matrix":
            m = Matrix(cols * 8, rows * 8)
            for leg in legends:
                for lim in [None, *limits]:
                    shown = m.render(lim, leg)
                    self._catalogue.setdefault(self._chip_bytes(m), shown)
        hw.on_spi("display", self._spi)

    # ---- display readback
    def _chip_bytes(self, m: Matrix) -> bytes:
        cols = self.cols
        out = bytearray(self.n * 8)
        for k in range(self.n):
            for r in range(8):
                out[k * 8 + r] = m.buf[((k // cols) * 8 + r) * cols + (k % cols)]
        return bytes(out)

    def _spi(self, data: bytes) -> None:
        if len(data) != 2 * self.n:
            self.bad_frames += 1
            return
        self.frames += 1
        was_test = self.lamp_test()
        for j in range(self.n):
            reg, val = data[2 * j], data[2 * j + 1]
            if reg < 16:
                self.regs[self.n - 1 - j][reg] = val
        if self.lamp_test() and not was_test:
            self.lamp_tests += 1
        self.changed.set()
        for cb in self._cbs:
            cb(self)

    def on_change(self, cb: Callable[[SignIO], None]) -> None:
        self._cbs.append(cb)

    def lit(self) -> bool:
        return all(r[mx.SHUTDOWN] == 1 for r in self.regs)

    def lamp_test(self) -> bool:
        return any(r[mx.TEST] & 1 for r in self.regs)

    def intensity(self) -> int:
        return self.regs[0][mx.INTENSITY]

    def displayed_bytes(self) -> bytes:
        if self.kind == "matrix":
            b = bytes(self.regs[k][mx.DIGIT0 + r] for k in range(self.n) for r in range(8))
        else:
            lamp = self.hw.output(self.lamp) if self.lamp else 0
            b = bytes(self.regs[0][mx.DIGIT0 + i] for i in range(self.digits)) + bytes([lamp or 0])
        return b if self.lit() else bytes(len(b))

    def check(self) -> int:
        """The check value of what the LEDs show, computed as the sign does."""
        return crc16(self.displayed_bytes())

    def reading(self) -> tuple[int | None, str] | None:
        """(limit or None, legend) a driver would read off the face; None if unrecognisable."""
        b = self.displayed_bytes()
        if self.kind == "matrix":
            return self._catalogue.get(b)
        rev = {v: k for k, v in SEG.items()}
        s = "".join(rev.get(x, "?") for x in b[:-1]).strip()
        if "?" in s:
            return None
        return (int(s) if s else None, "FOG" if b[-1] else "")

    def pixels(self) -> list[str]:
        """The face as text rows ('#' lit) for logs and failure messages."""
        if self.kind != "matrix":
            return [repr(self.reading())]
        w = self.cols * 8
        rows = []
        for y in range(self.rows * 8):
            line = []
            for x in range(w):
                k = (y // 8) * self.cols + x // 8
                v = self.regs[k][mx.DIGIT0 + y % 8] if self.lit() else 0
                line.append("#" if v & (0x80 >> (x % 8)) else ".")
            rows.append("".join(line))
        return rows

    # ---- sensors and switch
    def set_temperature(self, c: float, mv_per_c: float = 10.0, offset_mv: float = 0.0) -> None:
        mv = c * mv_per_c + offset_mv
        self.hw.set_adc("temp", round(mv * 65535 / 3300))

    def set_ambient(self, fraction: float) -> None:
        self.hw.set_adc("ambient", round(max(0.0, min(1.0, fraction)) * 65535))

    def set_maintenance(self, on: bool) -> None:
        self.hw.set_input("maint_switch", 1 if on else 0)
