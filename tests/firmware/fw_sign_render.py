# Rendering, the MAX7219 wire frames and the check value of what is displayed.
from roadedge.sign.render import Matrix, seven_segment, crc16
from roadedge.sign.display_max7219 import MatrixDisplay
from roadedge.sign.display_7seg import SevenSegDisplay


class FakeSPI:
    def __init__(self):
        self.frames = []

    def write(self, b):
        self.frames.append(bytes(b))


class Pin:
    def __init__(self):
        self.v = 0

    def value(self, v=None):
        if v is not None:
            self.v = v
        return self.v


def lit(m):
    return sum(bin(b).count("1") for b in m.buf)


def test_crc16_known_value():
    assert crc16(b"123456789") == 0x29B1


def test_matrix_renders_limit_and_legends():
    m = Matrix(32, 24)
    assert m.render(None, "") == (None, "") and lit(m) == 0
    assert m.render(120, "") == (120, "")
    a = bytes(m.buf)
    assert lit(m) > 40
    assert m.render(120, "FOG") == (120, "FOG")
    assert bytes(m.buf) != a
    assert m.render(60, "\u96fe") == (60, "\u96fe")
    assert m.render(60, "XYZ") == (60, "")  # no glyphs: left off, and reported so
    small = Matrix(32, 8)
    assert small.render(80, "FOG") == (80, "")


def test_digits_differ():
    m = Matrix(32, 16)
    seen = set()
    for v in range(20, 130, 10):
        m.render(v, "")
        seen.add(bytes(m.buf))
    assert len(seen) == 11


def test_max7219_frames_and_check_follow_what_was_sent():
    spi = FakeSPI()
    d = MatrixDisplay(spi, 4, 3)
    init = len(spi.frames)
    assert init == 5 and all(len(f) == 24 for f in spi.frames)
    assert d.show(80, "FOG") == (80, "FOG")
    frames = spi.frames[init:]
    assert len(frames) == 8
    # rebuild the chips' registers from the wire: first pair = farthest chip
    regs = bytearray(12 * 8)
    for f in frames:
        for j in range(12):
            reg, data = f[2 * j], f[2 * j + 1]
            k = 11 - j
            regs[k * 8 + reg - 1] = data
    assert crc16(regs) == d.check()
    c80 = d.check()
    d.show(60, "FOG")
    assert d.check() != c80
    d.power(False)
    assert d.check() == crc16(bytes(96))
    assert spi.frames[-1] == bytes([0x0C, 0] * 12)


def test_seven_segment():
    assert seven_segment(80, 3) == (bytes([0, 0x7F, 0x7E]), 80)
    assert seven_segment(None, 3) == (bytes(3), None)
    assert seven_segment(1200, 3) == (bytes(3), None)
    spi = FakeSPI()
    lamp = Pin()
    d = SevenSegDisplay(spi, 3, lamp)
    assert d.show(120, "FOG") == (120, "FOG") and lamp.v == 1
    c = d.check()
    d.show(100, "")
    assert lamp.v == 0 and d.check() != c
    d2 = SevenSegDisplay(FakeSPI(), 3, None)
    assert d2.show(60, "FOG") == (60, "")


def test_same_pixels_on_every_runtime():
    # framebuf on MicroPython, the pure subset on CPython: the check values must agree
    m = Matrix(32, 24)
    out = []
    for a in [(80, "FOG"), (120, ""), (20, "\u96fe"), (None, "FOG")]:
        m.render(*a)
        out.append(crc16(m.buf))
    assert out == [47093, 3568, 52430, 25548], out


def test_preview_check_matches_what_show_sends():
    spi = FakeSPI()
    d = MatrixDisplay(spi, 4, 3)
    d.show(100, "")
    n = len(spi.frames)
    for lim, leg in [(80, "FOG"), (None, ""), (20, "\u96fe"), (60, "XYZ")]:
        p = d.preview_check(lim, leg)
        assert len(spi.frames) == n  # nothing sent
        d.show(lim, leg)
        n = len(spi.frames)
        assert d.check() == p
    s = SevenSegDisplay(FakeSPI(), 3, Pin())
    for lim, leg in [(80, "FOG"), (120, "")]:
        p = s.preview_check(lim, leg)
        s.show(lim, leg)
        assert s.check() == p
