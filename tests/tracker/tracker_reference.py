"""Host-side reference for the tracker acceptance tests: which fixes a
receiver's NMEA yields (read with pynmea2, not the firmware decoder) and which
of them the domain's smart-reporting rules select (written again here from
the domain sheet, not imported from the firmware)."""
from __future__ import annotations

import calendar
import math
from pathlib import Path

import pynmea2

from sim.peripherals import gnss

# Domain sheet defaults ("Patrol tracker practice")
MIN_PERIOD, MAX_PERIOD, MIN_DIST, HEADING, SPEED = 5, 300, 100.0, 10.0, 10.0
STOP_KMH, STOP_AFTER, STOP_PERIOD, HEADING_MIN_KMH = 5.0, 120, 3600, 5.0
MAX_HDOP = 5.0


def write_nmea(path: Path, module: gnss.GnssModule, t0: float, t1: float) -> None:
    with open(path, "w", newline="") as f:
        for _t, s in module.lines(t0, t1):
            f.write(s + "\r\n")


def receiver_fixes(path: Path) -> list[dict]:
    """Valid epochs as pynmea2 reads them: an epoch is the sentences of one time of day (a GSA belongs to
    the epoch open when it arrives); RMC and GGA both present, RMC status A / mode not N, GGA quality
    1/2/4/5, >= 4 satellites, HDOP <= limit, the epoch's own GSA (if any) fix >= 2."""
    out: list[dict] = []
    ep: dict = {}

    def close() -> None:
        rmc, gga, gsa_fix = ep.get("RMC"), ep.get("GGA"), ep.get("GSA")
        if rmc is None or gga is None:
            return
        ok = (rmc.status == "A" and getattr(rmc, "mode_indicator", "A") != "N" and (gga.gps_qual or 0) in (1, 2, 4, 5)
              and gga.num_sats and int(gga.num_sats) >= 4
              and gga.horizontal_dil and float(gga.horizontal_dil) <= MAX_HDOP and (gsa_fix is None or gsa_fix >= 2)
              and rmc.datestamp and rmc.lat)
        if not ok:
            return
        t = calendar.timegm(rmc.datestamp.timetuple()) + rmc.timestamp.hour * 3600 + rmc.timestamp.minute * 60 \
            + rmc.timestamp.second
        kn_milli = round((rmc.spd_over_grnd or 0) * 1000)
        out.append({"t": t, "lat": rmc.latitude, "lon": rmc.longitude, "kmh": (kn_milli * 1852 + 50000) // 100000 / 10,
                    "cog": rmc.true_course})

    for raw in open(path, encoding="latin-1"):
        try:
            m = pynmea2.parse(raw.strip(), check=True)
        except (pynmea2.ParseError, ValueError, AttributeError):
            continue
        if isinstance(m, pynmea2.GSA):
            if "t" in ep:
                ep["GSA"] = int(m.mode_fix_type) if m.mode_fix_type else -1
            continue
        if not isinstance(m, (pynmea2.RMC, pynmea2.GGA)) or m.timestamp is None:
            continue
        if ep.get("t") != m.timestamp:
            close()
            ep = {"t": m.timestamp}
        ep[m.sentence_type] = m
    close()
    return out


def _dist(a: dict, b: dict) -> float:
    k = math.cos(math.radians((a["lat"] + b["lat"]) / 2))
    dy = (b["lat"] - a["lat"]) * 111319.49
    dx = (b["lon"] - a["lon"]) * 111319.49 * k
    return math.hypot(dx, dy)


def select(fixes: list[dict]) -> list[tuple[int, str]]:
    """(tst, reason) of every fix the rules report."""
    out: list[tuple[int, str]] = []
    last = None
    last_cog = None
    slow_since = None
    stopped = False
    for f in fixes:
        t, v = f["t"], f["kmh"]
        change = None
        if v < STOP_KMH:
            slow_since = t if slow_since is None else slow_since
            if not stopped and t - slow_since > STOP_AFTER:
                stopped, change = True, "stop"
        else:
            slow_since = None
            if stopped:
                stopped, change = False, "start"
        why = None
        if last is None:
            why = "first"
        elif t - last["t"] < MIN_PERIOD:
            if change:  # not reported yet: try again at the next fix
                stopped = not stopped
        elif change:
            why = change
        elif stopped:
            why = "time" if t - last["t"] >= STOP_PERIOD else None
        elif t - last["t"] >= MAX_PERIOD:
            why = "time"
        elif _dist(last, f) >= MIN_DIST:
            why = "distance"
        elif (f["cog"] is not None and last_cog is not None and v >= HEADING_MIN_KMH
              and abs((f["cog"] - last_cog + 180) % 360 - 180) >= HEADING - 1e-9):
            why = "heading"
        elif abs(v - last["kmh"]) >= SPEED - 1e-9:
            why = "speed"
        if why:
            out.append((f["t"], why))
            last = f
            if f["cog"] is not None:
                last_cog = f["cog"]
    return out
