"""Patrol motorcycles: ground truth along their scenario routes.

A route is a list of legs `{road, from_km, to_km}` ridden in order and then back (out and back, so the
unit never jumps), looping; before `start_s` the unit waits at the start with the engine running.
A dispatched unit leaves its route: it rides along the road it is on to the point of that road nearest the
incident and stops there (where the tracker's duty logic reports it on scene).
"""
from __future__ import annotations

from sim.peripherals.gnss import Truth


class Patrol:
    def __init__(self, spec, sc) -> None:
        self.id = spec.id
        self.v = spec.speed_kmh / 3.6
        self.start_s = spec.start_s
        self.legs = []  # (polyline, s_from, s_to)
        for leg in spec.route:
            pl = sc.roads[leg["road"]]
            self.legs.append((pl, (leg["from_km"] - pl.km0) * 1000, (leg["to_km"] - pl.km0) * 1000))
        self.legs += [(pl, b, a) for pl, a, b in reversed(self.legs)]
        self.total = sum(abs(b - a) for _pl, a, b in self.legs) or 1.0
        self.proj = sc.proj
        self.roads = sc.roads
        self.errand: tuple[float, str, float, float] | None = None  # (t0, road, s0, s_goal): riding to a scene

    def ride_to(self, t: float, lat: float, lon: float) -> float:
        """Leave the route at sim time t for the nearest point of the current road to (lat, lon), by road;
        the metres to ride."""
        road, s0, _v, _c = self.where(t)
        s_goal, _off = self.roads[road].project(*self.proj.to_xy(lat, lon))
        self.errand = (t, road, s0, s_goal)
        return abs(s_goal - s0)

    def where(self, t: float) -> tuple[str, float, float, float]:
        """(road, s_m along it, speed m/s, course deg) at sim time t."""
        if self.errand is not None:
            t0, road, s0, s1 = self.errand
            d, n = max(0.0, t - t0) * self.v, abs(s1 - s0)
            s = s0 + (min(d, n) if s1 >= s0 else -min(d, n))
            _x, _y, h = self.roads[road].point_at_m(s)
            return road, s, self.v if d < n else 0.0, h if s1 >= s0 else (h + 180) % 360
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
