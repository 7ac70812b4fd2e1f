# The NMEA decoder under both runtimes: sentences, validity rules, and a
# 3,000-line mutated slice (the 110k-line fuzz runs under CPython in
# tests/tracker/test_tracker_nmea.py).
from roadedge.tracker import nmea

RMC = b"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A\r\n"
GGA = b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n"
GSA = b"$GPGSA,A,3,04,05,,09,12,,,24,,,,,2.5,1.3,2.1*39\r\n"
VTG = b"$GPVTG,054.7,T,034.4,M,005.5,N,010.2,K*48\r\n"


def _cs(body):
    c = 0
    for b in body:
        c ^= b
    return b"$" + body + b"*" + ("%02X" % c).encode()


def test_epoch_gives_one_fix():
    d = nmea.Decoder()
    assert d.feed(RMC) == nmea.RMC and d.take_fix() is None
    assert d.feed(GGA) == nmea.GGA
    f = d.take_fix()
    assert f is not None and d.take_fix() is None
    assert f.lat == 481173000 and f.lon == 115166667
    assert f.unix == 764426119 and f.speed_kn == 22400 and f.course == 8440
    assert f.sats == 8 and f.hdop == 90 and f.alt_cm == 54540 and f.fix == 3
    assert d.feed(GSA) == nmea.GSA and d.gsa_fix == 3 and d.gsa_pdop == 250
    assert d.feed(VTG) == nmea.VTG and d.vtg_kmh == 10200
    assert d.feed(GGA) == nmea.GGA and d.take_fix() is None  # same epoch only once


def test_rejections():
    d = nmea.Decoder(max_hdop=200)
    d.feed(_cs(b"GNRMC,000001.00,V,4807.038,N,01131.000,E,,,060180,,,N,V"))
    d.feed(_cs(b"GNGGA,000001.00,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"))
    assert d.take_fix() is None  # status V
    d.feed(_cs(b"GNRMC,000002.00,A,4807.038,N,01131.000,E,,,060180,,,N,V"))
    d.feed(_cs(b"GNGGA,000002.00,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"))
    assert d.take_fix() is None  # mode N
    d.feed(_cs(b"GNRMC,000003.00,A,4807.038,N,01131.000,E,,,060180,,,A,V"))
    d.feed(_cs(b"GNGGA,000003.00,4807.038,N,01131.000,E,1,08,2.5,545.4,M,46.9,M,,"))
    assert d.take_fix() is None  # HDOP 2.5 over 2.0
    d.feed(_cs(b"GNGSA,A,1,,,,,,,,,,,,,99.99,99.99,99.99,1"))
    d.feed(_cs(b"GNRMC,000004.00,A,4807.038,N,01131.000,E,,,060180,,,A,V"))
    d.feed(_cs(b"GNGGA,000004.00,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"))
    assert d.take_fix() is None  # GSA fix type 1
    d.feed(_cs(b"GNGSA,A,3,01,02,03,,,,,,,,,,1.5,0.9,1.2,1"))
    d.feed(_cs(b"GNRMC,000005.00,A,4807.038,S,01131.000,W,,,060180,,,A,V"))
    d.feed(_cs(b"GNGGA,000005.00,4807.038,S,01131.000,W,1,08,0.9,545.4,M,46.9,M,,"))
    f = d.take_fix()
    assert f is not None and f.lat == -481173000 and f.lon == -115166667 and f.unix == 315964805
    assert d.rejected >= 4


def test_garbage_counted():
    d = nmea.Decoder()
    d.feed(b"")
    d.feed(b"\x00\xff\xfe")
    d.feed(RMC[:30])
    d.feed(RMC.replace(b"4807", b"4806"))  # checksum mismatch
    d.feed(b"$GPRMC," + b"9" * 100 + b"*00")
    d.feed(b"$GPGSV,3,1,11,03,03,111,00,04,15,270,00,06,01,010,00,13,06,292,00*74")
    d.feed(_cs(b"GPRMC,12x519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W"))
    d.feed(_cs(b"GPRMC,123519,A,9107.038,N,01131.000,E,022.4,084.4,230394,003.1,W"))
    c = d.counters()
    assert c["garbage"] == 5 and c["bad_cs"] == 1 and c["too_long"] == 1 and c["unknown"] == 1, c
    assert c["internal"] == 0 and c["fixes"] == 0


def test_mutated_slice_never_raises_or_fixes_wrongly():
    rng = _Rng(5)
    d = nmea.Decoder(max_hdop=500)
    base = [RMC, GGA, GSA, VTG]
    n = 0
    for i in range(3000):
        line = bytearray(base[i % 4])
        for _ in range(rng.randint(0, 3)):
            line[rng.randrange(len(line))] = rng.getrandbits(8)
        if rng.random() < 0.5:  # re-checksum so damage reaches the field parsers
            star = bytes(line).find(b"*")
            if star > 1:
                line = bytearray(_cs(bytes(line[1:star])))
        d.feed(bytes(line))
        f = d.take_fix()
        if f is not None:
            n += 1
            assert -900000000 <= f.lat <= 900000000 and -1800000000 <= f.lon <= 1800000000
            assert f.hdop <= 500 and f.sats >= 0
    assert d.lines == 3000 and d.internal == 0, d.counters()


class _Rng:
    """Tiny LCG: MicroPython's random has no Random class."""

    def __init__(self, seed):
        self.s = seed

    def getrandbits(self, n):
        self.s = (self.s * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.s >> 8) & ((1 << n) - 1)

    def randrange(self, n):
        return self.getrandbits(20) % n

    def randint(self, a, b):
        return a + self.randrange(b - a + 1)

    def random(self):
        return self.getrandbits(20) / 1048576
