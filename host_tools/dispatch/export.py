"""Exports: tracks as GPX 1.1 and GeoJSON, report tables as CSV (pure)."""
from __future__ import annotations

import csv
import io
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


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "|", "%")


def csv_cell(v) -> str | int | float:
    """Numbers stay numbers; text that a spreadsheet would run as a formula gets a leading quote."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float)):
        return v
    s = str(v)
    return "'" + s if s.startswith(_FORMULA_START) else s


def to_csv(columns: list[str], rows: list[dict]) -> str:
    """RFC 4180 CSV with a header, with a byte-order mark so spreadsheets read it as UTF-8."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([csv_cell(c) for c in columns])
    for r in rows:
        w.writerow([csv_cell(r.get(c)) for c in columns])
    return "\ufeff" + buf.getvalue()
