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


def _p(**kw):
    # the textbook sentences carry 1980s-1990s dates: take them as they are
    p = dict(nmea.DEFAULTS)
    p["gnss_not_before"] = "1980-01-06"
    p.update(kw)
    return p


def _run(d, lines):
    """Feed lines; the fixes (copied: the Fix object is reused)."""
    out = []
    for ln in lines:
        d.feed(ln)
        f = d.take_fix()
        while f is not None:  # a line may close two epochs' fixes
            out.append((f.unix, f.lat, f.lon, f.sats, f.hdop, f.fix, f.estimated))
            f = d.take_fix()
    return out


RMC_B = "GNRMC,%s,A,4807.038,N,01131.000,E,0.5,84.4,151126,,,A,V"
GGA_B = "GNGGA,%s,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"
GSA_B = "GNGSA,A,3,04,05,09,12,17,,,,,,,,1.5,0.9,1.2,1"


def _epoch(t, rmc=None, gga=None, gsa=None):
    out = []
    for body in (rmc if rmc is not None else RMC_B, gga if gga is not None else GGA_B,
                 gsa if gsa is not None else GSA_B):
        if body:
            out.append(_cs((body % t if "%s" in body else body).encode()))
    return out


def _second_epoch(params, **kw):
    """Fixes of a good epoch then the epoch under test (the first teaches the burst)."""
    d = nmea.Decoder(params)
    fixes = _run(d, _epoch("120000.00") + _epoch("120001.00", **kw))
    return fixes[1:], d


def test_epoch_gives_one_fix():
    d = nmea.Decoder(_p())
    assert d.feed(RMC) == nmea.RMC and d.take_fix() is None
    assert d.feed(GGA) == nmea.GGA  # burst not yet learnt: RMC + GGA make an epoch
    f = d.take_fix()
    assert f is not None and d.take_fix() is None
    assert d.feed(GSA) == nmea.GSA and d.feed(VTG) == nmea.VTG
    assert f.lat == 481173000 and f.lon == 115166667
    assert f.unix == 764426119 and f.speed_kn == 22400 and f.course == 8440
    assert f.sats == 8 and f.hdop == 90 and f.alt_cm == 54540 and f.fix == 3
    assert d.gsa_pdop == 250 and d.vtg_kmh == 10200


def test_rejections_and_legal_neighbours():
    p = _p(max_hdop=2.0)
    cases = [  # (rule, refused epoch, legal neighbour)
        ("status", {"rmc": RMC_B.replace(",A,4807", ",V,4807")}, {}),
        ("mode", {"rmc": RMC_B.replace(",,,A,V", ",,,N,V")}, {"rmc": RMC_B.replace(",,,A,V", ",,,D,V")}),
        ("estimated", {"rmc": RMC_B.replace(",,,A,V", ",,,E,V")}, {"rmc": RMC_B.replace(",,,A,V", ",,,A")}),
        ("manual", {"rmc": RMC_B.replace(",,,A,V", ",,,M,V")}, {"rmc": RMC_B.replace(",,,A,V", ",,")}),
        ("simulated", {"rmc": RMC_B.replace(",,,A,V", ",,,S,V")}, {"rmc": RMC_B.replace(",,,A,V", ",,,R,V")}),
        ("quality", {"gga": GGA_B.replace(",E,1,08", ",E,0,08")}, {"gga": GGA_B.replace(",E,1,08", ",E,2,08")}),
        ("quality", {"gga": GGA_B.replace(",E,1,08", ",E,3,08")}, {"gga": GGA_B.replace(",E,1,08", ",E,4,08")}),
        ("estimated", {"gga": GGA_B.replace(",E,1,08", ",E,6,08")}, {"gga": GGA_B.replace(",E,1,08", ",E,5,08")}),
        ("manual", {"gga": GGA_B.replace(",E,1,08", ",E,7,08")}, {}),
        ("simulated", {"gga": GGA_B.replace(",E,1,08", ",E,8,08")}, {}),
        ("fix_type", {"gsa": GSA_B.replace("A,3,", "A,1,")}, {"gsa": GSA_B.replace("A,3,", "A,2,")}),
        ("sats", {"gga": GGA_B.replace(",1,08,", ",1,03,")}, {"gga": GGA_B.replace(",1,08,", ",1,04,")}),
        ("sats", {"gga": GGA_B.replace(",1,08,", ",1,00,")}, {}),
        ("sats", {"gga": GGA_B.replace(",1,08,", ",1,02,"), "gsa": GSA_B.replace("A,3,", "A,2,")},
         {"gga": GGA_B.replace(",1,08,", ",1,03,"), "gsa": GSA_B.replace("A,3,", "A,2,")}),
        ("hdop", {"gga": GGA_B.replace(",0.9,", ",2.1,")}, {"gga": GGA_B.replace(",0.9,", ",2.0,")}),
        ("position", {"gga": GGA_B.replace("4807.038,N", ","), "rmc": RMC_B.replace("4807.038,N", ",")}, {}),
    ]
    for rule, bad, good in cases:
        fixes, d = _second_epoch(p, **bad)
        assert fixes == [], (rule, bad, fixes)
        assert d.counters()["refused"][rule] == 1 and d.rejected == 1, (rule, d.counters())
        fixes, d = _second_epoch(p, **good)
        assert len(fixes) == 1 and d.rejected == 0, (rule, good, d.counters())


