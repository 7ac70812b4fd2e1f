"""Track export: GPX 1.1 and GeoJSON (pure)."""
from __future__ import annotations

import time
from xml.sax.saxutils import escape


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def to_gpx(unit: str, pts: list[dict]) -> str:
    seg = "\n".join(
        f'      <trkpt lat="{p["lat"]:.7f}" lon="{p["lon"]:.7f}"><time>{_iso(p["tst"])}</time>'
        + (f'<extensions><speed_kmh>{p["vel"]}</speed_kmh></extensions>' if p.get("vel") is not None else "")
        + "</trkpt>" for p in pts)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<gpx version="1.1" creator="roadedge dispatch" xmlns="http://www.topografix.com/GPX/1/1">\n'
            f'  <trk><name>{escape(unit)}</name>\n    <trkseg>\n{seg}\n    </trkseg>\n  </trk>\n</gpx>\n')


def to_geojson(unit: str, pts: list[dict]) -> dict:
    return {"type": "FeatureCollection", "features": [{
        "type": "Feature",
        "properties": {"unit": unit, "times": [_iso(p["tst"]) for p in pts], "tst": [p["tst"] for p in pts],
                       "vel": [p.get("vel") for p in pts]},
        "geometry": {"type": "LineString", "coordinates": [[p["lon"], p["lat"]] for p in pts]}}]}
