"""Shift and section reports from stored fixes, duty states and dispatches (pure: data in, rows out).

Per unit and day: distance, time on patrol / en route / on scene / off duty / offline, stops.
Per fog section and day: patrol presence (time with at least one unit inside or near it, the
longest stretch without one) and the response times to the incidents in it.

Stored data is not trusted to be clean: a fix that is not a finite position is left out and
counted, a jump faster than any motorcycle is a GNSS glitch (left out, counted), movement while
stopped shorter than the GNSS noise is not distance, and a gap longer than a stopped tracker's
hourly report (domain.md: smart reporting) is time we know nothing about, not time on a section.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from host_tools.deployment.geo import EARTH_R, Polyline, Projection

STOP_KMH = 5.0  # domain.md: stop = speed < 5 km/h for > 120 s
STOP_MIN_S = 120.0
MAX_KMH = 300.0  # faster than this between two fixes: a glitch, not a ride
JITTER_M = 30.0  # a stopped unit's fixes wander this much: not distance
MAX_GAP_S = 3900.0  # a stopped tracker reports hourly; a longer silence is unknown, not presence
NEAR_M = 200.0  # a unit this close to a section's road counts as present on it
SAMPLE_M = 25.0  # presence along a segment between two fixes is judged every this many metres
DUTY_KEYS = {"patrol": "patrol_s", "dispatched": "en_route_s", "on_scene": "on_scene_s", "off_duty": "off_duty_s"}


def _num(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


class Fix:
    """A fix with its place on the deployment's local metric plane (x east, y north, metres)."""

    __slots__ = ("tst", "lat", "lon", "vel", "x", "y")

    def __init__(self, tst: float, lat: float, lon: float, vel: float | None, x: float = 0.0, y: float = 0.0):
        self.tst, self.lat, self.lon, self.vel, self.x, self.y = tst, lat, lon, vel, x, y


BREAK = Fix(float("nan"), 0.0, 0.0, None)  # in a cleaned track: no distance or presence across it


def _parse(row, plane: list) -> Fix | None:
    """A stored fix (mapping with tst, lat, lon, vel) or None when it is not a usable position."""
    try:
        tst, lat, lon = _num(row["tst"]), _num(row["lat"]), _num(row["lon"])
        vel = _num(row["vel"])
    except (KeyError, TypeError, IndexError):
        return None
    if tst is None or lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    if not plane:  # no deployment: a plane around the first fix
        plane[:] = [lat, lon, math.cos(math.radians(lat)) * _RAD_M]
    lat0, lon0, kx = plane
    return Fix(tst, lat, lon, vel if vel is not None and vel >= 0 else None, (lon - lon0) * kx, (lat - lat0) * _RAD_M)


_RAD_M = math.radians(1) * EARTH_R  # metres per degree of latitude


def _d(a: Fix, b: Fix) -> float:
    return math.hypot(b.x - a.x, b.y - a.y)


def clean_track(rows: Iterable, counts: dict, proj: Projection | None = None) -> Iterable[Fix]:
    """The fixes worth measuring, in time order, placed on proj's plane (the deployment's, so that
    they meet its sections; without one, a plane around the first fix). Bad ones and glitches are
    left out and counted (counts["bad_fixes"], counts["jumps"]). A jump that the next fix confirms
    is a real move (a catch-up after a gap, say): the track carries on from there after a BREAK."""
    plane: list = [proj.lat0, proj.lon0, math.cos(math.radians(proj.lat0)) * _RAD_M] if proj else []
    last: Fix | None = None
    pending: Fix | None = None
    for row in rows:
        f = _parse(row, plane)
        if f is None:
            counts["bad_fixes"] = counts.get("bad_fixes", 0) + 1
            continue
        if last is not None and f.tst <= last.tst:
            if f.tst < last.tst:  # out of order: stored history is sorted, so this is a bad clock
                counts["bad_fixes"] = counts.get("bad_fixes", 0) + 1
            continue
        if last is None or _plausible(last, f):
            pending = None
            last = f
            yield f
        elif pending is not None and f.tst > pending.tst and _plausible(pending, f):
            yield BREAK  # the jump was real
            yield pending
            yield f
            last, pending = f, None
        else:
            counts["jumps"] = counts.get("jumps", 0) + 1
            pending = f