def test_estimated_accepted_and_flagged_when_configured():
    fixes, d = _second_epoch(_p(gnss_accept_estimated=True), gga=GGA_B.replace(",E,1,08", ",E,6,08"))
    assert len(fixes) == 1 and fixes[0][6] is True and d.rejected == 0


def test_single_sentence_receivers():
    d = nmea.Decoder(_p())
    fx = _run(d, [_cs((RMC_B % t).encode()) for t in ("120000.00", "120001.00", "120002.00")])
    assert len(fx) == 3 and fx[0][5] == 2  # RMC alone: 2D, no sats or HDOP to check
    d = nmea.Decoder(_p())
    fx = _run(d, [_cs((GGA_B % t).encode()) for t in ("120000.00", "120001.00")])
    assert fx == [] and d.refused[nmea.R_DATE] == 2  # GGA alone, no date anywhere
    d.set_clock(1795000000)  # 2026-11-18
    fx = _run(d, [_cs((GGA_B % t).encode()) for t in ("120002.00", "120003.00")])
    assert [f[0] for f in fx] == [1795003202, 1795003203] and fx[0][5] == 3
    # RMC every third epoch: GGA epochs take its date, across midnight too
    d = nmea.Decoder(_p())
    lines = [_cs((RMC_B % "235958.00").encode())]
    for t in ("235958.00", "235959.00", "000000.00", "000001.00"):
        lines.append(_cs((GGA_B % t).encode()))
    fx = _run(d, lines)
    assert [f[0] for f in fx] == [1794787198, 1794787199, 1794787200]


def test_gsa_counts_only_for_its_own_epoch():
    d = nmea.Decoder(_p())
    lines = _epoch("120000.00") + _epoch("120001.00", gsa=GSA_B.replace("A,3,", "A,1,"))
    lines += _epoch("120002.00", gsa="")  # this epoch sends no GSA: the old fix type 1 is not used
    lines += _epoch("120003.00", gsa="") + _epoch("120004.00", gsa="")[:1]  # (the next epoch closes the last)
    fx = _run(d, lines)
    assert len(fx) == 3 and d.refused[nmea.R_FIX_TYPE] == 1, d.counters()


def test_week_rollover():
    # no clock: a date before gnss_not_before is moved on by 1024 weeks
    d = nmea.Decoder(_p(gnss_not_before="2024-01-01"))
    old = RMC_B.replace("151126", "020406")  # 2006-04-02 from a receiver in 2025
    fx = _run(d, _epoch("120000.00", rmc=old) + _epoch("120001.00", rmc=old))
    assert fx and fx[0][0] // 86400 == nmea.days_from_civil(2025, 11, 16) and d.rollover >= 1
    # the device clock says 2019-04-07: the famous 1999-08-22 is corrected to it
    d = nmea.Decoder(_p(gnss_not_before="2019-01-01"))
    d.set_clock(nmea.days_from_civil(2019, 4, 7) * 86400 + 43200)
    old = RMC_B.replace("151126", "220899")
    fx = _run(d, _epoch("120000.00", rmc=old) + _epoch("120001.00", rmc=old))
    assert fx and fx[0][0] // 86400 == nmea.days_from_civil(2019, 4, 7)
    # a clock that matches no rollover: refused
    d.set_clock(nmea.days_from_civil(2020, 6, 1) * 86400)
    fx = _run(d, _epoch("120002.00", rmc=old) + _epoch("120003.00", rmc=old))
    assert fx == [] and d.refused[nmea.R_DATE] >= 1
    # policy refuse; and the legal neighbour: a current date passes untouched
    fx, d = _second_epoch(_p(gnss_not_before="2024-01-01", gnss_week_rollover="refuse"), rmc=old)
    assert fx == [] and d.refused[nmea.R_DATE] == 1
    fx, d = _second_epoch(_p(gnss_not_before="2024-01-01", gnss_week_rollover="refuse"))
    assert len(fx) == 1 and d.rollover == 0


