# On-device NMEA 0183 decoder for the tracker's GNSS UART.
#
# Decodes RMC, GGA, GSA and VTG from any two-letter talker (GP, GN, GL, GA,
# BD, GB, GQ, ...). A line's sentence starts at its last '$' (binary UBX/SiRF
# bytes or noise before it are skipped and counted), may be as long as the
# UART line, and is checksummed whole; fields are read by position, so extra
# or missing trailing fields do no harm. Numbers are parsed straight from the
# line's bytes into scaled integers held in preallocated attributes: no
# slicing, no float parsing, no split(), so a sentence costs no heap.
# Coordinates stay integers (1e-7 degrees) because rp2/esp32 floats are
# single precision (about 1 m at 180 degrees).
#
# An epoch is whatever the receiver sends for one time of day (RMC alone,
# GGA alone, RMC+GGA+GSA+VTG); it is judged once against the configurable
# validity rules (DEFAULTS) and gives one Fix or one refusal, counted by
# reason. feed() never raises.
from roadedge.core import config
from roadedge.core.compat import const

# Validity rules a fleet configures (tracker section of the board config).
DEFAULTS = {
    "max_hdop": 5.0,  # epochs with a worse HDOP are refused
    "nmea_max_len": 128,  # longest sentence ($ to checksum): the UART's line; real GGA runs to 85-100
    "gnss_quality": [1, 2, 4, 5],  # GGA qualities that are a fix: GPS, DGPS, RTK fixed, RTK float
    "gnss_modes": "ADPRF",  # RMC/VTG mode letters that are a fix (empty mode field: NMEA < 2.3, accepted)
    "gnss_min_sats_3d": 4,
    "gnss_min_sats_2d": 3,
    "gnss_accept_estimated": False,  # dead reckoning (quality 6 / mode E): refused, or accepted and flagged
    "gnss_not_before": "2024-01-01",  # GNSS dates before this are GPS week rollover
    "gnss_week_rollover": "correct",  # "correct" (by 1024 weeks, checked against the clock) or "refuse"
}

# refusal reasons (index into Decoder.refused)
R_STATUS = const(0)
R_MODE = const(1)
R_QUALITY = const(2)
R_ESTIMATED = const(3)
R_MANUAL = const(4)
R_SIMULATED = const(5)
R_POSITION = const(6)
R_FIX_TYPE = const(7)
R_SATS = const(8)
R_HDOP = const(9)
R_DATE = const(10)
REASONS = ("status", "mode", "quality", "estimated", "manual", "simulated", "position", "fix_type", "sats",
           "hdop", "date")

_K_RMC = const(1)
_K_GGA = const(2)
_K_GSA = const(4)
_K_VTG = const(8)
_DATE_AGE_MAX = const(3600)  # epochs an RMC date may date GGA-only epochs

# feed() results
NONE = const(0)  # consumed, nothing new (unknown type, rejected, garbage)
RMC = const(1)
GGA = const(2)
GSA = const(3)
VTG = const(4)

_MAXF = const(40)  # most commas we index (a 24-satellite GSA has 30)
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

    __slots__ = ("unix", "ms", "lat", "lon", "speed_kn", "course", "alt_cm", "sats", "hdop", "fix", "quality", "mode",
                 "estimated")

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
        self.estimated = False  # dead reckoning accepted by gnss_accept_estimated

    def speed_kmh10(self):
        # knots * 1.852 in 0.1 km/h
        return (self.speed_kn * 1852 + 50000) // 100000

    def __repr__(self):
        return "Fix(%d.%03d %d %d %dkn/1000 %d sats=%d hdop=%d fix=%d)" % (
            self.unix, self.ms, self.lat, self.lon, self.speed_kn, self.course, self.sats, self.hdop, self.fix)


