# Drawing the limit and an optional legend into a framebuffer, the check
# value of displayed bytes, and the 7-segment encoding. Pure: no hardware.
from roadedge.sign import fb as _fb

# 5x7 glyphs, one int per row, bit 4 = leftmost column.
GLYPHS = {
    "0": (0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E),
    "1": (0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E),
    "2": (0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F),
    "3": (0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E),
    "4": (0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02),
    "5": (0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E),
    "6": (0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E),
    "7": (0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08),
    "8": (0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E),
    "9": (0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C),
    "F": (0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10),
    "O": (0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E),
    "G": (0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F),
}

# 8x8 bitmaps for legends that are one ideogram (bit 7 = leftmost column).
IDEOGRAMS = {
    # 雾 (fog): 雨 (rain) over 务, reduced to 8x8
    "\u96fe": (0x7E, 0x08, 0xFF, 0xAB, 0x28, 0x7E, 0x14, 0x6B),
}


def text_width(s, scale=1):
    return (len(s) * 6 - 1) * scale if s else 0


def draw_text(fb, s, x, y, scale=1):
    for ch in s:
        g = GLYPHS.get(ch)
        if g is None:
            return False
        for row in range(7):
            bits = g[row]
            for col in range(5):
                if bits & (0x10 >> col):
                    fb.fill_rect(x + col * scale, y + row * scale, scale, scale, 1)
        x += 6 * scale
    return True


def draw_ideogram(fb, ch, x, y):
    g = IDEOGRAMS[ch]
    for row in range(8):
        for col in range(8):
            if g[row] & (0x80 >> col):
                fb.pixel(x + col, y + row, 1)


def legend_fits(legend, width):
    if legend in IDEOGRAMS:
        return width >= 8
    return all(c in GLYPHS for c in legend) and text_width(legend) <= width


class Matrix:
    """A width x height monochrome pixel matrix (MONO_HLSB: bit 7 = left)."""

    def __init__(self, width, height):
        if width % 8 or height % 8 or width <= 0 or height <= 0:
            raise ValueError("sign.matrix: width and height must be multiples of 8")
        self.width = width
        self.height = height
        self.buf = bytearray(width * height // 8)
        self.fb = _fb.new(self.buf, width, height)

    def render(self, limit, legend):
        """Draw the limit (None = blank) and legend. Returns (limit, legend)
        as actually drawn: a legend that does not fit is left off."""
        fb = self.fb
        fb.fill(0)
        w, h = self.width, self.height
        # a legend takes the bottom 8 rows when the matrix has room under the digits
        leg_rows = 8 if legend and h >= 16 and legend_fits(legend, w) else 0
        if not leg_rows:
            legend = ""
        if limit is not None:
            s = str(limit)
            area = h - leg_rows
            scale = 1
            while text_width(s, scale + 1) <= w and 7 * (scale + 1) <= area:
                scale += 1
            if text_width(s, scale) > w:
                limit, legend = None, ""
                fb.fill(0)
                return (None, "")
            draw_text(fb, s, (w - text_width(s, scale)) // 2, (area - 7 * scale) // 2, scale)
        if legend:
            y = h - 8
            if legend in IDEOGRAMS:
                draw_ideogram(fb, legend, (w - 8) // 2, y)
            else:
                draw_text(fb, legend, (w - text_width(legend)) // 2, y + 1)
        return (limit, legend)


# 7-segment: bit order of the MAX7219 no-decode mode (DP A B C D E F G).
SEG = {
    "0": 0x7E, "1": 0x30, "2": 0x6D, "3": 0x79, "4": 0x33,
    "5": 0x5B, "6": 0x5F, "7": 0x70, "8": 0x7F, "9": 0x7B, " ": 0x00,
}


def seven_segment(limit, digits):
    """Segment bytes (leftmost digit first) for a right-aligned limit; None blanks.
    Returns (bytes, limit shown)."""
    if limit is None:
        return (bytes(digits), None)
    s = str(limit)
    if len(s) > digits:
        return (bytes(digits), None)
    s = " " * (digits - len(s)) + s
    return (bytes(SEG[c] for c in s), limit)


def crc16(data, crc=0xFFFF):
    """CRC-16/CCITT-FALSE: the check value of what is displayed."""
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc
