# MAX7219 LED drivers chained on one SPI bus (one chip per 8x8 module), and
# the LED-matrix sign face built from them. Each hal.spi write is one
# chip-select frame: one (register, data) pair per chip, the farthest chip's
# pair first (data shifts through the chain).
from roadedge.sign.render import Matrix, crc16

NOOP = 0x00
DIGIT0 = 0x01  # digit/row registers 0x01..0x08
DECODE = 0x09
INTENSITY = 0x0A
SCAN_LIMIT = 0x0B
SHUTDOWN = 0x0C  # 0 = shut down, 1 = normal operation
TEST = 0x0F


class Max7219Chain:
    def __init__(self, spi, n):
        if n < 1:
            raise ValueError("MAX7219 chain needs at least one chip")
        self.spi = spi
        self.n = n
        self.tx = bytearray(2 * n)

    def write(self, reg, datas):
        """Write register `reg` of every chip; datas[k] goes to chip k (k = 0 nearest the MCU)."""
        n = self.n
        tx = self.tx
        for k in range(n):
            i = (n - 1 - k) * 2
            tx[i] = reg
            tx[i + 1] = datas[k]
        self.spi.write(tx)

    def write_all(self, reg, value):
        tx = self.tx
        for i in range(0, len(tx), 2):
            tx[i] = reg
            tx[i + 1] = value
        self.spi.write(tx)

    def init(self, scan_limit=7, intensity=8):
        self.write_all(TEST, 0)
        self.write_all(DECODE, 0)
        self.write_all(SCAN_LIMIT, scan_limit)
        self.write_all(INTENSITY, intensity)
        self.write_all(SHUTDOWN, 1)


class MatrixDisplay:
    """cols x rows modules of 8x8 LEDs; module k = row k // cols, column k % cols."""

    def __init__(self, spi, cols, rows):
        self.cols = cols
        self.rows = rows
        self.chain = Max7219Chain(spi, cols * rows)
        self.matrix = Matrix(cols * 8, rows * 8)
        self.regs = bytearray(cols * rows * 8)  # what each chip's row registers hold: chip-major
        self.col = bytearray(cols * rows)
        self.lit = True
        self.chain.init()

    def _chip_row(self, k, r):
        cols = self.cols
        return self.matrix.buf[((k // cols) * 8 + r) * cols + (k % cols)]

    def show(self, limit, legend):
        """Render and send; returns (limit, legend) actually drawn."""
        shown = self.matrix.render(limit, legend)
        n = self.cols * self.rows
        col = self.col
        for r in range(8):
            for k in range(n):
                v = self._chip_row(k, r)
                col[k] = v
                self.regs[k * 8 + r] = v
            self.chain.write(DIGIT0 + r, col)
        return shown

    def preview_check(self, limit, legend):
        """The check value `show(limit, legend)` would give, without touching the LEDs."""
        self.matrix.render(limit, legend)
        n = self.cols * self.rows
        crc = 0xFFFF
        for k in range(n):
            for r in range(8):
                crc = crc16((self._chip_row(k, r),), crc)
        return crc

    def power(self, on):
        """LEDs on/off (shutdown keeps the registers)."""
        self.lit = bool(on)
        self.chain.write_all(SHUTDOWN, 1 if on else 0)

    def brightness(self, level):
        self.chain.write_all(INTENSITY, max(0, min(15, level)))

    def lamp_test(self, on):
        """Every LED on (the chip's display-test mode) or back to the registers."""
        self.chain.write_all(TEST, 1 if on else 0)

    def check(self):
        """Check value of what the LEDs show: the row registers, or all dark."""
        if not self.lit:
            return crc16(bytes(len(self.regs)))
        return crc16(self.regs)
