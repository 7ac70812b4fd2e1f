"""Road network graph from a deployment: nearest-unit ranking by ETA along it, and the way there.

Pure code, no I/O. Roads come from the scenario/deployment file (host_tools.deployment.scenario): each road
is a polyline with a speed, one-way roads (`oneway`) driven only in the order of their points; roads join
where an end point of one lies within JOIN_M of another road (docs/scenarios.md). Units and incidents are
snapped to the nearest segment (grid index); one Dijkstra from the incident over the reversed graph gives
every node's travel time to it, so ranking N units costs one search plus N snaps. `route` is the fastest
way itself, as road legs: the console ranks the units and the simulator's riders ride by the same graph.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

from host_tools.deployment.geo import Polyline, Projection

JOIN_M = 15.0
CELL_M = 250.0
OFFROAD_KMH = 15.0  # from a unit's fix to the road (GNSS error, a lay-by): slow
MAX_SNAP_M = 2000.0  # farther than this from any road: not routable


@dataclass
class Edge:
    a: int
    b: int
    length_m: float
    speed_ms: float
    road: str
    oneway: bool
    s_a: float | None = None  # chainage (m along the road) at node a and b; None for a junction's link
    s_b: float | None = None

    @property
    def time_s(self) -> float:
        return self.length_m / self.speed_ms


@dataclass
class Snap:
    edge: int
    frac: float  # 0 at edge.a, 1 at edge.b
    off_m: float


@dataclass
class Ranked:
    unit: str
    eta_s: float
    road_m: float
    straight_m: float


class RoadNetwork:
    def __init__(self, proj: Projection) -> None:
        self.proj = proj
        self.nodes: list[tuple[float, float]] = []
        self.edges: list[Edge] = []
        self.out: list[list[int]] = []  # node -> edge ids leaving it (both ways for two-way edges)
        self.grid: dict[tuple[int, int], list[int]] = {}

    # -- building ---------------------------------------------------------
    @classmethod
    def from_roads(cls, proj: Projection, roads: dict[str, Polyline], meta: dict[str, dict]) -> RoadNetwork:
        net = cls(proj)
        cuts: dict[str, set[float]] = {rid: {0.0, pl.length_m} for rid, pl in roads.items()}
        joins: list[tuple[str, float, str, float, float]] = []  # (road, s, other road, s_other, gap)
        for rid, pl in roads.items():
            for end_s, (x, y) in ((0.0, pl.xy[0]), (pl.length_m, pl.xy[-1])):
                for oid, other in roads.items():
                    if oid == rid:
                        continue
                    s, d = other.project(x, y)
                    if d <= JOIN_M:
                        cuts[oid].add(s)
                        joins.append((rid, end_s, oid, s, d))
        at: dict[tuple[str, float], int] = {}
        for rid, pl in roads.items():
            m = meta.get(rid, {})
            speed = float(m.get("speed_kmh", 50)) / 3.6
            oneway = bool(m.get("oneway", False))
            pts = sorted({(s, pl.xy[i]) for i, s in enumerate(pl.cum)} |
                         {(s, pl.point_at_m(s)[:2]) for s in cuts[rid]})
            prev = None
            for s, xy in pts:
                if prev is not None and s - prev[0] < 0.01:
                    if s in cuts[rid]:
                        at[(rid, s)] = prev[1]
                    continue
                n = net._node(xy)
                if s in cuts[rid]:
                    at[(rid, s)] = n
                if prev is not None:
                    net._edge(prev[1], n, s - prev[0], speed, rid, oneway, prev[0], s)
                prev = (s, n)
        for rid, s, oid, so, gap in joins:
            a, b = at[(rid, s)], at[(oid, so)]
            if a != b:
                net._edge(a, b, max(gap, 0.01), 30 / 3.6, f"{rid}~{oid}", False)
        return net

    @classmethod
    def from_scenario(cls, sc) -> RoadNetwork:
        return cls.from_roads(sc.proj, sc.roads, sc.road_meta)

    def _node(self, xy: tuple[float, float]) -> int:
        self.nodes.append(xy)
        self.out.append([])
        return len(self.nodes) - 1

    def _edge(self, a: int, b: int, length: float, speed: float, road: str, oneway: bool,
              s_a: float | None = None, s_b: float | None = None) -> None:
        e = len(self.edges)
        self.edges.append(Edge(a, b, length, speed, road, oneway, s_a, s_b))
        self.out[a].append(e)
        if not oneway:
            self.out[b].append(e)
        (x1, y1), (x2, y2) = self.nodes[a], self.nodes[b]
        for cell in self._cells_between(x1, y1, x2, y2):
            self.grid.setdefault(cell, []).append(e)

    def _cells_between(self, x1, y1, x2, y2):
        cx1, cx2 = sorted((int(math.floor(x1 / CELL_M)), int(math.floor(x2 / CELL_M))))
        cy1, cy2 = sorted((int(math.floor(y1 / CELL_M)), int(math.floor(y2 / CELL_M))))
        for cx in range(cx1, cx2 + 1):
            for cy in range(cy1, cy2 + 1):
                yield (cx, cy)

    # -- snapping -----------------------------------------------------------
    def snap_xy(self, x: float, y: float) -> Snap | None:
        cx, cy = int(math.floor(x / CELL_M)), int(math.floor(y / CELL_M))
        best: Snap | None = None
        ring = 0
        max_ring = int(MAX_SNAP_M / CELL_M) + 1
        while ring <= max_ring:
            for gx in range(cx - ring, cx + ring + 1):
                for gy in range(cy - ring, cy + ring + 1):
                    if ring and max(abs(gx - cx), abs(gy - cy)) != ring:
                        continue
                    for e in self.grid.get((gx, gy), ()):
                        ed = self.edges[e]
                        (x1, y1), (x2, y2) = self.nodes[ed.a], self.nodes[ed.b]
                        dx, dy = x2 - x1, y2 - y1
                        L2 = dx * dx + dy * dy or 1e-12
                        t = max(0.0, min(1.0, ((x - x1) * dx + (y - y1) * dy) / L2))
                        d = math.hypot(x - x1 - t * dx, y - y1 - t * dy)
                        if best is None or d < best.off_m:
                            best = Snap(e, t, d)
            # a segment in a farther ring can only be closer than ring*CELL_M
            if best is not None and best.off_m <= ring * CELL_M:
                break
            ring += 1
        if best is None or best.off_m > MAX_SNAP_M:
            return None
        return best

    def snap(self, lat: float, lon: float) -> Snap | None:
        return self.snap_xy(*self.proj.to_xy(lat, lon))

    def at(self, road: str, s_m: float) -> Snap | None:
        """The point s_m metres along `road` (a unit known to ride on it), as a Snap."""
        for i, e in enumerate(self.edges):
            if e.road == road and e.s_a is not None and e.s_b is not None and e.s_a <= s_m <= e.s_b:
                return Snap(i, (s_m - e.s_a) / ((e.s_b - e.s_a) or 1.0), 0.0)
        return None

    def chainage(self, p: Snap) -> float | None:
        e = self.edges[p.edge]
        return None if e.s_a is None or e.s_b is None else e.s_a + p.frac * (e.s_b - e.s_a)

    # -- routing ------------------------------------------------------------
    def times_to(self, target: Snap) -> tuple[list[float], list[float]]:
        """Travel time and road distance from every node to the target point (reverse Dijkstra)."""
        inf = math.inf
        t = [inf] * len(self.nodes)
        dist = [inf] * len(self.nodes)
        e = self.edges[target.edge]
        heap: list[tuple[float, float, int]] = []
        # reach the target from e.a by driving a->b, from e.b by driving b->a (if allowed)
        seeds = [(e.a, target.frac)]
        if not e.oneway:
            seeds.append((e.b, 1 - target.frac))
        for n, f in seeds:
            tt, dd = f * e.time_s, f * e.length_m
            if tt < t[n]:
                t[n], dist[n] = tt, dd
                heapq.heappush(heap, (tt, dd, n))
        while heap:
            tt, dd, n = heapq.heappop(heap)
            if tt > t[n]:
                continue
            # predecessors of n: edges that can be driven *into* n
            for ei in self.out[n]:
                ed = self.edges[ei]
                if ed.b == n:
                    m = ed.a
                elif ed.a == n and not ed.oneway:
                    m = ed.b
                else:
                    continue
                nt = tt + ed.time_s
                if nt < t[m]:
                    t[m], dist[m] = nt, dd + ed.length_m
                    heapq.heappush(heap, (nt, dist[m], m))
        return t, dist

    def route(self, start: Snap, goal: Snap) -> list[tuple[str, float, float]] | None:
        """The fastest way from start to goal, one-way roads only their way: legs (road, s_from_m, s_to_m) in
        road chainage, in riding order (a junction's few metres between two roads are not a leg); None when
        the goal cannot be reached."""
        inf = math.inf
        es, eg = self.edges[start.edge], self.edges[goal.edge]
        t = [inf] * len(self.nodes)
        came: dict[int, tuple[int, int] | None] = {}  # node -> (previous node, edge), None: left the start
        heap: list[tuple[float, int]] = []
        seeds = [(es.b, (1 - start.frac) * es.time_s)]
        if not es.oneway:
            seeds.append((es.a, start.frac * es.time_s))
        for n, tt in seeds:
            if tt < t[n]:
                t[n], came[n] = tt, None
                heapq.heappush(heap, (tt, n))
        while heap:
            tt, n = heapq.heappop(heap)
            if tt > t[n]:
                continue
            for ei in self.out[n]:  # edges that can be driven out of n
                ed = self.edges[ei]
                m = ed.b if ed.a == n else ed.a
                if tt + ed.time_s < t[m]:
                    t[m], came[m] = tt + ed.time_s, (n, ei)
                    heapq.heappush(heap, (t[m], m))
        # the last bit: into the goal's edge from its a end (driving a -> b), or from b if two-way
        best, last = inf, None
        for n, f in [(eg.a, goal.frac)] + ([(eg.b, 1 - goal.frac)] if not eg.oneway else []):
            if t[n] + f * eg.time_s < best:
                best, last = t[n] + f * eg.time_s, n
        sc, gc = self.chainage(start), self.chainage(goal)
        if start.edge == goal.edge and (goal.frac >= start.frac or not es.oneway):
            if abs(goal.frac - start.frac) * es.time_s <= best:
                return [(es.road, sc, gc)] if sc is not None and gc is not None else []
        if last is None:
            return None
        hops: list[tuple[int, int]] = []  # (edge, node it was entered from)
        n = last
        while came[n] is not None:
            p, ei = came[n]
            hops.append((ei, p))
            n = p
        hops.reverse()
        legs: list[tuple[str, float, float]] = []

        def ride(road: str, a: float | None, b: float | None) -> None:
            if a is None or b is None or a == b:
                return
            r, a0, b0 = legs[-1] if legs else ("", 0.0, 0.0)
            if r == road and b0 == a and (b0 - a0) * (b - a) > 0:  # carrying on along the same road
                legs[-1] = (road, a0, b)
            else:
                legs.append((road, a, b))

        ride(es.road, sc, es.s_b if n == es.b else es.s_a)
        for ei, p in hops:
            ed = self.edges[ei]
            ride(ed.road, *((ed.s_a, ed.s_b) if p == ed.a else (ed.s_b, ed.s_a)))
        ride(eg.road, eg.s_a if last == eg.a else eg.s_b, gc)
        return legs

    def eta_from(self, s: Snap, target: Snap, t: list[float], dist: list[float]) -> tuple[float, float]:
        e = self.edges[s.edge]
        off = s.off_m / (OFFROAD_KMH / 3.6)
        best = (math.inf, math.inf)
        # drive along the edge forwards to b, or backwards to a
        cand = [(off + (1 - s.frac) * e.time_s + t[e.b], s.off_m + (1 - s.frac) * e.length_m + dist[e.b])]
        if not e.oneway:
            cand.append((off + s.frac * e.time_s + t[e.a], s.off_m + s.frac * e.length_m + dist[e.a]))
        if s.edge == target.edge and (target.frac >= s.frac or not e.oneway):
            df = abs(target.frac - s.frac)
            cand.append((off + df * e.time_s, s.off_m + df * e.length_m))
        for c in cand:
            if c[0] < best[0]:
                best = c
        return best

    def rank(self, lat: float, lon: float, units: list[tuple[str, float, float]]) -> list[Ranked]:
        """Units (id, lat, lon) ordered by ETA to (lat, lon) along the roads; unroutable units last."""
        from host_tools.deployment.geo import haversine_m

        target = self.snap(lat, lon)
        out: list[Ranked] = []
        if target is None:
            for uid, ula, ulo in units:
                out.append(Ranked(uid, math.inf, math.inf, haversine_m(lat, lon, ula, ulo)))
        else:
            t, dist = self.times_to(target)
            for uid, ula, ulo in units:
                s = self.snap(ula, ulo)
                eta, rd = self.eta_from(s, target, t, dist) if s else (math.inf, math.inf)
                # the last bit from the road to an incident off it
                if math.isfinite(eta):
                    eta += target.off_m / (OFFROAD_KMH / 3.6)
                    rd += target.off_m
                out.append(Ranked(uid, eta, rd, haversine_m(lat, lon, ula, ulo)))
        out.sort(key=lambda r: (r.eta_s, r.straight_m))
        return out

    def geojson(self) -> dict:
        feats = []
        for e in self.edges:
            a, b = self.proj.to_latlon(*self.nodes[e.a]), self.proj.to_latlon(*self.nodes[e.b])
            feats.append({"type": "Feature", "properties": {"road": e.road},
                          "geometry": {"type": "LineString", "coordinates": [[a[1], a[0]], [b[1], b[0]]]}})
        return {"type": "FeatureCollection", "features": feats}
