"""Patrol motorcycles: ground truth along their scenario routes.

A route is a list of legs `{road, from_km, to_km}` ridden in order and then back (out and back, so the
unit never jumps), looping; before `start_s` the unit waits at the start with the engine running.
A dispatched unit leaves its route: it rides along the road it is on to the point of that road nearest the
incident and stops there (where the tracker's duty logic reports it on scene).
"""
from __future__ import annotations

import heapq
import math

from sim.peripherals.gnss import Truth

JOIN_M = 50.0  # roads join where an end of one lies this close to the other (the console's road network: 15 m)


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
        self.errand: tuple[float, list[tuple[str, float, float]]] | None = None  # (t0, legs): riding to a scene

    def _onto(self, road: str, xy: tuple[float, float]) -> tuple[float, float]:
        return self.roads[road].project(*xy)

    def _junctions(self) -> list[tuple[str, float, str, float]]:
        """(road, s, other road, s on it) wherever an end of one road lies within JOIN_M of another."""
        out = []
        for a, pl in self.roads.items():
            for s_end in (0.0, pl.length_m):
                x, y, _h = pl.point_at_m(s_end)
                for b in self.roads:
                    if b != a:
                        s_other, gap = self._onto(b, (x, y))
                        if gap <= JOIN_M:
                            out += [(a, s_end, b, s_other), (b, s_other, a, s_end)]
        return out

    def _path(self, start: tuple[str, float], goal: tuple[str, float]) -> list[tuple[str, float, float]]:
        """The shortest ride from start to goal (road, s) over the road network: legs (road, s_from, s_to)."""
        nodes = [start, goal]
        hops: dict[int, list[tuple[int, float]]] = {}
        for ra, sa, rb, sb in self._junctions():
            i, j = len(nodes), len(nodes) + 1
            nodes += [(ra, sa), (rb, sb)]
            hops.setdefault(i, []).append((j, 0.0))  # crossing the junction
        for i, (ri, si) in enumerate(nodes):
            for j, (rj, sj) in enumerate(nodes):
                if i != j and ri == rj:
                    hops.setdefault(i, []).append((j, abs(si - sj)))
        best, prev, todo = {0: 0.0}, {}, [(0.0, 0)]
        while todo:
            d, i = heapq.heappop(todo)
            if i == 1:
                break
            if d > best.get(i, math.inf):
                continue
            for j, w in hops.get(i, ()):
                if d + w < best.get(j, math.inf):
                    best[j], prev[j] = d + w, i
                    heapq.heappush(todo, (d + w, j))
        if 1 not in prev:  # not connected: as far as the current road goes
            return [(start[0], start[1], self._onto(start[0], self.roads[goal[0]].point_at_m(goal[1])[:2])[0])]
        chain = [1]
        while chain[-1] != 0:
            chain.append(prev[chain[-1]])
        chain.reverse()
        return [(nodes[i][0], nodes[i][1], nodes[j][1]) for i, j in zip(chain, chain[1:])
                if nodes[i][0] == nodes[j][0]]

    def ride_to(self, t: float, lat: float, lon: float) -> float:
        """Leave the route at sim time t for the road point nearest (lat, lon), by the shortest way along the
        deployment's roads; the metres to ride."""
        road, s0, _v, _c = self.where(t)
        xy = self.proj.to_xy(lat, lon)
        dest = min(self.roads, key=lambda r: self._onto(r, xy)[1])
        legs = self._path((road, s0), (dest, self._onto(dest, xy)[0])) or [(road, s0, s0)]
        self.errand = (t, legs)
        return sum(abs(b - a) for _r, a, b in legs)

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