class Decoder:
    """feed(line) each line from the UART; take_fix() returns a new valid Fix
    (or None) once an epoch is complete."""

    def __init__(self, params=None):
        p = params if params is not None else DEFAULTS
        g = _param
        self.max_hdop = int(g(p, "max_hdop", 0.0, 99.99) * 100 + 0.5)  # 0.01 units (500 = HDOP 5.0)
        self.max_len = g(p, "nmea_max_len", 82, 256)  # characters from $ to the checksum
        self.min_sats_3d = g(p, "gnss_min_sats_3d", 3, 12)
        self.min_sats_2d = g(p, "gnss_min_sats_2d", 2, 12)
        self.accept_estimated = bool(p.get("gnss_accept_estimated", False))
        q = p.get("gnss_quality", DEFAULTS["gnss_quality"])
        config.require(isinstance(q, list) and len(q) > 0 and all(type(x) is int and 1 <= x <= 5 for x in q),
                       "tracker.gnss_quality", "a non-empty list of GGA qualities 1..5")
        self._quality = tuple(q)
        md = p.get("gnss_modes", DEFAULTS["gnss_modes"])
        config.require(isinstance(md, str) and len(md) > 0 and all(ch in "ADPRF" for ch in md),
                       "tracker.gnss_modes", "mode letters from ADPRF")
        self._modes = tuple(ord(ch) for ch in md)
        nb = p.get("gnss_not_before", DEFAULTS["gnss_not_before"])
        ok = isinstance(nb, str) and len(nb) == 10 and nb[4] == "-" and nb[7] == "-" \
            and (nb[:4] + nb[5:7] + nb[8:]).isdigit()
        config.require(ok and 1 <= int(nb[5:7]) <= 12 and 1 <= int(nb[8:]) <= 31, "tracker.gnss_not_before",
                       "a date YYYY-MM-DD")
        self._floor = days_from_civil(int(nb[:4]), int(nb[5:7]), int(nb[8:]))
        wr = p.get("gnss_week_rollover", "correct")
        config.require(wr in ("correct", "refuse"), "tracker.gnss_week_rollover", "'correct' or 'refuse'")
        self._rollover_fix = wr == "correct"
        self.refused = [0] * len(REASONS)
        self.resync = 0  # lines whose sentence followed binary bytes or noise
        self.rollover = 0  # dates corrected by 1024 weeks
        self.clock_days = _EMPTY
        self.clock_tod = 0
        self._date_days = _EMPTY
        self._date_tod = 0
        self._date_age = 0
        self._ep_time = _EMPTY
        self._ep_mask = 0
        self._ep_done = True
        self._pattern = 0
        self._h1 = 0
        self._h2 = 0
        self._h3 = 0
        self._est = False
        self.gsa_sats = 0
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
        self._fixobj2 = Fix()
        self._next = None

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
        self._fix = self._next
        self._next = None
        return f

    def counters(self):
        refused = {}
        for i in range(len(REASONS)):
            refused[REASONS[i]] = self.refused[i]
        return {"lines": self.lines, "ok": self.sentences, "unknown": self.unknown, "bad_cs": self.bad_checksum,
                "garbage": self.garbage, "too_long": self.too_long, "resync": self.resync, "rejected": self.rejected,
                "refused": refused, "rollover": self.rollover, "fixes": self.fixes, "internal": self.internal}

    # -- framing ------------------------------------------------------------
    def _feed(self, line):
        n = len(line)
        while n and (line[n - 1] == _LF or line[n - 1] == _CR or line[n - 1] == 32):
            n -= 1
        # resynchronise on the last '$': binary protocol bytes (UBX, SiRF) or noise may precede it
        s0 = line.rfind(b"$", 0, n)
        if s0 < 0:
            self.garbage += 1
            return NONE
        if s0 > 0:
            self.resync += 1
        if n - s0 > self.max_len:
            self.too_long += 1
            return NONE
        if n - s0 < 10 or line[n - 3] != _STAR:
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
        for i in range(s0 + 1, end):
            b = line[i]
            if b < 32 or b > 126 or b == _STAR:
                self.garbage += 1
                return NONE
            cs ^= b  # over the whole sentence, however many fields it has
            if b == _COMMA:
                if nc < _MAXF:
                    c[nc] = i
                nc += 1
        if cs != (h1 << 4 | h2):
            self.bad_checksum += 1
            return NONE
        if nc > _MAXF:
            self.unknown += 1  # more fields than any sentence we decode
            return NONE
        if nc == 0 or c[0] != s0 + 6:
            self.unknown += 1
            return NONE
        t0 = line[s0 + 3]
        t1 = line[s0 + 4]
        t2 = line[s0 + 5]
        if line[s0 + 1] == 80:  # 'P' proprietary
            self.unknown += 1
            return NONE
        if not (65 <= line[s0 + 1] <= 90 and 65 <= line[s0 + 2] <= 90):
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
        extra = -1  # first digit past scale_digits: rounds half up
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
                    if extra < 0:
                        extra = d
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
        if extra >= 5:
            v += 1
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
        if dot - a < 3 or dot - a > deg_digits + 2 or dot + 1 >= b:  # (d)ddmm.m at least
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
    # Fields are decoded by position: extra trailing fields are ignored and
    # missing trailing ones read as empty; a sentence is refused only when a
    # field the fix needs is malformed.
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
                or dt == _BAD or mode == _BAD or self._nc < 2:
            return NONE
        days = _EMPTY
        if dt != _EMPTY:
            dd = dt // 10000
            mo = dt // 100 % 100
            yy = dt % 100
            if dlen != 6 or not (1 <= dd <= 31 and 1 <= mo <= 12):
                return NONE
            days = days_from_civil(1900 + yy if yy >= 80 else 2000 + yy, mo, dd)
        if t == _EMPTY:
            self.rmc_time = _EMPTY
            return RMC  # no time: belongs to no epoch (receiver still acquiring)
        self._open(t)
        self.rmc_time = t
        self.rmc_status = status
        self.rmc_mode = mode
        self.rmc_speed = 0 if spd == _EMPTY else spd
        self.rmc_course = cog
        self.rmc_days = days
        self.rmc_ok = lat_st == 0 and lon_st == 0
        self.rmc_lat = lat
        self.rmc_lon = lon
        if days != _EMPTY and status == 65:
            self._date_days = days  # dates GGA-only epochs that follow
            self._date_tod = t
        self._add(_K_RMC)
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
        if t == _BAD or lat_st == 2 or lon_st == 2 or q == _BAD or q == _EMPTY or sats == _BAD or hdop == _BAD \
                or alt == _BAD:
            return NONE
        if t == _EMPTY:
            self.gga_time = _EMPTY
            return GGA
        self._open(t)
        self.gga_time = t
        self.gga_quality = q
        self.gga_sats = sats
        self.gga_hdop = hdop
        self.gga_alt = alt
        self.gga_lat = lat
        self.gga_lon = lon
        self.gga_pos = lat_st == 0 and lon_st == 0
        self._add(_K_GGA)
        return GGA

    def _gsa(self):
        fx = self._int(1)
        # DOPs are the three fields after the PRNs: 12 PRN slots by the book, more on some
        # receivers; NMEA 4.1 adds a system id (no dot) after them
        k = self._nc - 3
        if k > 14 and self._dec(k + 2, 0) != _BAD and not self._has_dot(k + 2):
            k -= 1
        if k < 14:
            k = 14
        pdop = self._dec(k, 2)
        hdop = self._dec(k + 1, 2)
        vdop = self._dec(k + 2, 2)
        if fx == _BAD or pdop == _BAD or hdop == _BAD or vdop == _BAD:
            return NONE
        self.gsa_fix = fx
        self.gsa_seen = True
        self.gsa_pdop = pdop
        self.gsa_hdop = hdop
        self.gsa_vdop = vdop
        if self._ep_time == _EMPTY or self._ep_done:
            self._ep_mask |= _K_GSA  # after its epoch was judged (or lagging): counts for none
            return GSA
        n = 0
        for i in range(2, k):
            if self._span(i) >= 0 and self._b > self._c[i] + 1:
                n += 1
        self.gsa_sats += n
        self._add(_K_GSA)
        return GSA

    def _has_dot(self, k):
        a = self._span(k)
        if a < 0:
            return False
        for i in range(a, self._b):
            if self._line[i] == _DOT:
                return True
        return False

    def _vtg(self):
        cog = self._dec(0, 2)
        kn = self._dec(4, 3)
        kmh = self._dec(6, 3)
        mode = self._char(8)
        if cog == _BAD or kn == _BAD or kmh == _BAD or mode == _BAD:
            return NONE
        self.vtg_course = cog
        self.vtg_kn = kn
        self.vtg_kmh = kmh
        self.vtg_mode = mode
        if self._ep_time == _EMPTY or self._ep_done:
            self._ep_mask |= _K_VTG
            return VTG
        self._add(_K_VTG)
        return VTG

    # -- epoch assembly -----------------------------------------------------
    # An epoch is the sentences with one time of day (GSA/VTG, which carry no
    # time, belong to the epoch open when they arrive). It is judged once:
    # when it holds every kind of sentence the recent epochs had (the
    # receiver's burst), or else when the next epoch begins. So RMC alone,
    # GGA alone, or both at different rates all give fixes.
    def _open(self, t):
        if t == self._ep_time:
            return
        if self._ep_time != _EMPTY and not self._ep_done:
            self._judge()
        # the burst = every kind seen in the last four epochs: a damaged or cut epoch does not
        # make the next one be judged before its later sentences arrive
        self._h3 = self._h2
        self._h2 = self._h1
        self._h1 = self._ep_mask
        self._pattern = self._h1 | self._h2 | self._h3 or _K_RMC | _K_GGA  # nothing learnt yet: the usual pair
        self._ep_time = t
        self._ep_mask = 0
        self._ep_done = False
        self.gsa_fix = _EMPTY
        self.gsa_seen = False
        self.gsa_sats = 0
        self.gsa_hdop = _EMPTY
        self.vtg_kn = _EMPTY
        self.vtg_course = _EMPTY
        self.vtg_mode = 0
        self.rmc_time = _EMPTY
        self.gga_time = _EMPTY
        if self._date_days != _EMPTY:
            self._date_age += 1

    def _add(self, kind):
        self._ep_mask |= kind
        if kind == _K_RMC:
            self._date_age = 0
        p = self._pattern
        if not self._ep_done and p and self._ep_mask & p == p:
            self._judge()

    def _refuse(self, reason):
        self.refused[reason] += 1
        self.rejected += 1

    def _letter(self, m):
        # RMC/VTG mode letter: 0 ok, else a refusal reason
        if m == 0:
            return 0  # NMEA before 2.3: no mode field
        if m == 69:  # E estimated (dead reckoning)
            if self.accept_estimated:
                self._est = True
                return 0
            return R_ESTIMATED
        if m in self._modes:
            return 0
        if m == 77:
            return R_MANUAL
        if m == 83:
            return R_SIMULATED
        return R_MODE

    def _judge(self):
        self._ep_done = True
        m = self._ep_mask
        has_rmc = m & _K_RMC
        has_gga = m & _K_GGA
        if not (has_rmc or has_gga):
            return
        self._est = False
        t = self._ep_time
        if has_rmc:
            if self.rmc_status != 65:
                return self._refuse(R_STATUS)
            r = self._letter(self.rmc_mode)
            if r:
                return self._refuse(r)
        if m & _K_VTG:
            r = self._letter(self.vtg_mode)
            if r:
                return self._refuse(r)
        if has_gga:
            q = self.gga_quality
            if q == 6:
                if not self.accept_estimated:
                    return self._refuse(R_ESTIMATED)
                self._est = True
            elif q not in self._quality:
                return self._refuse(R_MANUAL if q == 7 else (R_SIMULATED if q == 8 else R_QUALITY))
        if has_gga:
            if not self.gga_pos:
                return self._refuse(R_POSITION)
            lat = self.gga_lat
            lon = self.gga_lon
        elif self.rmc_ok:
            lat = self.rmc_lat
            lon = self.rmc_lon
        else:
            return self._refuse(R_POSITION)
        dim = 2
        if m & _K_GSA:
            dim = self.gsa_fix
            if dim != 2 and dim != 3:
                return self._refuse(R_FIX_TYPE)
        sats = self.gga_sats if has_gga else _EMPTY
        if sats == _EMPTY and self.gsa_sats:
            sats = self.gsa_sats
        if not m & _K_GSA and has_gga and self.gga_alt != _EMPTY and sats >= self.min_sats_3d:
            dim = 3
        if sats != _EMPTY and sats < (self.min_sats_3d if dim == 3 else self.min_sats_2d):
            return self._refuse(R_SATS)
        if sats == _EMPTY and has_gga:
            return self._refuse(R_SATS)
        hdop = self.gga_hdop if has_gga else _EMPTY
        if hdop == _EMPTY:
            hdop = self.gsa_hdop
        if (hdop == _EMPTY and has_gga) or hdop > self.max_hdop:
            return self._refuse(R_HDOP)
        days = self.rmc_days if has_rmc else _EMPTY
        if days == _EMPTY:
            days = self._date_for(t)
        days = self._check_date(days)
        if days == _EMPTY:
            return self._refuse(R_DATE)
        # two Fix objects reused in turn (no allocation per fix): one line may close the
        # previous epoch and complete its own; the older waits in _fix, the newer in _next
        f = self._fixobj if self._fix is not self._fixobj else self._fixobj2
        f.unix = days * 86400 + t // 1000
        f.ms = t % 1000
        f.lat = to_e7(lat)
        f.lon = to_e7(lon)
        if has_rmc:
            f.speed_kn = self.rmc_speed
            f.course = self.rmc_course
        else:
            f.speed_kn = self.vtg_kn if self.vtg_kn != _EMPTY else 0
            f.course = self.vtg_course
        f.alt_cm = self.gga_alt if has_gga and self.gga_alt != _EMPTY else 0
        f.sats = sats if sats != _EMPTY else 0
        f.hdop = hdop if hdop != _EMPTY else 0
        f.fix = dim
        f.quality = self.gga_quality if has_gga else 0
        f.mode = self.rmc_mode if has_rmc else 0
        f.estimated = self._est
        self.fixes += 1
        if self._fix is None:
            self._fix = f
        else:
            self._next = f

    def _date_for(self, t):
        # an epoch without an RMC date: the last RMC's date (rolled over midnight), else the clock's
        if self._date_days != _EMPTY and self._date_age < _DATE_AGE_MAX:
            d = self._date_days
            tod = self._date_tod
        elif self.clock_days != _EMPTY:
            d = self.clock_days
            tod = self.clock_tod
        else:
            return _EMPTY
        if t - tod < -43200000:
            d += 1
        elif t - tod > 43200000:
            d -= 1
        return d

    def _check_date(self, days):
        # GPS week rollover: an old receiver's date is 1024 weeks (7168 days) behind
        if days == _EMPTY:
            return _EMPTY
        ref = self.clock_days
        floor = self._floor
        k = 1
        if ref != _EMPTY and ref >= floor:
            if days >= floor and not (-2 <= ref - days - 7168 <= 2 or -2 <= ref - days - 14336 <= 2):
                return days
            if days >= floor and not self._rollover_fix:
                return _EMPTY
            while k <= 3:
                if -2 <= ref - days - 7168 * k <= 2:
                    if not self._rollover_fix:
                        return _EMPTY
                    self.rollover += 1
                    return days + 7168 * k
                k += 1
            return _EMPTY if days < floor else days
        if days >= floor:
            return days
        if not self._rollover_fix:
            return _EMPTY
        while k <= 3:
            if days + 7168 * k >= floor:
                self.rollover += 1
                return days + 7168 * k
            k += 1
        return _EMPTY

    def set_clock(self, unix_s):
        """The device clock (unix seconds; 0 or None = unknown): dates GGA-only
        epochs and checks GNSS dates for week rollover."""
        if not unix_s or unix_s < 0:
            self.clock_days = _EMPTY
            return
        u = int(unix_s)
        self.clock_days = u // 86400
        self.clock_tod = u % 86400 * 1000


def _param(p, key, lo, hi):
    v = p.get(key, DEFAULTS[key])
    config.require(type(v) in (int, float) and lo <= v <= hi, "tracker." + key, "%r out of range %r..%r" % (v, lo, hi))
    return v


def to_e7(m):
    """Signed minutes * 1e5 -> 1e-7 degrees (m * 1e-5 / 60 * 1e7 = m * 5 / 3)."""
    a = -m if m < 0 else m
    v = a // 6000000 * 10000000 + ((a % 6000000) * 5 + 1) // 3
    return -v if m < 0 else v
