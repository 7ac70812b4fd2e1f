"""Nearest-unit ranking by ETA along the road network (pure)."""
from __future__ import annotations

import math

from dispatch_support import U_ROAD
from host_tools.deployment.scenario import parse

from host_tools.deployment.roadnet import RoadNetwork


def net_of(raw: dict) -> RoadNetwork:
    return RoadNetwork.from_scenario(parse(raw))


def test_nearer_by_road_beats_nearer_in_a_straight_line():
    net = net_of(U_ROAD)
    # incident at the west end of the north arm
    r = net.rank(30.3050, 120.0010, [("south", 30.3000, 120.0010), ("north", 30.3050, 120.0080)])
    assert [x.unit for x in r] == ["north", "south"]
    south = r[1]
    assert south.straight_m < r[0].straight_m  # south is nearer as the crow flies...
    assert south.road_m > 4000  # ...but must ride round the U
    assert 600 < r[0].road_m < 800


def test_speed_matters_not_only_distance():
    raw = {"name": "two-ways", "origin": {"lat": 30.3, "lon": 120.0}, "roads": [
        {"id": "fast", "speed_kmh": 120, "points": [[30.300, 120.000], [30.300, 120.030]]},
        {"id": "slow", "speed_kmh": 20, "points": [[30.300, 120.000], [30.301, 120.015], [30.300, 120.030]]},
    ]}
    net = net_of(raw)
    # a unit on the slow road's midpoint is ~1.4 km from the incident at the far end; one at the fast road's
    # start is 2.9 km away but at 120 km/h
    r = net.rank(30.300, 120.030, [("slow", 30.301, 120.015), ("fast", 30.300, 120.000)])
    assert r[0].unit == "fast"


def test_oneway_roads_are_driven_one_way_only():
    raw = {"name": "oneway", "origin": {"lat": 30.3, "lon": 120.0}, "roads": [
        {"id": "E", "speed_kmh": 100, "oneway": True, "points": [[30.300, 120.000], [30.300, 120.010]]},
    ]}
    net = net_of(raw)
    ahead = net.rank(30.300, 120.002, [("u", 30.300, 120.008)])[0]  # the incident is behind the unit
    assert math.isinf(ahead.eta_s)
    behind = net.rank(30.300, 120.008, [("u", 30.300, 120.002)])[0]
    assert math.isfinite(behind.eta_s)


def test_roads_join_at_junctions_within_15_m():
    raw = {"name": "tee", "origin": {"lat": 30.3, "lon": 120.0}, "roads": [
        {"id": "main", "speed_kmh": 80, "points": [[30.300, 120.000], [30.300, 120.020]]},
        # ends 10 m from the main road's middle
        {"id": "spur", "speed_kmh": 40, "points": [[30.310, 120.010], [30.30009, 120.010]]},
    ]}
    net = net_of(raw)
    r = net.rank(30.310, 120.010, [("u", 30.300, 120.001)])[0]
    assert math.isfinite(r.eta_s) and 1900 < r.road_m < 2100


def test_far_off_road_units_rank_last():
    net = net_of(U_ROAD)
    r = net.rank(30.3050, 120.0010, [("lost", 31.0, 121.0), ("ok", 30.3000, 120.0010)])
    assert [x.unit for x in r] == ["ok", "lost"]
    assert r[1].eta_s == math.inf
