# On-device NMEA 0183 decoder for the tracker's GNSS UART.
#
# Decodes RMC, GGA, GSA and VTG from any two-letter talker (GP, GN, GL, BD,
# GB, GA, ...), checks the checksum, and assembles one Fix per epoch (RMC and
# GGA with the same time of day). Numbers are parsed straight from the line's
# bytes into scaled integers held in preallocated attributes: no slicing, no
# float parsing, no split(), so a sentence costs (almost) no heap. Coordinates
# stay integers (1e-7 degrees) because rp2/esp32 floats are single precision
# (about 1 m at 180 degrees).
#
# Everything that is not a good sentence is counted and skipped; feed() never
# raises. A Fix is only produced when it is valid: RMC status A, mode not N,
# GGA quality > 0, last GSA fix type >= 2 (when the receiver sends GSA) and
# HDOP within the configured limit.
from roadedge.core.compat import const

# feed() results
NONE = const(0)  # consumed, nothing new (unknown type, rejected, garbage)
RMC = const(1)
GGA = const(2)
GSA = const(3)
VTG = const(4)

_MAXF = const(24)  # most commas we index; GSA has 18
_EMPTY = const(-1)  # value of an empty field
_BAD = const(-2)  # value of a malformed field

_DOLLAR = const(36)
_STAR = const(42)
_COMMA = const(44)
_DOT = const(46)
_CR = const(13)
_LF = const(10)


def _hexval(c):
    if 48 <= c <= 57:
        return c - 48
    if 65 <= c <= 70:
        return c - 55
    if 97 <= c <= 102:
        return c - 87
    return -1


def days_from_civil(y, m, d):
    # Howard Hinnant's algorithm: days since 1970-01-01 (proleptic Gregorian).
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


class Fix:
    """One valid epoch. Units chosen so values stay small integers:
    lat/lon 1e-7 deg, speed 0.001 kn, course 0.01 deg, alt cm, hdop 0.01."""

    __slots__ = ("unix", "ms", "lat", "lon", "speed_kn", "course", "alt_cm", "sats", "hdop", "fix", "quality", "mode")

    def __init__(self):
        self.unix = 0  # unix seconds (from RMC date + time)
        self.ms = 0  # milliseconds part
        self.lat = 0
        self.lon = 0
        self.speed_kn = 0
        self.course = _EMPTY
        self.alt_cm = 0
        self.sats = 0
        self.hdop = 0
        self.fix = 0  # 2 = 2D, 3 = 3D
        self.quality = 0  # GGA quality
        self.mode = 0  # RMC mode letter as int (0 when absent)

    def speed_kmh10(self):
        # knots * 1.852 in 0.1 km/h
        return (self.speed_kn * 1852 + 50000) // 100000

    def __repr__(self):
        return "Fix(%d.%03d %d %d %dkn/1000 %d sats=%d hdop=%d fix=%d)" % (
            self.unix, self.ms, self.lat, self.lon, self.speed_kn, self.course, self.sats, self.hdop, self.fix)


