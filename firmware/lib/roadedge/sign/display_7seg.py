# A 7-segment speed-limit face: one MAX7219 in no-decode mode driving
# `digits` digits, plus an optional legend lamp ("FOG" panel) on an output.
from roadedge.sign.display_max7219 import Max7219Chain, DIGIT0, SHUTDOWN, INTENSITY, TEST
from roadedge.sign.render import seven_segment, crc16


class SevenSegDisplay:
    def __init__(self, spi, digits=3, legend_lamp=None):
        if not 1 <= digits <= 8:
            raise ValueError("sign.digits: 1..8")
        self.digits = digits
        self.chain = Max7219Chain(spi, 1)
        self.lamp = legend_lamp
        self.regs = bytearray(digits + 1)  # segment bytes + the legend lamp
        self.lit = True
        self.chain.init(scan_limit=digits - 1)
        self._one = bytearray(1)

    def show(self, limit, legend):
        segs, limit = seven_segment(limit, self.digits)
        one = self._one
        for i in range(self.digits):
            one[0] = segs[i]
            self.regs[i] = segs[i]
            self.chain.write(DIGIT0 + i, one)
        if not self.lamp:
            legend = ""
        lamp = 1 if legend else 0
        if self.lamp:
            self.lamp.value(lamp)
        self.regs[self.digits] = lamp
        return (limit, legend)

    def preview_check(self, limit, legend):
        """The check value `show(limit, legend)` would give, without touching the LEDs."""
        segs, _lim = seven_segment(limit, self.digits)
        lamp = 1 if legend and self.lamp else 0
        return crc16(bytes(segs) + bytes((lamp,)))

    def power(self, on):
        self.lit = bool(on)
        self.chain.write_all(SHUTDOWN, 1 if on else 0)
        if self.lamp:
            self.lamp.value(self.regs[self.digits] if on else 0)

    def brightness(self, level):
        self.chain.write_all(INTENSITY, max(0, min(15, level)))

    def lamp_test(self, on):
        self.chain.write_all(TEST, 1 if on else 0)
        if self.lamp:
            self.lamp.value(1 if on else (self.regs[self.digits] if self.lit else 0))

    def check(self):
        if not self.lit:
            return crc16(bytes(len(self.regs)))
        return crc16(self.regs)
