"""Builtin traffic: seeded arrivals, a speed distribution, car following, drivers slowing for fog and
for the limit a sign shows.

One lane per direction on each road of `traffic.roads`. Direction +1 rides with increasing km (the
beacons of side "R"), -1 the opposite carriageway (side "L"). Each vehicle wants its own free speed
(normal, `speed_kmh.mean/sd`), never more than
 - the last limit a sign showed it (signs stand on the +1 carriageway), plus its own small excess,
 - what it can stop within in the fog ahead (sight-distance speed, drivers overrating visibility by
   half as real drivers do),
 - a safe following speed behind its leader (1.2 s headway, 2 m standstill gap).
Arrivals are Poisson at `flow_vph` per direction; a vehicle enters only with room at the entry.
Everything draws from one `random.Random(seed)`, so a run is reproducible.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

VEH_LEN_M = 5.0
HEADWAY_S = 1.2
STANDSTILL_M = 2.0
ACCEL = 1.5  # m/s2
DECEL = 4.0  # comfortable braking
DECEL_MAX = 8.0  # emergency braking
REACTION_S = 1.5
SIGHT_OVERRATE = 1.5


@dataclass
class Vehicle:
    id: int
    road: str
    dir: int  # +1 with the km markers, -1 against
    s: float  # metres from the road's first point
    v: float  # m/s
    v_free: float  # m/s, own desired speed
    excess: float  # km/h over a signed limit this driver allows himself
    limit_kmh: float | None = None  # last limit a sign showed this driver


def sight_speed(vis_m: float) -> float:
    """Fastest speed (m/s) at which a driver who rates visibility at vis*1.5 can stop within it."""
    d = vis_m * SIGHT_OVERRATE
    a, tr = DECEL, REACTION_S
    return -a * tr + math.sqrt((a * tr) ** 2 + 2 * a * d)


class Traffic:
    def __init__(self, sc, seed: int, visibility, sign_limit) -> None:
        """visibility(road, s_m, t) -> m; sign_limit(road, s_from, s_to) -> limit shown by a sign passed
        between s_from and s_to on the +1 carriageway (None: no sign there, 0: a blank sign)."""
        tr = sc.traffic or {}
        self.rng = random.Random(seed)
        self.flow_vph = float(tr.get("flow_vph", 0))
        sp = tr.get("speed_kmh", {})
        self.mean, self.sd = float(sp.get("mean", 90)), float(sp.get("sd", 10))
        roads = tr.get("roads") or [r for r, m in sc.road_meta.items() if m.get("kind") == "expressway"]
        self.lanes = []
        for r in roads:
            self.lanes.append((r, 1))
            if not sc.road_meta[r].get("oneway"):
                self.lanes.append((r, -1))
        self.length = {r: sc.roads[r].length_m for r in roads}
        self.road_limit = {r: float(sc.road_meta[r].get("speed_kmh", 120)) for r in roads}
        self.visibility, self.sign_limit = visibility, sign_limit
        self.vehicles: dict[tuple[str, int], list[Vehicle]] = {ln: [] for ln in self.lanes}  # front first
        self.next_arrival = {ln: self._gap() for ln in self.lanes}
        self.count = 0
        for ln in self.lanes:
            self._fill(ln)

    def _fill(self, ln: tuple[str, int]) -> None:
        """The road is not empty at t = 0: vehicles already spread at the flow's density."""
        if self.flow_vph <= 0:
            return
        road, d = ln
        L = self.length[road]
        per_m = self.flow_vph / 3600 / (self.mean / 3.6)
        x = self.rng.expovariate(per_m)
        placed = []
        while x < L:
            v_free = max(40.0, min(140.0, self.rng.gauss(self.mean, self.sd))) / 3.6
            self.count += 1
            placed.append(Vehicle(self.count, road, d, x if d > 0 else L - x, v_free, v_free,
                                  max(0.0, self.rng.gauss(5, 5))))
            x += max(VEH_LEN_M + STANDSTILL_M + 20, self.rng.expovariate(per_m))
        self.vehicles[ln] = placed[::-1]  # front (farthest along) first

    def _gap(self) -> float:
        return self.rng.expovariate(self.flow_vph / 3600) if self.flow_vph > 0 else math.inf

    def all(self):
        for ln in self.lanes:
            yield from self.vehicles[ln]

    def step(self, t: float, dt: float, passed) -> None:
        """Advance by dt from t; passed(vehicle, s_from, s_to, t) is called for each vehicle's move."""
        for ln in self.lanes:
            road, d = ln
            cars = self.vehicles[ln]
            L = self.length[road]
            while self.next_arrival[ln] <= t + dt:
                entry = 0.0 if d > 0 else L
                last = cars[-1] if cars else None
                if last is None or abs(last.s - entry) > VEH_LEN_M + STANDSTILL_M + 10:
                    v_free = max(40.0, min(140.0, self.rng.gauss(self.mean, self.sd))) / 3.6
                    excess = max(0.0, self.rng.gauss(5, 5))
                    self.count += 1
                    v0 = v_free if last is None else min(v_free, last.v)
                    cars.append(Vehicle(self.count, road, d, entry, v0, v_free, excess))
                    self.next_arrival[ln] += self._gap()
                else:
                    self.next_arrival[ln] = t + dt + 0.5  # no room: the queue at the entry waits
                    break
            # the busiest loop of the world (every vehicle, every tick): names bound once per lane
            leader = None
            keep = []
            road_v = self.road_limit[road] / 3.6 * 1.1
            visibility, sign_limit = self.visibility, self.sign_limit
            up, down = ACCEL * dt, -DECEL * dt
            for c in cars:  # front first
                target = min(c.v_free, road_v)
                if c.limit_kmh:
                    target = min(target, (c.limit_kmh + c.excess) / 3.6)
                target = min(target, max(3.0, sight_speed(visibility(road, c.s, t))))
                slow = down
                if leader is not None:
                    gap = abs(leader.s - c.s) - VEH_LEN_M - STANDSTILL_M
                    target = min(target, max(0.0, gap / HEADWAY_S))
                    if gap < c.v * HEADWAY_S * 0.5:
                        slow = -DECEL_MAX * dt
                dv = target - c.v
                c.v = max(0.0, c.v + max(slow, min(up, dv)))
                s0 = c.s
                c.s += d * c.v * dt
                if d > 0:
                    lim = sign_limit(road, s0, c.s)
                    if lim is not None:
                        c.limit_kmh = lim or None
                passed(c, s0, c.s, t)
                if 0 <= c.s <= L:
                    keep.append(c)
                    leader = c
            self.vehicles[ln] = keep
