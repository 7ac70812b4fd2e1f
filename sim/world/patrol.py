"""Patrol motorcycles: ground truth along their scenario routes.

A route is a list of legs `{road, from_km, to_km}` ridden in order and then back (out and back, so the
unit never jumps; from a route over a one-way road the fastest way back the roads allow), looping; before `start_s` the unit waits at the start with the engine running.
A dispatched unit leaves its route: it rides the fastest way over the deployment's roads (the console's road
network, host_tools.deployment.roadnet: one-way roads only their way) to the road point nearest the incident
and stops there (where the tracker's duty logic reports it on scene).
"""
from __future__ import annotations

from host_tools.deployment.roadnet import RoadNetwork
from sim.peripherals.gnss import Truth


class Patrol:
    def __init__(self, spec, sc, net: RoadNetwork | None = None) -> None:
        self.id = spec.id
        self.v = spec.speed_kmh / 3.6
        self.start_s = spec.start_s
        self.net = net or RoadNetwork.from_scenario(sc)  # one per world: the patrols share it
        out = []  # (polyline, s_from, s_to)
        for leg in spec.route:
            pl = sc.roads[leg["road"]]
            out.append((pl, (leg["from_km"] - pl.km0) * 1000, (leg["to_km"] - pl.km0) * 1000))
        back = [(pl, b, a) for pl, a, b in reversed(out)]
        if any(sc.road_meta.get(pl.id, {}).get("oneway") for pl, _a, _b in out):
            # back the fastest way the roads allow, never against a one-way road's traffic
            end, start = self.net.at(out[-1][0].id, out[-1][2]), self.net.at(out[0][0].id, out[0][1])
            way = self.net.route(end, start) if end is not None and start is not None else None
            if way is not None:
                back = [(sc.roads[r], a, b) for r, a, b in way]
        self.legs = out + back
        self.total = sum(abs(b - a) for _pl, a, b in self.legs) or 1.0
        self.proj = sc.proj
        self.roads = sc.roads
        self.errand: tuple[float, list[tuple[str, float, float]]] | None = None  # (t0, legs): riding to a scene

    def ride_to(self, t: float, lat: float, lon: float) -> float:
        """Leave the route at sim time t for the road point nearest (lat, lon), by the fastest way along the
        deployment's roads (the console's road network: one-way roads only their way); the metres to ride.
        With no way there the unit stays where it is."""
        road, s0, _v, _c = self.where(t)
        here, goal = self.net.at(road, s0), self.net.snap(lat, lon)
        legs = self.net.route(here, goal) if here is not None and goal is not None else None
        self.errand = (t, legs or [(road, s0, s0)])
        return sum(abs(b - a) for _r, a, b in self.errand[1])

    def where(self, t: float) -> tuple[str, float, float, float]:
        """(road, s_m along it, speed m/s, course deg) at sim time t."""
        if self.errand is not None:
            t0, legs = self.errand
            d = max(0.0, t - t0) * self.v
            for i, (road, a, b) in enumerate(legs):
                n = abs(b - a)
                last = i == len(legs) - 1
                if d < n or last:
                    s = a + (min(d, n) if b >= a else -min(d, n))
                    _x, _y, h = self.roads[road].point_at_m(s)
                    return road, s, self.v if d < n else 0.0, h if b >= a else (h + 180) % 360
                d -= n
        moving = t >= self.start_s
        d = ((t - self.start_s) * self.v) % self.total if moving else 0.0
        for pl, a, b in self.legs:
            n = abs(b - a)
            if d <= n:
                s = a + (d if b >= a else -d)
                x, y, h = pl.point_at_m(s)
                return pl.id, s, self.v if moving else 0.0, h if b >= a else (h + 180) % 360
            d -= n
        pl, a, b = self.legs[-1]
        return pl.id, b, 0.0, 0.0

    def truth(self, t: float, roads) -> Truth:
        road, s, v, course = self.where(t)
        x, y, _h = roads[road].point_at_m(s)
        lat, lon = self.proj.to_latlon(x, y)
        return Truth(lat, lon, v, course, 20.0)