def test_framing_binary_long_lines_field_counts():
    d = nmea.Decoder(_p())
    body = b"GNGGA,120000.00,4807.0380123,N,01131.0000456,E,1,08,0.9,545.4,M,46.9,M,,,extra,fields,here"
    long = b"\xb5b\x01\x07\x5c\x00$\x00 " + _cs(body) + b"\r\n"
    assert len(_cs(body)) > 82 and d.feed(long) == nmea.GGA and d.resync == 1
    assert d.feed(b"  " + _cs(b"GNRMC,120000.00,A,4807.038,N,01131.000,E,0.5,84.4,151126")) == nmea.RMC
    gsa = "GNGSA,A,3" + ",%02d" * 24 % tuple(range(1, 25)) + ",1.5,0.9,1.2"
    assert d.feed(_cs(gsa.encode())) == nmea.GSA and d.gsa_hdop == 90 and d.bad_checksum == 0
    assert d.feed(_cs(b"GNGGA,120001.00,4807.038,N,01131.000,E,1,08,0.9")) == nmea.GGA  # fields dropped


def test_garbage_counted():
    d = nmea.Decoder(_p(nmea_max_len=82))
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


def test_fuzz_100k_mutated_lines_no_exception_no_heap_growth():
    # 100,000 lines of the corpus with bytes damaged (half re-checksummed so the damage reaches the field
    # parsers), in one process; under MicroPython the live heap must not grow (the CPython test in
    # tests/tracker checks every fix against pynmea2 and the rules)
    import gc

    rng = _Rng(5)
    d = nmea.Decoder(_p(max_hdop=5.0))
    f = open(_corpus_dir() + "receivers.nmea", "rb")
    base = [ln for ln in f if not ln.startswith(b"#")]
    f.close()
    buf = bytearray(160)
    gc.collect()
    try:
        a0 = gc.mem_alloc()  # type: ignore[attr-defined]
    except AttributeError:
        a0 = -1
    n = 0
    for i in range(100000):
        src = base[i % len(base)]
        m = len(src)
        buf[:m] = src
        for _ in range(rng.randint(0, 3)):
            buf[rng.randrange(m)] = rng.getrandbits(8)
        line = bytes(buf[:m])
        if rng.random() < 0.5:  # re-checksum so damage reaches the field parsers
            s0 = line.rfind(b"$")
            star = line.find(b"*", s0 + 1)
            if s0 >= 0 and star > s0 + 1:
                line = line[:s0] + _cs(line[s0 + 1:star])
        d.feed(line)
        fx = d.take_fix()
        while fx is not None:
            n += 1
            assert -900000000 <= fx.lat <= 900000000 and -1800000000 <= fx.lon <= 1800000000
            assert fx.hdop <= 500 and (fx.sats == 0 or fx.sats >= 3) and fx.fix in (2, 3)
            fx = d.take_fix()
        line = None
        if i == 999 and a0 >= 0:
            gc.collect()
            a0 = gc.mem_alloc()  # type: ignore[attr-defined]  (after the first-call allocations)
    assert d.lines == 100000 and d.internal == 0 and n > 100, (n, d.counters())
    if a0 >= 0:
        gc.collect()
        assert gc.mem_alloc() <= a0 + 256, (a0, gc.mem_alloc())  # type: ignore[attr-defined]


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


def _corpus_dir():
    here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    return here + "/../tracker/corpus/"


def test_receiver_corpus_gives_the_expected_fixes():
    # tests/tracker/corpus: eight receiver families (u-blox, Quectel, SkyTraq, SiRF, Garmin, BeiDou-only,
    # Septentrio, NovAtel), written by make_corpus.py with the fixes each must give
    import json

    f = open(_corpus_dir() + "expected.json")
    expected = json.load(f)
    f.close()
    fams = {}
    name = None
    f = open(_corpus_dir() + "receivers.nmea", "rb")
    for ln in f:
        if ln.startswith(b"# "):
            name = ln[2:].strip().decode()
            fams[name] = []
        else:
            fams[name].append(ln)
    f.close()
    assert len(fams) >= 8 and sorted(fams) == sorted(expected)
    for name in fams:
        d = nmea.Decoder(nmea.DEFAULTS)
        got = _run(d, fams[name])
        exp = expected[name]
        assert len(got) == len(exp), (name, got, exp, d.counters())
        for g, e in zip(got, exp):
            assert g[0] == e[0] and abs(g[1] - e[1]) <= 200 and abs(g[2] - e[2]) <= 200, (name, g, e)
        assert d.internal == 0 and d.bad_checksum == 0 and d.garbage == 0, (name, d.counters())
