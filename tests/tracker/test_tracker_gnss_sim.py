"""The virtual GNSS module behaves like a receiver: rate, cold/hot start,
tunnels, garbage; what it emits decodes on the firmware decoder."""
from __future__ import annotations

import pytest

from sim.peripherals import gnss

from roadedge.tracker import nmea  # noqa: E402


def _fixes(mod, t0, t1):
    d = nmea.Decoder()
    out = []
    for t, s in mod.lines(t0, t1):
        d.feed(s.encode() + b"\r\n")
        f = d.take_fix()
        if f is not None:
            out.append((t, f.unix, f.ms))
    return out, d


def test_rate_ttff_tunnel_and_garbage():
    route = gnss.PatrolRoute(duration_s=120, seed=1)
    cold = gnss.GnssModule(route.truth, rate_hz=10, start="cold", outages=[(60, 70)], garbage_rate=0.2, seed=3)
    fixes, d = _fixes(cold, 0, 100)
    assert fixes[0][0] >= 35  # cold start: no fix before the time to first fix
    assert not [t for t, _u, _ms in fixes if 60 <= t < 70]  # tunnel
    after = [t for t, _u, _ms in fixes if 80 <= t < 81]
    assert len(after) == 10  # 10 Hz
    assert d.garbage + d.bad_checksum + d.unknown > 50 and d.internal == 0
    hot = gnss.GnssModule(route.truth, start="hot")
    fixes, _d = _fixes(hot, 0, 10)
    assert fixes[0][0] <= 3


def test_rejects_bad_settings():
    with pytest.raises(ValueError):
        gnss.GnssModule(lambda t: gnss.Truth(0, 0, 0, 0), rate_hz=20)
    with pytest.raises(ValueError):
        gnss.GnssModule(lambda t: gnss.Truth(0, 0, 0, 0), style="garmin")