def _plausible(a: Fix, b: Fix) -> bool:
    return _d(a, b) / (b.tst - a.tst) * 3.6 <= MAX_KMH


def _is_break(f: Fix) -> bool:
    return math.isnan(f.tst)


def _overlap(a: float, b: float, t0: float, t1: float) -> float:
    return max(0.0, min(b, t1) - max(a, t0))


def _at_rest(prev: Fix | None, f: Fix) -> bool:
    """Below the stop speed: by the fix's own speed, else by its move since the last fix."""
    if f.vel is not None:
        return f.vel < STOP_KMH
    if prev is None:
        return False
    return _d(prev, f) / (f.tst - prev.tst) * 3.6 < STOP_KMH


@dataclass
class Stop:
    start: float
    end: float
    lat: float
    lon: float

    @property
    def duration_s(self) -> float:
        return self.end - self.start


def track_summary(fixes: Iterable[Fix], t0: float, t1: float) -> dict:
    """Distance (m) within [t0, t1), the stops that began in it and the fixes in it. Fixes just
    outside the window close the segments and stops that cross its edges.

    A stop runs from the first fix at rest to the next fix moving again (or, when the track ends
    or falls silent for more than MAX_GAP_S, to the last fix at rest), and counts from STOP_MIN_S."""
    dist, n, first, last = 0.0, 0, None, None
    stops: list[Stop] = []
    prev: Fix | None = None
    prev_rest = False
    run: Stop | None = None  # the stop under way: start, last fix at rest

    def close(end: float) -> None:
        nonlocal run
        if run is not None and end - run.start > STOP_MIN_S and t0 <= run.start < t1:
            stops.append(Stop(run.start, end, run.lat, run.lon))
        run = None

    for f in fixes:
        if _is_break(f):
            if run is not None:
                close(run.end)
            prev, prev_rest = None, False
            continue
        if t0 <= f.tst < t1:
            n += 1
            first = f.tst if first is None else first
            last = f.tst
        rest = _at_rest(prev, f)
        if prev is not None:
            dt = f.tst - prev.tst
            d = _d(prev, f)
            if rest and prev_rest and d < JITTER_M:
                d = 0.0  # GNSS noise around a parked bike
            dist += d * _overlap(prev.tst, f.tst, t0, t1) / dt
            if run is not None and dt > MAX_GAP_S:
                close(run.end)  # silence: the stop lasted at least until the last fix we had
        if rest:
            if run is None:
                run = Stop(f.tst, f.tst, f.lat, f.lon)
            run.end = f.tst
        elif run is not None:
            close(f.tst)  # moving again
        prev, prev_rest = f, rest
    if run is not None:
        close(run.end)
    return {"distance_m": dist, "fixes": n, "first_fix": first, "last_fix": last, "stops": stops}


def duty_times(changes: Iterable[tuple[float, str, str | None]], t0: float, t1: float) -> dict | None:
    """Seconds per duty status within [t0, t1) from the unit's state changes in time order:
    (time, "duty", status) and (time, "link", "online"/"offline"), including the last of each
    before t0. Offline counts as offline whatever the duty was. None without any duty state."""
    out = {k: 0.0 for k in DUTY_KEYS.values()} | {"offline_s": 0.0, "unknown_s": 0.0}
    duty: str | None = None
    online = True
    at = t0
    seen = False
    for t, what, value in sorted((c for c in changes if _num(c[0]) is not None), key=lambda c: c[0]):
        if t > at:
            _credit(out, duty, online, at, min(t, t1))
            at = max(at, min(t, t1))
        if what == "duty":
            duty = value if value in DUTY_KEYS else None
            seen = seen or duty is not None
        elif what == "link":
            online = value != "offline"
    if not seen:
        return None
    _credit(out, duty, online, at, t1)
    return out


