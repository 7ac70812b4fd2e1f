"""Road geometry: polylines with km markers on a local metric plane.

Scenarios give roads as lat/lon polylines. Everything that needs distances
(device placement by km marker, vehicle motion, fog extent, snapping a unit to
the road network) works on a local equirectangular projection around the
scenario origin: at city scale (tens of km) its error is far below GNSS noise.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

EARTH_R = 6371008.8


@dataclass(frozen=True)
class Projection:
    lat0: float
    lon0: float

    def to_xy(self, lat: float, lon: float) -> tuple[float, float]:
        k = math.cos(math.radians(self.lat0))
        return (math.radians(lon - self.lon0) * EARTH_R * k, math.radians(lat - self.lat0) * EARTH_R)

    def to_latlon(self, x: float, y: float) -> tuple[float, float]:
        k = math.cos(math.radians(self.lat0))
        return (self.lat0 + math.degrees(y / EARTH_R), self.lon0 + math.degrees(x / (EARTH_R * k)))


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_R * math.asin(min(1.0, math.sqrt(a)))


@dataclass
class Polyline:
    """A road centre line; `km0` is the km marker at its first point."""

    id: str
    latlon: list[tuple[float, float]]
    proj: Projection
    km0: float = 0.0
    xy: list[tuple[float, float]] = field(init=False)
    cum: list[float] = field(init=False)  # metres from the first point

    def __post_init__(self) -> None:
        if len(self.latlon) < 2:
            raise ValueError(f"road {self.id}: needs at least 2 points")
        self.xy = [self.proj.to_xy(la, lo) for la, lo in self.latlon]
        self.cum = [0.0]
        for (x1, y1), (x2, y2) in zip(self.xy, self.xy[1:], strict=False):
            self.cum.append(self.cum[-1] + math.hypot(x2 - x1, y2 - y1))

    @property
    def length_m(self) -> float:
        return self.cum[-1]

    @property
    def km_end(self) -> float:
        return self.km0 + self.length_m / 1000

    def point_at_m(self, s: float) -> tuple[float, float, float]:
        """(x, y, heading_deg) at s metres from the start (clamped)."""
        s = min(max(s, 0.0), self.length_m)
        i = max(1, bisect.bisect_left(self.cum, s))
        i = min(i, len(self.cum) - 1)
        seg = self.cum[i] - self.cum[i - 1] or 1e-9
        f = (s - self.cum[i - 1]) / seg
        (x1, y1), (x2, y2) = self.xy[i - 1], self.xy[i]
        heading = (math.degrees(math.atan2(x2 - x1, y2 - y1)) + 360) % 360
        return (x1 + f * (x2 - x1), y1 + f * (y2 - y1), heading)

    def latlon_at_km(self, km: float) -> tuple[float, float]:
        x, y, _ = self.point_at_m((km - self.km0) * 1000)
        return self.proj.to_latlon(x, y)

    def offset_latlon_at_km(self, km: float, side_m: float) -> tuple[float, float]:
        """A point side_m to the right (+) or left (-) of the direction of travel."""
        x, y, h = self.point_at_m((km - self.km0) * 1000)
        r = math.radians(h + 90)
        return self.proj.to_latlon(x + side_m * math.sin(r), y + side_m * math.cos(r))

    def project(self, x: float, y: float) -> tuple[float, float]:
        """Nearest point on the line: (metres along, distance off the line)."""
        best = (0.0, float("inf"))
        for i in range(1, len(self.xy)):
            (x1, y1), (x2, y2) = self.xy[i - 1], self.xy[i]
            dx, dy = x2 - x1, y2 - y1
            L2 = dx * dx + dy * dy or 1e-9
            t = max(0.0, min(1.0, ((x - x1) * dx + (y - y1) * dy) / L2))
            px, py = x1 + t * dx, y1 + t * dy
            d = math.hypot(x - px, y - py)
            if d < best[1]:
                best = (self.cum[i - 1] + t * math.sqrt(L2), d)
        return best
