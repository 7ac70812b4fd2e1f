"""Scenario files: a deployment (roads, devices by km marker) plus what happens
in it (fog banks, traffic, patrols, incidents, SOS). Format: docs/scenarios.md.

The same file is the dispatcher console's `--deployment`: it draws the roads
and routes units over them from here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema

from host_tools.deployment.geo import Polyline, Projection

SCHEMA_PATH = Path(__file__).with_name("scenario.schema.json")


class ScenarioError(ValueError):
    """A scenario that cannot be used; the message names the field."""


@dataclass
class BeaconSpec:
    id: str
    road: str
    km: float
    side: str  # "R" (right of the road's direction of travel) or "L"
    section: str
    lat: float
    lon: float


@dataclass
class SignSpec:
    id: str
    road: str
    km: float
    section: str | None
    lat: float
    lon: float


@dataclass
class TrackerSpec:
    id: str
    route: list[dict]  # [{"road", "from_km", "to_km"}], ridden in order, looping
    speed_kmh: float
    start_s: float = 0.0


@dataclass
class Scenario:
    raw: dict
    name: str
    seed: int
    duration_s: float
    proj: Projection
    roads: dict[str, Polyline]
    road_meta: dict[str, dict]
    sections: list[dict]
    beacons: list[BeaconSpec] = field(default_factory=list)
    signs: list[SignSpec] = field(default_factory=list)
    trackers: list[TrackerSpec] = field(default_factory=list)

    @property
    def fog(self) -> list[dict]:
        return self.raw.get("fog", [])

    @property
    def traffic(self) -> dict:
        return self.raw.get("traffic", {})

    @property
    def incidents(self) -> list[dict]:
        return self.raw.get("incidents", [])

    @property
    def sos(self) -> list[dict]:
        return self.raw.get("sos", [])

    def geojson(self) -> dict:
        """Roads, sections and fixed devices as GeoJSON (lon, lat order)."""
        feats = []
        for rid, pl in self.roads.items():
            feats.append({"type": "Feature", "properties": {"kind": "road", "id": rid, **self.road_meta[rid]},
                          "geometry": {"type": "LineString", "coordinates": [[lo, la] for la, lo in pl.latlon]}})
        for s in self.sections:
            pl = self.roads[s["road"]]
            n = max(2, int((s["to_km"] - s["from_km"]) * 20))
            pts = [pl.latlon_at_km(s["from_km"] + (s["to_km"] - s["from_km"]) * i / (n - 1)) for i in range(n)]
            feats.append({"type": "Feature", "properties": {"kind": "section", **s},
                          "geometry": {"type": "LineString", "coordinates": [[lo, la] for la, lo in pts]}})
        for b in self.beacons:
            feats.append({"type": "Feature", "properties": {"kind": "beacon", "id": b.id, "km": b.km, "side": b.side,
                                                             "section": b.section},
                          "geometry": {"type": "Point", "coordinates": [b.lon, b.lat]}})
        for sg in self.signs:
            feats.append({"type": "Feature", "properties": {"kind": "sign", "id": sg.id, "km": sg.km},
                          "geometry": {"type": "Point", "coordinates": [sg.lon, sg.lat]}})
        return {"type": "FeatureCollection", "features": feats}


def _schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def _where(err: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in err.absolute_path) or "(top level)"


def parse(raw: dict, source: str = "<scenario>") -> Scenario:
    errs = sorted(jsonschema.Draft202012Validator(_schema()).iter_errors(raw), key=lambda e: list(e.absolute_path))
    if errs:
        raise ScenarioError("\n".join(f"{source}: {_where(e)}: {e.message}" for e in errs[:10]))
    o = raw["origin"]
    proj = Projection(o["lat"], o["lon"])
    roads: dict[str, Polyline] = {}
    meta: dict[str, dict] = {}
    for i, r in enumerate(raw["roads"]):
        if r["id"] in roads:
            raise ScenarioError(f"{source}: roads.{i}.id: duplicate road id {r['id']!r}")
        roads[r["id"]] = Polyline(r["id"], [tuple(p) for p in r["points"]], proj, r.get("km0", 0.0))
        meta[r["id"]] = {k: r[k] for k in ("kind", "speed_kmh", "oneway", "name") if k in r}

    def road_km(where: str, road: str, km: float) -> Polyline:
        if road not in roads:
            raise ScenarioError(f"{source}: {where}.road: unknown road {road!r}")
        pl = roads[road]
        if not (pl.km0 - 1e-9 <= km <= pl.km_end + 1e-9):
            raise ScenarioError(f"{source}: {where}: km {km} is outside road {road} ({pl.km0:.3f}-{pl.km_end:.3f})")
        return pl

    sections = raw.get("sections", [])
    for i, s in enumerate(sections):
        road_km(f"sections.{i}", s["road"], s["from_km"])
        road_km(f"sections.{i}", s["road"], s["to_km"])
        if s["to_km"] <= s["from_km"]:
            raise ScenarioError(f"{source}: sections.{i}: to_km must be greater than from_km")
    sc = Scenario(raw, raw["name"], raw.get("seed", 1), raw.get("duration_s", 600), proj, roads, meta, sections)

    dev = raw.get("devices", {})
    bc = dev.get("beacons")
    if bc:
        spacing = bc.get("spacing_m", 30)
        offset = bc.get("side_offset_m", 8)
        prefix = bc.get("id_prefix", "bcn")
        for s in sections:
            if bc.get("sections") and s["id"] not in bc["sections"]:
                continue
            pl = roads[s["road"]]
            n = int(round((s["to_km"] - s["from_km"]) * 1000 / spacing)) + 1
            for side in bc.get("sides", ["R", "L"]):
                for k in range(n):
                    km = round(s["from_km"] + k * spacing / 1000, 4)
                    lat, lon = pl.offset_latlon_at_km(km, offset if side == "R" else -offset)
                    sc.beacons.append(BeaconSpec(f"{prefix}-{s['id'].lower()}-{side.lower()}{k:03d}", s["road"], km,
                                                 side, s["id"], lat, lon))
    for i, sg in enumerate(dev.get("signs", [])):
        pl = road_km(f"devices.signs.{i}", sg["road"], sg["km"])
        lat, lon = pl.offset_latlon_at_km(sg["km"], 10)
        sc.signs.append(SignSpec(sg["id"], sg["road"], sg["km"], sg.get("section"), lat, lon))
    for i, t in enumerate(dev.get("trackers", [])):
        for j, leg in enumerate(t["route"]):
            road_km(f"devices.trackers.{i}.route.{j}", leg["road"], leg["from_km"])
            road_km(f"devices.trackers.{i}.route.{j}", leg["road"], leg["to_km"])
            if meta.get(leg["road"], {}).get("oneway") and leg["to_km"] < leg["from_km"]:
                raise ScenarioError(f"{source}: devices.trackers.{i}.route.{j}: road {leg['road']} is one-way: "
                                    "ride it from the lower km to the higher")
        sc.trackers.append(TrackerSpec(t["id"], t["route"], t.get("speed_kmh", 60), t.get("start_s", 0)))
    ids = [b.id for b in sc.beacons] + [s.id for s in sc.signs] + [t.id for t in sc.trackers]
    dup = {x for x in ids if ids.count(x) > 1} if len(ids) < 5000 else set()
    if dup:
        raise ScenarioError(f"{source}: devices: duplicate device ids {sorted(dup)[:5]}")
    return sc


def load(path: str | Path) -> Scenario:
    p = Path(path)
    try:
        raw = json.loads(p.read_text())
    except FileNotFoundError:
        raise ScenarioError(f"{p}: no such scenario file") from None
    except json.JSONDecodeError as e:
        raise ScenarioError(f"{p}: not valid JSON: {e}") from None
    return parse(raw, str(p))