def _credit(out: dict, duty: str | None, online: bool, a: float, b: float) -> None:
    span = b - a
    if span <= 0:
        return
    key = "offline_s" if not online else DUTY_KEYS.get(duty or "", "unknown_s")
    out[key] += span


def unit_day(unit: str, fixes: Iterable[Fix], changes: Iterable, t0: float, t1: float,
             counts: dict | None = None) -> dict:
    """One unit's row for [t0, t1) from its cleaned track (clean_track, whose counts say what it
    left out) and its state changes (duty_times)."""
    counts = counts or {}
    s = track_summary(fixes, t0, t1)
    stops = s["stops"]
    return {"unit": unit, "distance_km": round(s["distance_m"] / 1000, 3), "duty": duty_times(changes, t0, t1),
            "stops": len(stops), "stopped_s": round(sum(min(x.end, t1) - x.start for x in stops)),
            "longest_stop_s": round(max((x.duration_s for x in stops), default=0)),
            "stop_list": [{"start": x.start, "end": x.end, "lat": x.lat, "lon": x.lon} for x in stops],
            "fixes": s["fixes"], "first_fix": s["first_fix"], "last_fix": s["last_fix"],
            "bad_fixes": counts.get("bad_fixes", 0), "jumps": counts.get("jumps", 0)}


# -- fog sections ------------------------------------------------------------------------
@dataclass
class Section:
    """A fog section as a line on the deployment's local plane, with its bounding box widened by near_m."""

    id: str
    name: str
    road: str
    from_km: float
    to_km: float
    line: Polyline  # the section's stretch of its road
    near_m: float = NEAR_M
    box: tuple[float, float, float, float] = field(init=False)

    def __post_init__(self) -> None:
        self.proj = self.line.proj
        xs, ys = [p[0] for p in self.line.xy], [p[1] for p in self.line.xy]
        m = self.near_m
        self.box = (min(xs) - m, min(ys) - m, max(xs) + m, max(ys) + m)

    @staticmethod
    def from_scenario(sc) -> list[Section]:
        out = []
        for s in sc.sections:
            pl = sc.roads[s["road"]]
            n = max(2, int((s["to_km"] - s["from_km"]) * 20) + 1)
            pts = [pl.latlon_at_km(s["from_km"] + (s["to_km"] - s["from_km"]) * i / (n - 1)) for i in range(n)]
            out.append(Section(s["id"], s.get("name") or s["id"], s["road"], s["from_km"], s["to_km"],
                               Polyline(s["id"], pts, sc.proj)))
        return out

    def distance_m(self, x: float, y: float) -> float:
        return self.line.project(x, y)[1]

    def box_distance_m(self, x: float, y: float) -> float:
        """A cheap lower bound of distance_m: the distance to the section line's bounding box."""
        b, m = self.box, self.near_m
        return math.hypot(max(b[0] + m - x, 0.0, x - b[2] + m), max(b[1] + m - y, 0.0, y - b[3] + m))

    def near(self, x: float, y: float) -> bool:
        return self.box_distance_m(x, y) <= self.near_m and self.distance_m(x, y) <= self.near_m


