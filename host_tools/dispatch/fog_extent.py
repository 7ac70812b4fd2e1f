"""Fog extent along the road from the beacons' reported visibility (pure)."""
from __future__ import annotations

from roadedge import wire

FOG_M = 500.0  # weather-service yellow warning threshold (domain.md)
HALF_COVER_M = 20.0  # each beacon speaks for this much road either side


def visibility(state: dict) -> float | None:
    v = state.get(wire.F_VIS)  # the beacon's state field (roadedge.wire)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    return None


def fog_segments(sc, beacons: list[tuple[object, dict]], threshold: float = FOG_M) -> list[dict]:
    """[(BeaconSpec, state)] -> [{road, from_km, to_km, min_vis, points: [[lat, lon], ...]}]."""
    per_road: dict[str, list[tuple[float, float]]] = {}
    for spec, st in beacons:
        v = visibility(st)
        if v is not None and v < threshold:
            per_road.setdefault(spec.road, []).append((spec.km, v))
    out = []
    for road, pts in per_road.items():
        pts.sort()
        pl = sc.roads[road]
        gap = 2 * HALF_COVER_M / 1000 + 0.025
        start, end, vmin = pts[0][0], pts[0][0], pts[0][1]
        for km, v in pts[1:] + [(float("inf"), 0.0)]:
            if km - end <= gap:
                end, vmin = km, min(vmin, v)
                continue
            a = max(pl.km0, start - HALF_COVER_M / 1000)
            b = min(pl.km_end, end + HALF_COVER_M / 1000)
            n = max(2, int((b - a) * 50) + 1)
            out.append({"road": road, "from_km": round(a, 3), "to_km": round(b, 3), "min_vis": vmin,
                        "points": [list(pl.latlon_at_km(a + (b - a) * i / (n - 1))) for i in range(n)]})
            start, end, vmin = km, km, v
    return out
