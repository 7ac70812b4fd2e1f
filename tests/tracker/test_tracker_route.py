"""Acceptance: a tracker riding a 30-minute simulated route reports exactly
the points its rules select. The virtual receiver (cold start, 2 tunnels,
noise, garbage) writes the NMEA; the firmware (nmea -> reporting) plays it
under the real MicroPython binary (and CPython) with synthetic time; the expected set is
computed here from the same NMEA with pynmea2 and the domain rules."""
from __future__ import annotations

from pathlib import Path

from host_tools import fw
from sim.peripherals import gnss
from tracker_reference import receiver_fixes, select, write_nmea

DRIVER = Path(__file__).parent / "tracker_driver.py"
REASONS = ("", "first", "time", "distance", "heading", "speed", "stop", "start", "sos", "emergency", "manual")


def test_30_minute_route_reports_exactly_the_selected_points(tmp_path, runtime):
    route = gnss.PatrolRoute(duration_s=1800, seed=3)
    rx = gnss.GnssModule(route.truth, style="ublox", noise_m=1.5, seed=4, start="cold",
                         outages=[(600, 640), (1300, 1330)], garbage_rate=0.03)
    nmea_file = tmp_path / "ride.nmea"
    write_nmea(nmea_file, rx, 0, 1800)
    expected = select(receiver_fixes(nmea_file))
    res = fw.run(runtime, DRIVER, ["route", str(nmea_file)], heap="128K", timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    got = [(int(t), REASONS[int(w)]) for _r, t, w in (ln.split() for ln in res.stdout.splitlines() if ln.startswith("R "))]
    assert got == expected
    kinds = {w for _t, w in expected}
    # the ride exercises every rule
    assert {"first", "distance", "heading", "speed", "stop", "start"} <= kinds, kinds
    assert 60 < len(expected) < 1800
