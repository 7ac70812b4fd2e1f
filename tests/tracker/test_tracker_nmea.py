"""The firmware NMEA decoder against pynmea2: a multi-receiver corpus field by
field, and >=100,000 random and mutated lines (no exception escapes, no
invalid fix is ever accepted). Runs under CPython for speed; the MicroPython
slice is tests/firmware/fw_tracker_nmea.py."""
from __future__ import annotations

import random

import pynmea2
import pytest

from host_tools import fw
from sim.peripherals import gnss
from tracker_nmea_ref import decoder_reading, e7, reading, sentence

fw.ensure_firmware_importable()
from roadedge.tracker import nmea  # noqa: E402

KINDS = {nmea.RMC: pynmea2.RMC, nmea.GGA: pynmea2.GGA, nmea.GSA: pynmea2.GSA, nmea.VTG: pynmea2.VTG}

# Sentences as real modules print them (bodies; checksums computed): u-blox M8/M10
# (NMEA 4.1 nav status, GSA system id), Quectel L76 (2.3 mode), SiRF IV (2.2),
# BeiDou/Galileo-only modules, empty fields while acquiring.
REAL = [
    "GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W",
    "GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,",
    "GPGSA,A,3,04,05,,09,12,,,24,,,,,2.5,1.3,2.1",
    "GPVTG,054.7,T,034.4,M,005.5,N,010.2,K",
    "GNRMC,083559.00,A,4717.11437,N,00833.91522,E,0.004,77.52,091202,,,A,V",
    "GNGGA,092725.00,4717.11399,N,00833.91590,E,1,08,1.01,499.6,M,48.0,M,,",
    "GNGSA,A,3,23,29,07,08,09,18,26,,,,,,1.94,1.18,1.54,1",
    "GNVTG,77.52,T,,M,0.004,N,0.008,K,A",
    "GNRMC,000001.00,V,,,,,,,060180,,,N,V",
    "GNGGA,000001.00,,,,,0,00,99.99,,,,,,",
    "GNGSA,A,1,,,,,,,,,,,,,99.99,99.99,99.99,1",
    "GNVTG,,,,,,,,,N",
    "GPRMC,013732.000,A,3150.7238,N,11711.7278,E,0.00,0.00,220413,,,A",
    "GPGGA,013732.000,3150.7238,N,11711.7278,E,1,5,1.98,69.3,M,0.0,M,,",
    "GPGGA,161229.487,3723.2475,N,12158.3416,W,1,07,1.0,9.0,M,,,,0000",
    "GPRMC,161229.487,A,3723.2475,N,12158.3416,W,0.13,309.62,120598,,",
    "GPGSA,A,3,07,02,26,27,09,04,15,,,,,,1.8,1.0,1.5",
    "BDGSA,A,3,201,202,203,206,207,,,,,,,,2.1,1.2,1.7",
    "GBRMC,111920.000,A,2232.6066,N,11404.8184,E,0.45,301.03,150722,,,A,V",
    "GAGGA,111920.000,2232.6066,N,11404.8184,E,6,04,3.10,51.2,M,-2.3,M,,",
    "GLGSA,A,2,65,66,72,,,,,,,,,,3.1,2.4,2.0",
    "GPGGA,235959.999,0000.0000,S,00000.0000,W,2,12,0.8,-12.5,M,-30.1,M,2.0,0136",
    "GPRMC,235959.999,A,0000.0000,S,00000.0000,W,1.5,359.99,311299,,,D",
]


def _corpus() -> list[str]:
    return [sentence(b) for b in REAL] + gnss.corpus(400, seed=11)


def _params(**kw):
    p = dict(nmea.DEFAULTS)
    p["gnss_not_before"] = "1980-01-06"  # corpus dates span 1994-2033: take them as they are
    p.update(kw)
    return p


