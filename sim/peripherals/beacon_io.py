"""The rest of a beacon post on a simulated board: vehicle detector (radar or
infrared: a pulse on the "detector" input, optionally a speed sentence on the
"radar" UART), ambient light sensor, battery voltage (through the divider) and
lamp current sense computed from the PWM duties the firmware sets -- with a
switch to burn out a lamp.
"""
from __future__ import annotations

import asyncio

BATT_FULL_SCALE_V = 16.5  # must match beacon.batt_full_scale_v
CURRENT_FULL_SCALE_MA = 500  # must match beacon.current_full_scale_ma


def _cs(body: bytes) -> int:
    c = 0
    for b in body:
        c ^= b
    return c


class BeaconIO:
    def __init__(self, hw, lamp_ma: float = 120.0, pulse_s: float = 0.05) -> None:
        self.hw = hw
        self.lamp_ma = {"lamp_yellow": lamp_ma, "lamp_red": lamp_ma}
        self.burnt: set[str] = set()
        self.pulse_s = pulse_s
        self.vehicles = 0
        self.changes: list[tuple[str, float]] = []  # (channel, duty) as the firmware set them
        self.pwm_event = asyncio.Event()
        hw.on_change(self._on_change)
        self.ambient(30000)
        self.battery(12.8)
        self._update_current()

    # ---- world -> device
    def ambient(self, u16: int) -> None:
        self.hw.set_adc("ambient", u16)

    def battery(self, volts: float) -> None:
        self.hw.set_adc("battery", round(volts / BATT_FULL_SCALE_V * 65535))

    def burn_out(self, channel: str, burnt: bool = True) -> None:
        (self.burnt.add if burnt else self.burnt.discard)(channel)
        self._update_current()

    async def vehicle(self, speed_kmh: float | None = None) -> None:
        """One vehicle passing the post: radar speed first (the radar sees it coming), then the
        detector pulse."""
        if speed_kmh is not None:
            body = b"RDSPD,%03d,A" % round(speed_kmh)
            self.hw.uart_send("radar", b"$%s*%02X\r\n" % (body, _cs(body)))
        self.vehicles += 1
        self.hw.set_input("detector", 1)
        await asyncio.sleep(self.pulse_s)
        self.hw.set_input("detector", 0)

    # ---- device -> world
    def current_ma(self) -> float:
        total = 0.0
        for ch, ma in self.lamp_ma.items():
            if ch not in self.burnt:
                total += (self.hw.pwm(ch) or 0.0) * ma
        return total

    def _update_current(self) -> None:
        self.hw.set_adc("lamp_current", round(min(1.0, self.current_ma() / CURRENT_FULL_SCALE_MA) * 65535))

    def _on_change(self, kind: str, name: str, value) -> None:
        if kind == "pwm":
            self.changes.append((name, value))
            del self.changes[:-1000]
            self._update_current()
            self.pwm_event.set()
        # No ADC update on "boot": the welcome already carries the ADC values.

    def duty(self, channel: str) -> float:
        return self.hw.pwm(channel) or 0.0
