"""Nearest-unit ranking by ETA along the road network (pure)."""
from __future__ import annotations

import math

import pytest

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


def reference_rank(net: RoadNetwork, lat: float, lon: float, units) -> list[tuple]:
    """The one-unit-at-a-time ranking the console used before the array version (issue 15): snap each unit
    with the grid index, eta_from over a fresh reverse Dijkstra, sorted on (eta, straight)."""
    from host_tools.deployment.geo import haversine_m
    from host_tools.deployment.roadnet import OFFROAD_KMH

    target = net.snap(lat, lon)
    out = []
    t, dist = net.times_to(target) if target else (None, None)
    for uid, ula, ulo in units:
        eta, rd = math.inf, math.inf
        s = net.snap(ula, ulo) if target else None
        if s is not None:
            eta, rd = net.eta_from(s, target, t, dist)
            if math.isfinite(eta):
                eta, rd = eta + target.off_m / (OFFROAD_KMH / 3.6), rd + target.off_m
        out.append((eta, haversine_m(lat, lon, ula, ulo), uid, rd))
    out.sort(key=lambda r: (r[0], r[1]))
    return out


def random_deployment(rnd) -> dict:
    """A random road web: polylines of 2-6 points, some one-way, some ending on another road (a junction)."""
    roads = []
    for i in range(rnd.randint(1, 9)):
        pts = [[30.30 + rnd.uniform(-0.03, 0.03), 120.0 + rnd.uniform(-0.03, 0.03)]]
        for _ in range(rnd.randint(1, 5)):
            pts.append([pts[-1][0] + rnd.uniform(-0.01, 0.01), pts[-1][1] + rnd.uniform(-0.01, 0.01)])
        if roads and rnd.random() < 0.5:  # end it on an earlier road's point: a junction
            pts[-1] = list(rnd.choice(roads)["points"][rnd.randint(0, 1)])
        roads.append({"id": f"r{i}", "speed_kmh": rnd.choice([30, 50, 80, 120]), "oneway": rnd.random() < 0.3,
                      "points": pts})
    return {"name": "random", "origin": {"lat": 30.3, "lon": 120.0}, "roads": roads}


def test_the_array_ranking_equals_the_one_unit_ranking_on_random_deployments():
    import random

    rnd = random.Random(15)
    compared = finite = 0
    for _ in range(60):
        net = net_of(random_deployment(rnd))
        units = []
        for j in range(rnd.randint(0, 300)):
            if rnd.random() < 0.1:  # far from every road, or exactly on a node
                la, lo = (30.3 + rnd.uniform(-0.2, 0.2), 120.0 + rnd.uniform(-0.2, 0.2))
            else:
                e = net.edges[rnd.randrange(len(net.edges))]
                x1, y1 = net.nodes[e.a]
                x2, y2 = net.nodes[e.b]
                f = rnd.choice([0.0, 1.0, rnd.random()])
                la, lo = net.proj.to_latlon(x1 + f * (x2 - x1) + rnd.gauss(0, 15), y1 + f * (y2 - y1) + rnd.gauss(0, 15))
            units.append((f"u{j}", la, lo))
        for _ in range(3):
            lat, lon = 30.3 + rnd.uniform(-0.04, 0.04), 120.0 + rnd.uniform(-0.04, 0.04)
            want = reference_rank(net, lat, lon, units)
            got = net.rank(lat, lon, units)
            assert len(got) == len(want)
            for g, (eta, straight, uid, rd) in zip(got, want):
                assert g.eta_s == pytest.approx(eta, rel=1e-9, abs=1e-6) and g.road_m == pytest.approx(rd, rel=1e-9, abs=1e-6)
                assert g.straight_m == pytest.approx(straight, rel=1e-9)
                if g.unit != uid:  # only units tied on ETA and distance may swap
                    other = next(w for w in want if w[2] == g.unit)
                    assert other[0] == pytest.approx(eta, abs=1e-6) and other[1] == pytest.approx(straight, abs=1e-6)
                compared += 1
                finite += math.isfinite(eta)
            assert [r.unit for r in net.rank(lat, lon, units, limit=5)] == [r.unit for r in got[:5]]
    assert compared > 10000 and compared // 10 < finite < compared  # routable and unroutable units alike