def test_corpus_every_field_matches_pynmea2():
    d = nmea.Decoder(_params())
    talkers, kinds = set(), set()
    for line in _corpus():
        msg = pynmea2.parse(line, check=True)
        kind = d.feed(line.encode() + b"\r\n")
        if line[3:6] == "GLL":  # not used by the tracker: counted as unknown, skipped
            assert kind == nmea.NONE
            continue
        assert kind in KINDS and isinstance(msg, KINDS[kind]), line
        ref = reading(msg)
        mine = decoder_reading(d, ref.keys())
        for k in ref:
            if k.endswith(("_lat", "_lon")):  # 1e-7 deg integers; allow the rounding of the last unit
                assert abs(mine[k] - ref[k]) <= 1, (line, k, mine[k], ref[k])
            else:
                assert mine[k] == ref[k], (line, k, mine[k], ref[k])
        talkers.add(line[1:3])
        kinds.add(line[3:6])
    assert {"GP", "GN", "GL", "BD", "GB", "GA"} <= talkers
    assert kinds == {"RMC", "GGA", "GSA", "VTG"}
    assert d.garbage == 0 and d.bad_checksum == 0 and d.internal == 0 and d.unknown > 0


def test_epoch_fix_values_and_hdop_rejection():
    d = nmea.Decoder(_params())
    g = gnss.GnssModule(lambda t: gnss.Truth(-33.8688, 151.2093, 10.0, 45.0, 58.0), style="quectel", hdop=1.2)
    for line in g.epoch(9) + g.epoch(10) + g.epoch(11)[:1]:
        d.feed(line.encode())
        f = d.take_fix() or locals().get("f")
    assert f is not None and d.take_fix() is None
    assert abs(f.lat - e7(-33.8688)) <= 20 and abs(f.lon - e7(151.2093)) <= 20  # 4 decimal minutes
    assert f.sats == 11 and f.hdop == 120 and f.fix == 3 and f.alt_cm == 5800
    assert f.unix in (int(g.start_unix + 9), int(g.start_unix + 10))
    bad = gnss.GnssModule(lambda t: gnss.Truth(1, 1, 0, 0), style="ublox", hdop=6.0)
    d = nmea.Decoder(_params())
    for line in bad.epoch(11) + bad.epoch(12):
        d.feed(line.encode())
    assert d.take_fix() is None and d.rejected >= 1


def _mutate(rng: random.Random, line: str) -> str:
    body = line[1: line.index("*")]
    r = rng.random()
    if r < 0.55:  # field-level damage behind a *valid* checksum: reaches the field parsers
        f = body.split(",")
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(f))
            op = rng.randrange(7)
            if op == 0:
                f[i] = ""
            elif op == 1:
                f[i] = "".join(rng.choice("0123456789.-+ENSWAVMK,x") for _ in range(rng.randint(1, 12)))
            elif op == 2 and f[i]:
                j = rng.randrange(len(f[i]))
                f[i] = f[i][:j] + rng.choice("0123456789.") + f[i][j + 1:]
            elif op == 3:
                f.insert(i, rng.choice(("", "0", "A", "99.9")))
            elif op == 4 and len(f) > 1:
                del f[i]
            elif op == 5:
                f[i] = rng.choice(("A", "V", "N", "0", "1", "3", "9999999999", "-1", "7", "99.99", "4807.038", "24061"))
            else:
                f[i] = f[i] * 2
        return sentence(",".join(f))
    if r < 0.70:  # byte damage, checksum left stale
        s = list(line)
        for _ in range(rng.randint(1, 4)):
            s[rng.randrange(len(s))] = chr(rng.randrange(0, 256))
        return "".join(s)
    if r < 0.80:
        return line[: rng.randrange(len(line))]
    if r < 0.88:
        return line + line[rng.randrange(len(line)):]
    if r < 0.95:
        return "".join(chr(rng.randrange(0, 256)) for _ in range(rng.randrange(0, 120)))
    return gnss.garbage_line(rng)


