"""Road network graph from a deployment: nearest-unit ranking by ETA along it, and the way there.

Pure code, no I/O. Roads come from the scenario/deployment file (host_tools.deployment.scenario): each road
is a polyline with a speed, one-way roads (`oneway`) driven only in the order of their points; roads join
where an end point of one lies within JOIN_M of another road (docs/scenarios.md). Units and incidents are
snapped to the nearest segment (grid index); one Dijkstra from the incident over the reversed graph gives
every node's travel time to it (kept for the last few incidents: an incident does not move), so ranking N units
costs one search plus N snaps. The N snaps and ETAs are done at once over numpy arrays of the edges
(`rank`), with the same arithmetic as the one-unit `snap` and `eta_from`, so both give the same answer
(tests/dispatch/test_roadnet.py checks that on random deployments; bench/dispatch times it). `route` is the
fastest way itself, as road legs: the console ranks the units and the simulator's riders ride by the same graph.
"""
from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from host_tools.deployment.geo import EARTH_R, Polyline, Projection

JOIN_M = 15.0
CELL_M = 250.0
OFFROAD_KMH = 15.0  # from a unit's fix to the road (GNSS error, a lay-by): slow
MAX_SNAP_M = 2000.0  # farther than this from any road: not routable
TREES_KEPT = 16  # reverse Dijkstra results kept, one per recent incident position
CHUNK_CELLS = 32768  # units x edges per numpy block when snapping many units (256 KB per array)


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
        self._arrays: dict[str, np.ndarray] | None = None  # the edges as columns, built on first use
        self._trees: OrderedDict[tuple[int, float], tuple[list[float], list[float]]] = OrderedDict()

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
        self._arrays = None
        self._trees.clear()
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
        best_d2 = math.inf
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
                        ex, ey = x - x1 - t * dx, y - y1 - t * dy
                        d2 = ex * ex + ey * ey  # squared, not hypot: the same rounding as _snap_many's
                        # a tie (a point nearest to a node two edges share) goes to the lower edge id, as there
                        if best is None or d2 < best_d2 or (d2 == best_d2 and e < best.edge):
                            best, best_d2 = Snap(e, t, math.sqrt(d2)), d2
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

    def tree(self, target: Snap) -> tuple[list[float], list[float]]:
        """times_to(target), remembered for the last TREES_KEPT targets."""
        key = (target.edge, target.frac)
        hit = self._trees.get(key)
        if hit is None:
            hit = self._trees[key] = self.times_to(target)
            while len(self._trees) > TREES_KEPT:
                self._trees.popitem(last=False)
        else:
            self._trees.move_to_end(key)
        return hit

    def eta(self, lat: float, lon: float, ulat: float, ulon: float) -> tuple[float, float]:
        """(ETA s, road m) of one unit to (lat, lon); inf when either is off the network (a live ETA)."""
        target, s = self.snap(lat, lon), self.snap(ulat, ulon)
        if target is None or s is None:
            return math.inf, math.inf
        eta, rd = self.eta_from(s, target, *self.tree(target))
        return eta + target.off_m / (OFFROAD_KMH / 3.6), rd + target.off_m

    def _edge_arrays(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            ed = self.edges
            xy = np.array(self.nodes, dtype=float).reshape(-1, 2)
            a = np.array([e.a for e in ed], dtype=np.int64)
            b = np.array([e.b for e in ed], dtype=np.int64)
            x1, y1, x2, y2 = xy[a, 0], xy[a, 1], xy[b, 0], xy[b, 1]
            dx, dy = x2 - x1, y2 - y1
            l2 = dx * dx + dy * dy
            self._arrays = {"a": a, "b": b, "x1": x1, "y1": y1, "dx": dx, "dy": dy, "l2": np.where(l2 == 0, 1e-12, l2),
                            "time": np.array([e.time_s for e in ed], dtype=float),
                            "length": np.array([e.length_m for e in ed], dtype=float),
                            "oneway": np.array([e.oneway for e in ed], dtype=bool)}
        return self._arrays

    def _snap_many(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(edge, frac, off_m) of the nearest edge for each point; edge -1 when none within MAX_SNAP_M.
        Exhaustive over the edges in blocks (snap_xy's grid finds the same nearest edge one point at a time)."""
        A = self._edge_arrays()
        n, ne = len(x), len(self.edges)
        edge = np.full(n, -1, dtype=np.int64)
        frac = np.zeros(n)
        off = np.full(n, math.inf)
        if not ne:
            return edge, frac, off
        step = max(1, min(n, CHUNK_CELLS // ne))
        # in place over blocks that stay in the CPU cache: the arithmetic is snap_xy's, operation for operation
        px, py, t, tmp = (np.empty((step, ne)) for _ in range(4))
        for i in range(0, n, step):
            m = min(step, n - i)
            px_, py_, t_, tmp_ = px[:m], py[:m], t[:m], tmp[:m]
            np.subtract.outer(x[i:i + m], A["x1"], out=px_)
            np.subtract.outer(y[i:i + m], A["y1"], out=py_)
            np.multiply(px_, A["dx"], out=t_)
            np.multiply(py_, A["dy"], out=tmp_)
            t_ += tmp_
            t_ /= A["l2"]
            np.clip(t_, 0.0, 1.0, out=t_)
            np.multiply(t_, A["dx"], out=tmp_)
            px_ -= tmp_
            np.multiply(t_, A["dy"], out=tmp_)
            py_ -= tmp_
            px_ *= px_
            py_ *= py_
            px_ += py_  # squared distance; the root only of the nearest
            k = np.argmin(px_, axis=1)
            rows = np.arange(m)
            edge[i:i + m], frac[i:i + m], off[i:i + m] = k, t_[rows, k], np.sqrt(px_[rows, k])
        far = off > MAX_SNAP_M
        edge[far] = -1
        return edge, frac, off

    def rank(self, lat: float, lon: float, units: list[tuple[str, float, float]],
             limit: int | None = None) -> list[Ranked]:
        """Units (id, lat, lon) ordered by ETA to (lat, lon) along the roads, then by straight distance;
        unroutable units last. `limit`: only the first so many."""
        n = len(units)
        ula = np.fromiter((u[1] for u in units), float, n)
        ulo = np.fromiter((u[2] for u in units), float, n)
        straight = _haversine_many(lat, lon, ula, ulo)
        eta = np.full(n, math.inf)
        road = np.full(n, math.inf)
        target = self.snap(lat, lon)
        if target is not None and n:
            k = math.cos(math.radians(self.proj.lat0))
            x = np.radians(ulo - self.proj.lon0) * EARTH_R * k
            y = np.radians(ula - self.proj.lat0) * EARTH_R
            e, f, off_m = self._snap_many(x, y)
            ok = e >= 0
            e, f, off_m = e[ok], f[ok], off_m[ok]
            t, dist = (np.array(v) for v in self.tree(target))
            A = self._edge_arrays()
            tim, ln, ow = A["time"][e], A["length"][e], A["oneway"][e]
            off_t = off_m / (OFFROAD_KMH / 3.6)
            # the candidates of eta_from, in its order: forwards to b, backwards to a, along the target's edge
            best_t = off_t + (1 - f) * tim + t[A["b"][e]]
            best_d = off_m + (1 - f) * ln + dist[A["b"][e]]
            ct, cd = off_t + f * tim + t[A["a"][e]], off_m + f * ln + dist[A["a"][e]]
            better = ~ow & (ct < best_t)
            best_t, best_d = np.where(better, ct, best_t), np.where(better, cd, best_d)
            df = np.abs(target.frac - f)
            ct, cd = off_t + df * tim, off_m + df * ln
            better = (e == target.edge) & ((target.frac >= f) | ~ow) & (ct < best_t)
            best_t, best_d = np.where(better, ct, best_t), np.where(better, cd, best_d)
            # the last bit from the road to an incident off it
            fin = np.isfinite(best_t)
            best_t = np.where(fin, best_t + target.off_m / (OFFROAD_KMH / 3.6), best_t)
            best_d = np.where(fin, best_d + target.off_m, best_d)
            eta[ok], road[ok] = best_t, best_d
        order = np.lexsort((straight, eta))  # stable, like sorted() on (eta, straight)
        if limit is not None:
            order = order[:limit]
        return [Ranked(units[i][0], float(eta[i]), float(road[i]), float(straight[i])) for i in order.tolist()]

    def geojson(self) -> dict:
        feats = []
        for e in self.edges:
            a, b = self.proj.to_latlon(*self.nodes[e.a]), self.proj.to_latlon(*self.nodes[e.b])
            feats.append({"type": "Feature", "properties": {"road": e.road},
                          "geometry": {"type": "LineString", "coordinates": [[a[1], a[0]], [b[1], b[0]]]}})
        return {"type": "FeatureCollection", "features": feats}


def _haversine_many(lat: float, lon: float, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    """geo.haversine_m from (lat, lon) to each point (same formula, over arrays)."""
    p1, p2 = math.radians(lat), np.radians(lats)
    dp, dl = p2 - p1, np.radians(lons - lon)
    a = np.sin(dp / 2) ** 2 + math.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_R * np.arcsin(np.minimum(1.0, np.sqrt(a)))
