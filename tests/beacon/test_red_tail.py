"""Acceptance (b): vehicles through a fog zone in anti-rear-end mode. At every
sampled instant after a vehicle passed 3 beacons, the red trail behind it
spans the configured tail length within one beacon spacing; two vehicles 40 m
apart give one merged trail with no dark beacon. Real firmware logic
in-process, synthetic time (1 ms resolution), 50 ms sampling."""
from __future__ import annotations

import pytest

from roadedge.beacon.logic import BeaconLogic

SPACING = 30.0
N = 60
UNIX0 = 1_700_000_000_000


def zone(cfg=None):
    beacons = [BeaconLogic(cfg or {}) for _ in range(N)]
    for b in beacons:  # dense fog for long enough: anti-rear-end everywhere
        for t in range(0, 15001, 5000):
            b.visibility(t, 45)
        assert b.render(15000, UNIX0)[0] == "anti_rear_end"
    return beacons


def drive(beacons, vehicles, t_start, t_end, speed_known=True):
    """vehicles: list of (x at t_start in metres, km/h). Yields (t, positions, red flags)."""
    passed = [set() for _ in vehicles]
    for t in range(t_start, t_end, 1):
        pos = [x0 + kmh / 3.6 * (t - t_start) / 1000 for x0, kmh in vehicles]
        for k, (x, (_, kmh)) in enumerate(zip(pos, vehicles)):
            for i in range(N):
                if i not in passed[k] and x >= i * SPACING:
                    passed[k].add(i)
                    beacons[i].detect(t, kmh if speed_known else None)
        if (t - t_start) % 50 == 0:
            red = [b.render(t, UNIX0 + t)[3] > 0 for b in beacons]
            yield t, pos, red


def expected_tail(kmh):
    # docs/visibility_meter.md "Red tail": 75 m up to 80 km/h, +1 m per km/h above, at most 200 m
    return min(200.0, 75.0 + max(0.0, kmh - 80.0))


def check_trail(x_head, x_tail_vehicle, red, tail_m):
    """Beacons from the one just passed by the lead vehicle back to the farthest red one are all
    red; the trail behind the rear vehicle spans tail_m within one spacing; nothing ahead is red."""
    lit = [i for i, r in enumerate(red) if r]
    assert lit, "no red trail"
    ahead = [i for i in lit if i * SPACING > x_head]
    assert not ahead, f"red ahead of the vehicle at {x_head:.1f} m: {ahead}"
    lo, hi = min(lit), max(lit)
    assert lit == list(range(lo, hi + 1)), f"dark gap in the trail: {lit}"
    assert hi == int(x_head // SPACING), "the beacon just passed is not red"
    span = x_tail_vehicle - lo * SPACING
    assert tail_m - SPACING <= span <= tail_m + SPACING, (span, tail_m)


@pytest.mark.parametrize("kmh,speed_known", [(80, True), (80, False), (120, True)])
def test_single_vehicle_trail(kmh, speed_known):
    beacons = zone()
    checked = 0
    for _t, (x,), red in drive(beacons, [(-10.0, kmh)], 20000, 20000 + int(1700 / (kmh / 3.6) * 1000),
                              speed_known):
        if x < 3 * SPACING or x > (N - 1) * SPACING:
            continue
        check_trail(x, x, red, expected_tail(kmh))
        checked += 1
    assert checked > 100


def test_two_vehicles_40m_apart_one_merged_trail():
    beacons = zone()
    checked = 0
    for _t, (xa, xb), red in drive(beacons, [(30.0, 80), (-10.0, 80)], 20000, 20000 + 60000):
        if xb < 3 * SPACING or xa > (N - 1) * SPACING:
            continue
        check_trail(xa, xb, red, expected_tail(80))
        checked += 1
    assert checked > 500


def test_configured_tail_length_is_followed():
    cfg = {"tail_m": 120.0, "tail_speed_kmh": 60.0, "tail_m_per_kmh": 2.0, "tail_max_m": 150.0}
    beacons = zone(cfg)
    for _t, (x,), red in drive(beacons, [(-10.0, 80)], 20000, 20000 + 60000):
        if x < 5 * SPACING or x > (N - 1) * SPACING:
            continue
        check_trail(x, x, red, 150.0)  # 120 + 2 * (80 - 60) = 160, capped at 150


def test_no_red_outside_anti_rear_end():
    b = BeaconLogic({})
    for t in range(0, 15001, 5000):
        b.visibility(t, 150)  # guidance
    b.detect(15000, 80)
    assert b.render(15001, UNIX0)[0] == "guidance" and b.render(15001, UNIX0)[3] == 0