def _check_fix(f, epoch: dict, max_hdop: int, d=None) -> None:
    """The fix's epoch (its RMC and GGA, by time of day) would pass every rule."""
    rmc, gga = epoch.get("RMC"), epoch.get("GGA")
    assert rmc or gga, f
    if rmc:
        m = pynmea2.parse(rmc, check=True)
        assert m.status == "A" and (getattr(m, "mode_indicator", "") or "A") in "ADPRF", rmc
    if gga:
        m = pynmea2.parse(gga, check=True)
        assert m.gps_qual in (1, 2, 4, 5) and (int(m.num_sats) if m.num_sats else f.sats) >= 3, gga  # else GSA's count
        assert (not m.horizontal_dil or float(m.horizontal_dil) * 100 <= max_hdop + 1e-9) and f.hdop <= max_hdop, (gga, rmc, f)
        assert abs(f.lat - e7(m.latitude)) <= 1 and abs(f.lon - e7(m.longitude)) <= 1
    assert f.sats == 0 or f.sats >= 3
    assert -900000000 <= f.lat <= 900000000 and -1800000000 <= f.lon <= 1800000000


@pytest.mark.parametrize("seed", [1, 2])
def test_fuzz_100k_lines_no_exception_no_invalid_fix(seed):
    rng = random.Random(seed)
    base = _corpus()
    d = nmea.Decoder(_params())
    epochs: dict = {}  # time-of-day ms -> {kind: line}
    fixes = 0
    n = 55_000
    pos = 0
    for _ in range(n):
        # mostly in order (epochs stay together so fixes can form), sometimes a jump
        pos = rng.randrange(len(base)) if rng.random() < 0.05 else (pos + 1) % len(base)
        src = base[pos]
        line = src if rng.random() < 0.4 else _mutate(rng, src)
        raw = line.encode("latin-1", "replace")
        opened = d._ep_time
        kind = d.feed(raw)
        if d._ep_time != opened:  # the decoder began an epoch: its sentences start afresh
            epochs[d._ep_time] = {}
        if kind in (nmea.RMC, nmea.GGA):
            t = d.rmc_time if kind == nmea.RMC else d.gga_time
            if t >= 0:
                txt = raw.decode("latin-1")
                # the first of each kind with that time: later ones arrive after the epoch was judged
                epochs.setdefault(t, {}).setdefault("RMC" if kind == nmea.RMC else "GGA", txt[txt.rindex("$"):].strip())
        f = d.take_fix()
        while f is not None:
            fixes += 1
            _check_fix(f, epochs.get(f.unix % 86400 * 1000 + f.ms, {}), 500, d)
            f = d.take_fix()
        if len(epochs) > 64:
            epochs.pop(next(iter(epochs)))
    assert d.lines == n and d.internal == 0, d.counters()
    c = d.counters()
    assert c["bad_cs"] > 500 and c["garbage"] > 1000 and c["too_long"] > 10, c
    assert fixes > 300  # valid epochs still get through


@pytest.mark.parametrize("key,value", [("gnss_modes", "AX"), ("gnss_week_rollover", "maybe"), ("gnss_min_sats_3d", 1),
                                       ("gnss_quality", [6]), ("gnss_not_before", "2024-13-01"), ("max_hdop", -1)])
def test_bad_validity_config_is_refused_by_flash_checks_and_by_the_device(key, value):
    import json
    from pathlib import Path

    from host_tools.config import validate
    from roadedge.core.config import ConfigError

    cfg = json.loads((Path(__file__).resolve().parents[2] / "board_configs" / "sim-tracker.json").read_text())
    cfg.setdefault("tracker", {})[key] = value
    _, problems = validate.check(cfg, "t.json", literal_secrets_ok=True)
    assert any(p.field.startswith(f"tracker.{key}") and not p.warning for p in problems), problems
    with pytest.raises(ConfigError) as e:
        nmea.Decoder(_params(**{key: value}))
    assert e.value.field == f"tracker.{key}"
    cfg["tracker"][key] = nmea.DEFAULTS[key]  # the legal neighbour: the default
    _, problems = validate.check(cfg, "t.json", literal_secrets_ok=True)
    assert not [p for p in problems if not p.warning and p.field.startswith("tracker")], problems
