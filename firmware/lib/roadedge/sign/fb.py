# pyright: reportRedeclaration=false
# A MONO_HLSB framebuffer: MicroPython's built-in framebuf, or (under CPython,
# for tests and the in-process simulator) a pure subset with the same byte
# layout, so the pixels and their check value are identical on both.


class PureFrameBuffer:
    """fill / pixel / fill_rect of framebuf.FrameBuffer, MONO_HLSB (bit 7 = leftmost)."""

    def __init__(self, buf, width, height):
        self.buf = buf
        self.width = width
        self.height = height
        self.stride = (width + 7) & ~7

    def fill(self, c):
        v = 0xFF if c else 0
        for i in range(len(self.buf)):
            self.buf[i] = v

    def pixel(self, x, y, c=None):
        if not (0 <= x < self.width and 0 <= y < self.height):
            return None
        i = (y * self.stride + x) >> 3
        bit = 0x80 >> (x & 7)
        if c is None:
            return 1 if self.buf[i] & bit else 0
        if c:
            self.buf[i] |= bit
        else:
            self.buf[i] &= ~bit & 0xFF
        return None

    def fill_rect(self, x, y, w, h, c):
        for yy in range(y, y + h):
            for xx in range(x, x + w):
                self.pixel(xx, yy, c)


try:
    import framebuf

    def new(buf, width, height):
        return framebuf.FrameBuffer(buf, width, height, framebuf.MONO_HLSB)

except ImportError:

    def new(buf, width, height):
        return PureFrameBuffer(buf, width, height)
