"""The rest of a patrol motorcycle's tracker on a simulated board: the SOS and
accept buttons (active low, pulled up, as wired on the handlebar), the
backup battery on the ADC (through the /3 divider, like the Pico W's VSYS
sense), the ignition input, and the LED/buzzer the firmware drives.
"""
from __future__ import annotations

import asyncio

VREF = 3.3  # must match tracker.vref
DIVIDER = 3.0  # must match tracker.divider


class TrackerIO:
    def __init__(self, hw, battery_v: float = 4.05, ignition: bool = True) -> None:
        self.hw = hw
        self.changes: list[tuple[str, float]] = []  # (output, value) as the firmware set them
        hw.on_change(self._on_change)
        hw.set_input("sos_button", 1)
        hw.set_input("accept_button", 1)
        self.battery(battery_v)
        self.ignition(ignition)

    # ---- world -> device
    def battery(self, volts: float) -> None:
        self.hw.set_adc("battery", max(0, min(65535, round(volts / DIVIDER / VREF * 65535))))

    def ignition(self, on: bool) -> None:
        self.hw.set_input("ignition", 1 if on else 0)

    async def press(self, button: str, seconds: float) -> None:
        """Hold a button (sos_button / accept_button) for `seconds`, with a
        little contact bounce at the start as real switches have."""
        for lv in (0, 1, 0, 1, 0):
            self.hw.set_input(button, lv)
            await asyncio.sleep(0.002)
        await asyncio.sleep(seconds)
        self.hw.set_input(button, 1)

    async def sos(self, seconds: float = 2.5) -> None:
        await self.press("sos_button", seconds)

    async def accept(self) -> None:
        await self.press("accept_button", 0.2)

    # ---- device -> world
    def _on_change(self, kind: str, name: str, value) -> None:
        if name in ("led", "buzzer"):
            self.changes.append((name, value))

    def output(self, name: str):
        return self.hw.output(name)