def _merge(iv: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(iv):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        elif b > a:
            out.append((a, b))
    return out


def presence_intervals(fixes: Iterable[Fix], sections: list[Section], t0: float, t1: float) -> dict[str, list]:
    """{section id: merged [(from, to)]} within [t0, t1) during which this unit was near the section
    (fixes from clean_track on the sections' plane). Between two fixes at most MAX_GAP_S apart the
    unit moved along the straight line: a stretch whose ends prove it all near or all far (every
    point of it is within (d_a + d_b ± length) / 2 of the section) is decided at once, any other is
    judged every SAMPLE_M along it."""
    out: dict[str, list[tuple[float, float]]] = {s.id: [] for s in sections}
    r = NEAR_M
    prev: Fix | None = None
    prev_d: list[tuple[float, bool]] = []  # per section: distance (or a lower bound), exact?
    for f in fixes:
        if _is_break(f) or not sections:
            prev = None
            continue
        cur = [(s.box_distance_m(f.x, f.y), False) for s in sections]  # made exact only when it matters
        if prev is not None and f.tst - prev.tst <= MAX_GAP_S and _overlap(prev.tst, f.tst, t0, t1) > 0:
            L = _d(prev, f)
            for i, s in enumerate(sections):
                (da, ea), (db, eb) = prev_d[i], cur[i]
                if (da + db - L) / 2 > r:
                    continue  # all of it far (true of the lower bounds, so of the distances)
                if not ea:
                    da = s.distance_m(prev.x, prev.y)
                    prev_d[i] = (da, True)
                if not eb:
                    db = s.distance_m(f.x, f.y)
                    cur[i] = (db, True)
                if (da + db - L) / 2 > r:
                    continue
                if (da + db + L) / 2 <= r:
                    spans = [(prev.tst, f.tst)]  # all of it near
                else:
                    n = min(400, max(1, math.ceil(L / SAMPLE_M)))
                    dt = (f.tst - prev.tst) / n
                    spans = [(prev.tst + i * dt, prev.tst + (i + 1) * dt) for i in range(n)
                             if s.near(prev.x + (f.x - prev.x) * (i + 0.5) / n, prev.y + (f.y - prev.y) * (i + 0.5) / n)]
                for a, b in spans:
                    a, b = max(a, t0), min(b, t1)
                    if b > a:
                        out[s.id].append((a, b))
        prev, prev_d = f, cur
    return {k: _merge(v) for k, v in out.items()}


def section_presence(per_unit: dict[str, dict[str, list]], sections: list[Section], t0: float, t1: float) -> dict:
    """{section id: {presence_s, longest_gap_s, units_seen, unit_s}} from each unit's intervals."""
    out = {}
    for s in sections:
        all_iv, seen, unit_s = [], [], 0.0
        for unit, ivs in sorted(per_unit.items()):
            mine = ivs.get(s.id) or []
            if mine:
                seen.append(unit)
                unit_s += sum(b - a for a, b in mine)
                all_iv.extend(mine)
        merged = _merge(all_iv)
        gaps, at = [], t0
        for a, b in merged:
            gaps.append(a - at)
            at = b
        gaps.append(t1 - at)
        out[s.id] = {"presence_s": round(sum(b - a for a, b in merged)), "longest_gap_s": round(max(gaps)),
                     "units_seen": seen, "unit_s": round(unit_s)}
    return out


# -- incidents and response times ------------------------------------------------------------
def _first(values) -> float | None:
    vals = [v for v in (_num(x) for x in values) if v is not None]
    return min(vals) if vals else None


def incident_response(inc: dict, dispatches: list[dict], sections: list[Section]) -> dict:
    """Times from the incident's creation to its first dispatch, first acceptance and first unit on
    scene; a time before the creation (a bad clock) is left out."""
    created = _num(inc.get("created"))
    lat, lon = _num(inc.get("lat")), _num(inc.get("lon"))
    section = None
    if lat is not None and lon is not None and sections:
        x, y = sections[0].proj.to_xy(lat, lon)
        near = sorted((s.distance_m(x, y), s.id) for s in sections if s.near(x, y))
        section = near[0][1] if near else None
    mine = [d for d in dispatches if d.get("incident") == inc.get("id")]

    def since(key: str) -> float | None:
        t = _first(d.get(key) for d in mine)
        return None if t is None or created is None or t < created else round(t - created, 1)

    return {"incident": inc.get("id"), "section": section, "created": created, "priority": inc.get("priority"),
            "text": inc.get("text") or "", "status": inc.get("status"),
            "units": sorted({str(d.get("unit")) for d in mine}), "to_dispatch_s": since("sent"),
            "to_accept_s": since("accepted"), "response_s": since("on_scene")}


def _median(v: list[float]) -> float | None:
    if not v:
        return None
    v = sorted(v)
    m = len(v) // 2
    return v[m] if len(v) % 2 else (v[m - 1] + v[m]) / 2


def section_rows(sections: list[Section], presence: dict, incidents: list[dict], t0: float, t1: float) -> list[dict]:
    rows = []
    span = max(1e-9, t1 - t0)
    for s in sections:
        p = presence.get(s.id) or {"presence_s": 0, "longest_gap_s": round(t1 - t0), "units_seen": [], "unit_s": 0}
        mine = [i for i in incidents if i["section"] == s.id]
        resp = [i["response_s"] for i in mine if i["response_s"] is not None]
        rows.append({"section": s.id, "name": s.name, "road": s.road, "from_km": s.from_km, "to_km": s.to_km,
                     **p, "presence_pct": round(100 * p["presence_s"] / span, 1), "incidents": len(mine),
                     "reached": len(resp), "median_response_s": _median(resp),
                     "max_response_s": max(resp) if resp else None})
    return rows


# -- tables (the CSV export and the console show the same columns) -----------------------------
TABLES = {
    "units": ["day", "unit", "distance_km", "patrol_min", "en_route_min", "on_scene_min", "off_duty_min",
              "offline_min", "stops", "stopped_min", "longest_stop_min", "fixes", "first_fix", "last_fix",
              "bad_fixes", "jumps"],
    "sections": ["day", "section", "name", "road", "from_km", "to_km", "presence_min", "presence_pct",
                 "longest_gap_min", "units_seen", "unit_min", "incidents", "reached", "median_response_min",
                 "max_response_min"],
    "incidents": ["day", "incident", "section", "created", "priority", "text", "status", "units", "to_dispatch_s",
                  "to_accept_s", "response_s"],
}


def _min(s) -> float | None:
    return None if s is None else round(s / 60, 1)


def iso(t: float | None, tz_min: int) -> str | None:
    if t is None:
        return None
    z = dt.timezone(dt.timedelta(minutes=tz_min))
    return dt.datetime.fromtimestamp(t, z).isoformat(timespec="seconds")


def table(report: dict, name: str, tz_min: int = 0) -> list[dict]:
    """One day's report (reports_db.build) as rows of TABLES[name]."""
    day = report.get("day")
    if name == "units":
        out = []
        for u in report["units"]:
            d = u["duty"] or {}
            out.append({"day": day, "unit": u["unit"], "distance_km": u["distance_km"],
                        "patrol_min": _min(d.get("patrol_s")), "en_route_min": _min(d.get("en_route_s")),
                        "on_scene_min": _min(d.get("on_scene_s")), "off_duty_min": _min(d.get("off_duty_s")),
                        "offline_min": _min(d.get("offline_s")), "stops": u["stops"],
                        "stopped_min": _min(u["stopped_s"]), "longest_stop_min": _min(u["longest_stop_s"]),
                        "fixes": u["fixes"], "first_fix": iso(u["first_fix"], tz_min),
                        "last_fix": iso(u["last_fix"], tz_min), "bad_fixes": u["bad_fixes"], "jumps": u["jumps"]})
        return out
    if name == "sections":
        return [{**{k: s[k] for k in ("section", "name", "road", "from_km", "to_km", "presence_pct", "incidents",
                                      "reached")},
                 "day": day, "presence_min": _min(s["presence_s"]), "longest_gap_min": _min(s["longest_gap_s"]),
                 "units_seen": len(s["units_seen"]), "unit_min": _min(s["unit_s"]),
                 "median_response_min": _min(s["median_response_s"]), "max_response_min": _min(s["max_response_s"])}
                for s in report["sections"]]
    if name == "incidents":
        return [{**i, "day": day, "created": iso(i["created"], tz_min), "units": " ".join(i["units"])}
                for i in report["incidents"]]
    raise ValueError(f"table must be one of {', '.join(TABLES)}")
