"""A dispatched rider takes the way the console's road network gives (host_tools.deployment.roadnet): the
fastest over the deployment's roads, one-way roads only in the order of their points."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from host_tools.deployment.geo import haversine_m
from host_tools.deployment.roadnet import RoadNetwork
from host_tools.deployment.scenario import ScenarioError, parse
from sim.world.patrol import Patrol


def _loop(north_oneway: bool):
    """A loop: north road (west -> east), south road, and a ramp at each end joining them."""
    return parse({"name": "loop", "origin": {"lat": 30.3, "lon": 120.0}, "roads": [
        {"id": "N", "speed_kmh": 60, "oneway": north_oneway, "points": [[30.310, 120.000], [30.310, 120.020]]},
        {"id": "S", "speed_kmh": 60, "points": [[30.300, 120.000], [30.300, 120.020]]},
        {"id": "W", "kind": "ramp", "speed_kmh": 40, "points": [[30.300, 120.000], [30.310, 120.000]]},
        {"id": "E", "kind": "ramp", "speed_kmh": 40, "points": [[30.300, 120.020], [30.310, 120.020]]},
    ]}, "loop")


def _rider(sc) -> Patrol:
    # riding the east end of the south road
    return Patrol(SimpleNamespace(id="trk-t", speed_kmh=50, start_s=0,
                                  route=[{"road": "S", "from_km": 1.8, "to_km": 1.9}]), sc)


INCIDENT = (30.3101, 120.004)  # beside the west half of the north road


@pytest.mark.parametrize("oneway, roads", [(False, ["S", "E", "N"]), (True, ["S", "W", "N"])])
def test_a_rider_keeps_to_one_way_roads(oneway, roads):
    sc = _loop(oneway)
    p = _rider(sc)
    metres = p.ride_to(0, *INCIDENT)
    legs = p.errand[1]
    assert [leg[0] for leg in legs] == roads, legs
    north = legs[-1]
    if oneway:  # the long way round, entering the one-way road at its start and riding with it
        assert north[2] > north[1] and metres > 3000
    else:  # the short way, against the points' order
        assert north[2] < north[1] and metres < 3000
    # it gets there and stops at the road point nearest the incident
    end = p.truth(metres / p.v + 5, sc.roads)
    assert haversine_m(end.lat, end.lon, *INCIDENT) < 15 and end.speed_mps == 0
    # the console ranks it by the same way: its road distance is the ride
    r = RoadNetwork.from_scenario(sc).rank(*INCIDENT, [("trk-t", *(lambda t: (t.lat, t.lon))(p.truth(0, sc.roads)))])
    assert abs(r[0].road_m - metres) < 30, (r[0].road_m, metres)


def test_a_rider_with_no_way_there_stays_put():
    sc = parse({"name": "cut", "origin": {"lat": 30.3, "lon": 120.0}, "roads": [
        {"id": "S", "speed_kmh": 60, "points": [[30.300, 120.000], [30.300, 120.020]]},
        {"id": "X", "speed_kmh": 60, "oneway": True, "points": [[30.320, 120.000], [30.320, 120.020]]},
    ]}, "cut")
    p = _rider(sc)
    here = p.truth(0, sc.roads)
    assert p.ride_to(0, 30.3201, 120.01) == 0
    there = p.truth(60, sc.roads)
    assert haversine_m(here.lat, here.lon, there.lat, there.lon) < 1 and there.speed_mps == 0


def test_a_patrol_route_over_a_one_way_road_comes_back_the_legal_way():
    sc = _loop(True)
    p = Patrol(SimpleNamespace(id="trk-n", speed_kmh=60, start_s=0,
                               route=[{"road": "N", "from_km": 0.2, "to_km": 1.8}]), sc)
    assert [pl.id for pl, _a, _b in p.legs] == ["N", "N", "E", "S", "W", "N"]  # on to its end, round, back on
    n = sc.roads["N"]
    on_north = []
    for k in range(int(p.total / p.v) + 60):
        road, s, v, _c = p.where(float(k))
        if road == "N" and v > 0:
            on_north.append(s)
    assert len(on_north) > 50 and all(b >= a or b < 300 for a, b in zip(on_north, on_north[1:])), on_north
    assert max(on_north) <= n.length_m
    # and a scenario that would ride it against its points is refused
    raw = dict(sc.raw, devices={"trackers": [{"id": "trk-x", "route": [{"road": "N", "from_km": 1.5, "to_km": 0.5}]}]})
    with pytest.raises(ScenarioError, match="one-way"):
        parse(raw, "bad")
