"""Display readback in the simulator: decode the MAX7219 wire traffic the sign's drivers send."""
from __future__ import annotations

from roadedge.sign.display_7seg import SevenSegDisplay
from roadedge.sign.display_max7219 import MatrixDisplay
from sim.hw.board import DeviceHW
from sim.peripherals.sign_io import SignIO


class WireSPI:
    """What the sim HAL port does with hal.spi(name).write(): an 'spi' message to the DeviceHW."""

    def __init__(self, hw: DeviceHW) -> None:
        self.hw = hw

    def write(self, b) -> None:
        self.hw.from_device({"op": "spi", "name": "display", "data": bytes(b).hex()})


class Lamp:
    def __init__(self, hw: DeviceHW) -> None:
        self.hw = hw

    def value(self, v=None):
        if v is not None:
            self.hw.from_device({"op": "out", "name": "legend", "v": v})
        return self.hw.output("legend")


def test_matrix_readback_matches_the_sign():
    hw = DeviceHW("vsl-1")
    io = SignIO(hw)
    d = MatrixDisplay(WireSPI(hw), 4, 3)
    for lim, leg in [(80, "FOG"), (120, ""), (20, "\u96fe"), (None, "")]:
        shown = d.show(lim, leg)
        assert io.reading() == shown == (lim, leg)
        assert io.check() == d.check()
    d.show(60, "FOG")
    d.brightness(3)
    assert io.intensity() == 3
    d.power(False)
    assert io.reading() == (None, "") and io.check() == d.check()
    d.power(True)
    d.lamp_test(True)
    assert io.lamp_test()
    d.lamp_test(False)
    assert io.reading() == (60, "FOG")
    assert sum(r.count("#") for r in io.pixels()) > 30
    hw.from_device({"op": "spi", "name": "display", "data": "0102"})
    assert io.bad_frames == 1


def test_seven_segment_readback():
    hw = DeviceHW("vsl-2")
    io = SignIO(hw, display="7seg", lamp="legend")
    d = SevenSegDisplay(WireSPI(hw), 3, Lamp(hw))
    d.show(100, "FOG")
    assert io.reading() == (100, "FOG") and io.check() == d.check()
    d.show(60, "")
    assert io.reading() == (60, "") and io.check() == d.check()


def test_sensors_feed_the_adc_and_switch():
    hw = DeviceHW("vsl-3")
    io = SignIO(hw)
    io.set_temperature(61.0)
    from roadedge.sign.policy import adc_to_celsius
    assert abs(adc_to_celsius(hw.adcs["temp"]) - 61.0) < 0.1
    io.set_maintenance(True)
    assert hw.inputs["maint_switch"] == 1
    io.set_ambient(1.0)
    assert hw.adcs["ambient"] == 65535