class Decoder:
    """feed(line) each line from the UART; take_fix() returns a new valid Fix
    (or None) once an epoch is complete."""

    def __init__(self, max_hdop=500, max_len=82):
        self.max_hdop = max_hdop  # 0.01 units (500 = HDOP 5.0)
        self.max_len = max_len  # characters excluding CR/LF
        self._c = [0] * _MAXF  # comma offsets of the current line
        self._nc = 0
        self._line = b""
        # counters
        self.lines = 0
        self.sentences = 0  # good checksum and decoded
        self.unknown = 0  # good checksum, type we do not use (GSV, GLL, TXT...)
        self.bad_checksum = 0
        self.garbage = 0  # framing or field syntax
        self.too_long = 0
        self.rejected = 0  # decoded but invalid fix (status V, mode N, fix<2, hdop)
        self.fixes = 0
        self.internal = 0  # exceptions caught inside the decoder (should stay 0)
        # last RMC
        self.rmc_time = _EMPTY  # ms of day
        self.rmc_ok = False
        self.rmc_lat = 0  # signed minutes * 1e5
        self.rmc_lon = 0
        self.rmc_speed = 0
        self.rmc_course = _EMPTY
        self.rmc_days = _EMPTY  # days since epoch
        self.rmc_mode = 0
        self.rmc_status = 0
        # last GGA
        self.gga_time = _EMPTY
        self.gga_quality = 0
        self.gga_sats = _EMPTY
        self.gga_hdop = _EMPTY
        self.gga_alt = _EMPTY
        self.gga_lat = 0  # signed minutes * 1e5 (to_e7() converts)
        self.gga_lon = 0
        self.gga_pos = False
        self._cst = 0
        # last GSA (fix type 1/2/3, dops in 0.01)
        self.gsa_fix = _EMPTY
        self.gsa_seen = False
        self.gsa_pdop = _EMPTY
        self.gsa_hdop = _EMPTY
        self.gsa_vdop = _EMPTY
        # last VTG
        self.vtg_course = _EMPTY
        self.vtg_kn = _EMPTY
        self.vtg_kmh = _EMPTY
        self.vtg_mode = 0
        self._epoch = _EMPTY  # time of the epoch already emitted
        self._fix = None
        self._fixobj = Fix()

    # -- public -------------------------------------------------------------
    def feed(self, line):
        """Decode one line (bytes, with or without CR/LF). Returns the sentence
        kind decoded (RMC/GGA/GSA/VTG) or NONE. Never raises."""
        self.lines += 1
        try:
            return self._feed(line)
        except Exception:  # a decoder bug must not kill the tracker: count it
            self.internal += 1
            self._line = b""
            return NONE

    def take_fix(self):
        """The Fix of the epoch just completed, else None. The object is
        reused: copy what must outlive the next epoch."""
        f = self._fix
        self._fix = None
        return f

    def counters(self):
        return {"lines": self.lines, "ok": self.sentences, "unknown": self.unknown, "bad_cs": self.bad_checksum,
                "garbage": self.garbage, "too_long": self.too_long, "rejected": self.rejected, "fixes": self.fixes, "internal": self.internal}

    # -- framing ------------------------------------------------------------
    def _feed(self, line):
        n = len(line)
        while n and (line[n - 1] == _LF or line[n - 1] == _CR):
            n -= 1
        if n > self.max_len:
            self.too_long += 1
            return NONE
        if n < 10 or line[0] != _DOLLAR or line[n - 3] != _STAR:
            self.garbage += 1
            return NONE
        h1 = _hexval(line[n - 2])
        h2 = _hexval(line[n - 1])
        if h1 < 0 or h2 < 0:
            self.garbage += 1
            return NONE
        cs = 0
        nc = 0
        c = self._c
        end = n - 3
        for i in range(1, end):
            b = line[i]
            if b < 32 or b > 126 or b == _DOLLAR or b == _STAR:
                self.garbage += 1
                return NONE
            cs ^= b
            if b == _COMMA:
                if nc == _MAXF:
                    nc += 1  # too many fields for us: only GSV/others, treated below
                    break
                c[nc] = i
                nc += 1
        if cs != (h1 << 4 | h2):
            self.bad_checksum += 1
            return NONE
        # address: 2-letter talker + 3-letter type, first comma at 6
        if nc == 0 or c[0] != 6:
            self.unknown += 1
            return NONE
        t0 = line[3]
        t1 = line[4]
        t2 = line[5]
        if line[1] == 80:  # 'P' proprietary
            self.unknown += 1
            return NONE
        if not (65 <= line[1] <= 90 and 65 <= line[2] <= 90):
            self.garbage += 1  # talker must be two capital letters
            return NONE
        self._line = line
        self._end = end
        self._nc = nc
        kind = NONE
        if t0 == 82 and t1 == 77 and t2 == 67:
            kind = self._rmc()
        elif t0 == 71 and t1 == 71 and t2 == 65:
            kind = self._gga()
        elif t0 == 71 and t1 == 83 and t2 == 65:
            kind = self._gsa()
        elif t0 == 86 and t1 == 84 and t2 == 71:
            kind = self._vtg()
        else:
            self.unknown += 1
            return NONE
        self._line = b""
        if kind == NONE:
            self.garbage += 1
        else:
            self.sentences += 1
        return kind

    # -- field access: field k (0-based after the address) spans (a, b) ----
    def _span(self, k):
        # returns start offset, sets self._b to the end; -1 when absent
        if k >= self._nc:
            return -1
        a = self._c[k] + 1
        self._b = self._c[k + 1] if k + 1 < self._nc else self._end
        return a

    def _int(self, k):
        a = self._span(k)
        if a < 0:
            return _EMPTY
        b = self._b
        if a == b:
            return _EMPTY
        if b - a > 9:
            return _BAD
        v = 0
        ln = self._line
        for i in range(a, b):
            d = ln[i] - 48
            if d < 0 or d > 9:
                return _BAD
            v = v * 10 + d
        return v

    def _dec(self, k, scale_digits, signed=False):
        # decimal "123.45" -> 12345 at 2 digits; extra digits truncated
        a = self._span(k)
        if a < 0:
            return _EMPTY
        b = self._b
        if a == b:
            return _EMPTY
        ln = self._line
        neg = False
        if signed and ln[a] == 45:  # '-'
            neg = True
            a += 1
        v = 0
        frac = -1  # digits seen after the dot, -1 = no dot yet
        nd = 0
        for i in range(a, b):
            ch = ln[i]
            if ch == _DOT:
                if frac >= 0:
                    return _BAD
                frac = 0
                continue
            d = ch - 48
            if d < 0 or d > 9:
                return _BAD
            if frac >= 0:
                if frac >= scale_digits:
                    continue
                frac += 1
            else:
                nd += 1
                if nd > 7:
                    return _BAD
            v = v * 10 + d
        if nd == 0 and frac <= 0:
            return _BAD
        if frac < 0:
            frac = 0
        while frac < scale_digits:
            v *= 10
            frac += 1
        return -v if neg else v

    def _char(self, k):
        # single-character field as int; 0 = empty; -2 = longer than one char
        a = self._span(k)
        if a < 0 or a == self._b:
            return 0
        if self._b - a != 1:
            return _BAD
        return self._line[a]

    def _time(self, k):
        # hhmmss[.sss] -> ms of day
        a = self._span(k)
        if a < 0 or a == self._b:
            return _EMPTY
        b = self._b
        if b - a < 6:
            return _BAD
        ln = self._line
        v = 0
        for i in range(a, a + 6):
            d = ln[i] - 48
            if d < 0 or d > 9:
                return _BAD
            v = v * 10 + d
        hh = v // 10000
        mm = v // 100 % 100
        ss = v % 100
        if hh > 23 or mm > 59 or ss > 60:
            return _BAD
        ms = 0
        if b > a + 6:
            if ln[a + 6] != _DOT:
                return _BAD
            mul = 100
            for i in range(a + 7, b):
                d = ln[i] - 48
                if d < 0 or d > 9:
                    return _BAD
                ms += d * mul
                mul //= 10
        return ((hh * 60 + mm) * 60 + ss) * 1000 + ms

    def _coord(self, k, deg_digits):
        # (d)ddmm.mmmmm + hemisphere -> signed minutes in 1e-5 (an int that
        # stays small on 32-bit boards); status in self._cst: 0 ok, 1 empty, 2 bad
        self._cst = 2
        a = self._span(k)
        if a < 0 or a == self._b:
            self._cst = 1
            return 0
        b = self._b
        ln = self._line
        dot = b
        for i in range(a, b):
            if ln[i] == _DOT:
                dot = i
                break
        if dot - a < 3 or dot - a > deg_digits + 2:
            return 0
        dend = dot - 2
        deg = 0
        for i in range(a, dend):
            d = ln[i] - 48
            if d < 0 or d > 9:
                return 0
            deg = deg * 10 + d
        mins = 0
        for i in range(dend, dot):
            d = ln[i] - 48
            if d < 0 or d > 9:
                return 0
            mins = mins * 10 + d
        nf = 0
        rnd = 0
        for i in range(dot + 1, b):
            d = ln[i] - 48
            if d < 0 or d > 9:
                return 0
            if nf < 5:
                mins = mins * 10 + d
                nf += 1
            elif nf == 5:
                rnd = 1 if d >= 5 else 0
                nf += 1
        while nf < 5:
            mins *= 10
            nf += 1
        mins += rnd
        lim = 90 if deg_digits == 2 else 180
        if mins >= 6000000 or deg > lim or (deg == lim and mins):
            return 0
        v = deg * 6000000 + mins
        hemi = self._char(k + 1)
        if hemi == (78 if deg_digits == 2 else 69):  # N / E
            self._cst = 0
            return v
        if hemi == (83 if deg_digits == 2 else 87):  # S / W
            self._cst = 0
            return -v
        return 0

    # -- sentences ----------------------------------------------------------
    def _rmc(self):
        t = self._time(0)
        status = self._char(1)
        lat = self._coord(2, 2)
        lat_st = self._cst
        lon = self._coord(4, 3)
        lon_st = self._cst
        spd = self._dec(6, 3)
        cog = self._dec(7, 2)
        dt = self._int(8)
        dlen = self._b - self._c[8] - 1 if self._nc > 8 else 0
        mode = self._char(11)
        if t == _BAD or status == _BAD or lat_st == 2 or lon_st == 2 or spd == _BAD or cog == _BAD \
                or dt == _BAD or mode == _BAD or not 11 <= self._nc <= 13:
            return NONE
        days = _EMPTY
        if dt != _EMPTY:
            dd = dt // 10000
            mo = dt // 100 % 100
            yy = dt % 100
            if dlen != 6 or not (1 <= dd <= 31 and 1 <= mo <= 12):
                return NONE
            days = days_from_civil(1900 + yy if yy >= 80 else 2000 + yy, mo, dd)
        self.rmc_time = t
        self.rmc_status = status
        self.rmc_mode = mode
        self.rmc_speed = 0 if spd == _EMPTY else spd
        self.rmc_course = cog
        self.rmc_days = days
        ok = status == 65 and mode != 78 and t != _EMPTY and days != _EMPTY \
            and lat_st == 0 and lon_st == 0
        if ok:
            self.rmc_lat = lat
            self.rmc_lon = lon
        elif status == 65 or status == 86:
            self.rejected += 1
        self.rmc_ok = ok
        self._try_epoch()
        return RMC

    def _gga(self):
        t = self._time(0)
        lat = self._coord(1, 2)
        lat_st = self._cst
        lon = self._coord(3, 3)
        lon_st = self._cst
        q = self._int(5)
        sats = self._int(6)
        hdop = self._dec(7, 2)
        alt = self._dec(8, 2, True)
        if t == _BAD or lat_st == 2 or lon_st == 2 or q == _BAD or sats == _BAD or hdop == _BAD \
                or alt == _BAD or self._nc != 14:
            return NONE
        self.gga_time = t
        self.gga_quality = 0 if q == _EMPTY else q
        self.gga_sats = sats
        self.gga_hdop = hdop
        self.gga_alt = alt
        self.gga_lat = lat
        self.gga_lon = lon
        self.gga_pos = lat_st == 0 and lon_st == 0
        if self.gga_quality == 0:
            self.rejected += 1
        self._try_epoch()
        return GGA

    def _gsa(self):
        fx = self._int(1)
        pdop = self._dec(14, 2)
        hdop = self._dec(15, 2)
        vdop = self._dec(16, 2)
        if fx == _BAD or pdop == _BAD or hdop == _BAD or vdop == _BAD or not 17 <= self._nc <= 18:
            return NONE
        self.gsa_fix = fx
        self.gsa_seen = True  # from now on an empty or low fix type blocks fixes
        self.gsa_pdop = pdop
        self.gsa_hdop = hdop
        self.gsa_vdop = vdop
        return GSA

    def _vtg(self):
        cog = self._dec(0, 2)
        kn = self._dec(4, 3)
        kmh = self._dec(6, 3)
        mode = self._char(8)
        if cog == _BAD or kn == _BAD or kmh == _BAD or mode == _BAD or not 8 <= self._nc <= 9:
            return NONE
        self.vtg_course = cog
        self.vtg_kn = kn
        self.vtg_kmh = kmh
        self.vtg_mode = mode
        return VTG

    # -- epoch assembly -----------------------------------------------------
    def _try_epoch(self):
        t = self.rmc_time
        if t == _EMPTY or t != self.gga_time or t == self._epoch:
            return
        self._epoch = t
        if not self.rmc_ok:
            return
        if self.gga_quality == 0 or not self.gga_pos:
            return
        hdop = self.gga_hdop
        if hdop == _EMPTY or hdop > self.max_hdop or (self.gsa_seen and self.gsa_fix < 2):
            self.rejected += 1
            return
        f = self._fixobj  # one Fix reused: valid until the next epoch (no allocation per fix)
        f.unix = self.rmc_days * 86400 + t // 1000
        f.ms = t % 1000
        f.lat = to_e7(self.rmc_lat)
        f.lon = to_e7(self.rmc_lon)
        f.speed_kn = self.rmc_speed
        f.course = self.rmc_course
        f.alt_cm = self.gga_alt if self.gga_alt != _EMPTY else 0
        f.sats = self.gga_sats if self.gga_sats != _EMPTY else 0
        f.hdop = hdop
        f.fix = self.gsa_fix if self.gsa_fix >= 2 else (3 if self.gga_alt != _EMPTY else 2)
        f.quality = self.gga_quality
        f.mode = self.rmc_mode
        self.fixes += 1
        self._fix = f


def to_e7(m):
    """Signed minutes * 1e5 -> 1e-7 degrees (m * 1e-5 / 60 * 1e7 = m * 5 / 3)."""
    a = -m if m < 0 else m
    v = a // 6000000 * 10000000 + ((a % 6000000) * 5 + 1) // 3
    return -v if m < 0 else v