def test_live_eta_of_one_unit_matches_its_ranking():
    net = net_of(U_ROAD)
    r = net.rank(30.3050, 120.0010, [("south", 30.3000, 120.0010)])[0]
    assert net.eta(30.3050, 120.0010, 30.3000, 120.0010) == pytest.approx((r.eta_s, r.road_m))
    assert net.eta(30.3050, 120.0010, 31.0, 121.0) == (math.inf, math.inf)


def old_snap_xy(net: RoadNetwork, x: float, y: float):
    """snap_xy as it was before issue 15, verbatim in effect (math.hypot, the first edge found wins a tie)."""
    from host_tools.deployment.roadnet import CELL_M, MAX_SNAP_M, Snap

    cx, cy = int(math.floor(x / CELL_M)), int(math.floor(y / CELL_M))
    best = None
    ring, max_ring = 0, int(MAX_SNAP_M / CELL_M) + 1
    while ring <= max_ring:
        for gx in range(cx - ring, cx + ring + 1):
            for gy in range(cy - ring, cy + ring + 1):
                if ring and max(abs(gx - cx), abs(gy - cy)) != ring:
                    continue
                for e in net.grid.get((gx, gy), ()):
                    ed = net.edges[e]
                    (x1, y1), (x2, y2) = net.nodes[ed.a], net.nodes[ed.b]
                    dx, dy = x2 - x1, y2 - y1
                    L2 = dx * dx + dy * dy or 1e-12
                    t = max(0.0, min(1.0, ((x - x1) * dx + (y - y1) * dy) / L2))
                    d = math.hypot(x - x1 - t * dx, y - y1 - t * dy)
                    if best is None or d < best.off_m:
                        best = Snap(e, t, d)
        if best is not None and best.off_m <= ring * CELL_M:
            break
        ring += 1
    return None if best is None or best.off_m > MAX_SNAP_M else best


def test_the_array_ranking_gives_the_old_ranking_but_where_two_roads_are_equally_near():
    """Against the ranking as it shipped before issue 15: every unit's ETA the same, except a unit exactly as
    near to two edges (a node they share, met from a dead-end one-way): the old code took whichever its grid
    met first, the new one the lower edge id (rare, and counted)."""
    import random

    from host_tools.deployment.geo import haversine_m
    from host_tools.deployment.roadnet import OFFROAD_KMH

    rnd = random.Random(150)
    compared = ties = 0
    for _ in range(40):
        net = net_of(random_deployment(rnd))
        units = []
        for j in range(200):
            e = net.edges[rnd.randrange(len(net.edges))]
            (x1, y1), (x2, y2) = net.nodes[e.a], net.nodes[e.b]
            f = rnd.choice([0.0, 1.0, rnd.random()])
            units.append((f"u{j}", *net.proj.to_latlon(x1 + f * (x2 - x1) + rnd.gauss(0, 15),
                                                       y1 + f * (y2 - y1) + rnd.gauss(0, 15))))
        lat, lon = 30.3 + rnd.uniform(-0.04, 0.04), 120.0 + rnd.uniform(-0.04, 0.04)
        target = old_snap_xy(net, *net.proj.to_xy(lat, lon))
        if target is None:
            continue
        t, dist = net.times_to(target)
        new = {r.unit: r for r in net.rank(lat, lon, units)}
        for uid, ula, ulo in units:
            s = old_snap_xy(net, *net.proj.to_xy(ula, ulo))
            eta = math.inf
            if s is not None:
                eta, _rd = net.eta_from(s, target, t, dist)
                eta += target.off_m / (OFFROAD_KMH / 3.6) if math.isfinite(eta) else 0
            assert new[uid].straight_m == pytest.approx(haversine_m(lat, lon, ula, ulo), rel=1e-9)
            compared += 1
            if new[uid].eta_s == pytest.approx(eta, rel=1e-9, abs=1e-6):
                continue
            now = net.snap(ula, ulo)  # a tie: another edge exactly as near
            assert now is not None and s is not None and now.edge != s.edge
            assert now.off_m == pytest.approx(s.off_m, rel=1e-9, abs=1e-9), (uid, s, now)
            ties += 1
    assert compared > 4000 and ties < compared // 100, (compared, ties)
