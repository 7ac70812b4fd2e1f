# A tracker report as stored in the flash ring (fixed 32-byte struct) and as
# published (OwnTracks location JSON plus roadedge fields). Coordinates stay
# 1e-7 degree integers end to end and are printed with integer formatting:
# rp2/esp32 floats are single precision (~1 m at 180 degrees).
import struct

from roadedge.tracker import reporting

# seq, tst, lat, lon, alt_cm, vel (0.1 km/h), cog (0.1 deg, 0xFFFF unknown),
# hdop (0.01), sats, fix, batt (%, 255 unknown), flags, acc (m)
FMT = "<IIiiiHHHBBBBH"
SIZE = struct.calcsize(FMT)  # 32

F_SOS = 0x01
F_IGN = 0x02
_REASON_SHIFT = 4

UERE_M = 5  # user equivalent range error: acc ~ HDOP x 5 m (civil L1)


class Report:
    __slots__ = ("seq", "tst", "lat", "lon", "alt_cm", "vel", "cog", "hdop", "sats", "fix", "batt", "flags", "acc")

    def __init__(self, seq=0, tst=0, lat=0, lon=0, alt_cm=0, vel=0, cog=-1, hdop=0, sats=0, fix=0, batt=-1,
                 sos=False, ign=False, reason=0, acc=None):
        self.seq = seq
        self.tst = tst
        self.lat = lat
        self.lon = lon
        self.alt_cm = alt_cm
        self.vel = vel
        self.cog = cog
        self.hdop = hdop
        self.sats = sats
        self.fix = fix
        self.batt = batt
        self.flags = (F_SOS if sos else 0) | (F_IGN if ign else 0) | ((reason & 0x0F) << _REASON_SHIFT)
        self.acc = (hdop * UERE_M + 50) // 100 if acc is None else acc

    @property
    def reason(self):
        return self.flags >> _REASON_SHIFT

    @property
    def sos(self):
        return bool(self.flags & F_SOS)

    @property
    def ign(self):
        return bool(self.flags & F_IGN)

    def pack(self):
        return struct.pack(FMT, self.seq & 0xFFFFFFFF, self.tst & 0xFFFFFFFF, self.lat, self.lon,
                           _clamp(self.alt_cm, -2147483648, 2147483647), _clamp(self.vel, 0, 65535),
                           0xFFFF if self.cog < 0 else _clamp(self.cog, 0, 3599), _clamp(self.hdop, 0, 65535),
                           _clamp(self.sats, 0, 255), _clamp(self.fix, 0, 255),
                           255 if self.batt < 0 else _clamp(self.batt, 0, 100), self.flags & 0xFF,
                           _clamp(self.acc, 0, 65535))

    def __eq__(self, other):
        return isinstance(other, Report) and self.pack() == other.pack()


def from_fix(fix, seq, batt, sos, ign, reason):
    """Report from an nmea.Fix."""
    cog = -1 if fix.course < 0 else (fix.course + 5) // 10
    if cog >= 3600:
        cog -= 3600
    return Report(seq, fix.unix, fix.lat, fix.lon, fix.alt_cm, fix.speed_kmh10(), cog, fix.hdop, fix.sats,
                  fix.fix, batt, sos, ign, reason)


def unpack(data):
    """Report from 32 stored bytes; ValueError on a wrong size."""
    if len(data) != SIZE:
        raise ValueError("record of %d bytes, expected %d" % (len(data), SIZE))
    v = struct.unpack(FMT, data)
    r = Report()
    r.seq, r.tst, r.lat, r.lon, r.alt_cm, r.vel, cog, r.hdop, r.sats, r.fix, batt, r.flags, r.acc = v
    r.cog = -1 if cog == 0xFFFF else cog
    r.batt = -1 if batt == 255 else batt
    return r


def _clamp(v, lo, hi):
    return lo if v < lo else (hi if v > hi else v)


def e7_str(v):
    """1e-7 degree integer as a decimal string, no float involved."""
    s = "-" if v < 0 else ""
    v = -v if v < 0 else v
    return "%s%d.%07d" % (s, v // 10000000, v % 10000000)


def owntracks_json(r, tid, live, now_s=0):
    """OwnTracks 'location' JSON text. OwnTracks fields: _type lat lon tst acc
    alt vel (km/h) cog batt tid t (trigger: 't' timer, 'u' user/SOS, 'v'
    movement). Ours: seq (dedupe key with the device id), sat, hdop, fix
    (2/3 D), live (false = catch-up from the flash ring), why, sos, ign, and
    created_at when a catch-up report is sent later than it was made."""
    reason = r.reason
    trig = "u" if reason == reporting.SOS else ("t" if reason in (reporting.TIME, reporting.FIRST,
                                                                  reporting.EMERGENCY) else "v")
    parts = ['{"_type":"location","tid":"%s","lat":%s,"lon":%s,"tst":%d,"acc":%d,"alt":%d,"vel":%d' % (
        tid, e7_str(r.lat), e7_str(r.lon), r.tst, r.acc, _div_round(r.alt_cm, 100), _div_round(r.vel, 10))]
    if r.cog >= 0:
        parts.append(',"cog":%d' % (_div_round(r.cog, 10) % 360))
    if r.batt >= 0:
        parts.append(',"batt":%d' % r.batt)
    parts.append(',"t":"%s","seq":%d,"sat":%d,"hdop":%d.%02d,"fix":%d,"live":%s,"why":"%s","sos":%d,"ign":%d' % (
        trig, r.seq, r.sats, r.hdop // 100, r.hdop % 100, r.fix, "true" if live else "false",
        reporting.REASONS[reason] if reason < len(reporting.REASONS) else "", 1 if r.sos else 0, 1 if r.ign else 0))
    if not live and now_s:
        parts.append(',"created_at":%d' % now_s)
    parts.append("}")
    return "".join(parts)


def _div_round(v, d):
    return (v + d // 2) // d if v >= 0 else -((-v + d // 2) // d)
