"""Reports read from the console's SQLite store (reports.py does the arithmetic).

A report runs on its own read-only connection: SQLite's WAL lets it read while ingest writes, so a
long report never holds up an SOS. One unit's day of fixes is in memory at a time (at most
MAX_FIXES_PER_UNIT of them; more are counted, not read).
"""
from __future__ import annotations

import calendar
import contextlib
import datetime as dt
import json
import sqlite3
import time

from . import reports as R

MAX_DAYS = 31
MAX_FIXES_PER_UNIT = 400_000  # 1 Hz for 4.6 days: beyond any real day of one unit
MAX_INCIDENTS = 5000


def window(day: str, days: int = 1, tz_min: int = 0, now: float | None = None) -> tuple[float, float, float]:
    """[start, end) of `days` calendar days from `day` (YYYY-MM-DD) in a zone tz_min minutes east of
    UTC, and the end clipped to now (no time in the future is counted). ValueError when malformed."""
    d = dt.date.fromisoformat(day)
    if not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be 1..{MAX_DAYS}")
    if not isinstance(tz_min, int) or not -14 * 60 <= tz_min <= 14 * 60:
        raise ValueError("tz must be minutes east of UTC, -840..840")
    t0 = calendar.timegm(d.timetuple()) - tz_min * 60
    t1 = t0 + days * 86400
    return float(t0), float(t1), float(min(t1, now if now is not None else time.time()))


def _units(con, lo: float, hi: float, t0: float, t1: float) -> list[str]:
    fixes = {r[0] for r in con.execute("SELECT DISTINCT device FROM positions WHERE tst >= ? AND tst < ?", (lo, hi))}
    duty = {r[0] for r in con.execute(
        "SELECT DISTINCT s.device FROM state_log s JOIN devices d ON d.id = s.device WHERE d.role = 'tracker' "
        "AND s.kind = 'state' AND s.rx >= ? AND s.rx < ?", (t0, t1))}
    return sorted(fixes | duty)


def _changes(con, unit: str, t0: float, t1: float) -> list[tuple[float, str, str | None]]:
    """The unit's duty and link changes in [t0, t1), with the last of each before t0."""
    rows = []
    for kind in ("state", "status"):
        rows += con.execute("SELECT rx, kind, body FROM state_log WHERE device = ? AND kind = ? AND rx < ? "
                            "ORDER BY rx DESC LIMIT 1", (unit, kind, t0)).fetchall()
        rows += con.execute("SELECT rx, kind, body FROM state_log WHERE device = ? AND kind = ? AND rx >= ? "
                            "AND rx < ? ORDER BY rx", (unit, kind, t0, t1)).fetchall()
    out: list[tuple[float, str, str | None]] = []
    for rx, kind, body in rows:
        if kind == "status":
            out.append((rx, "link", str(body)))
            continue
        try:
            st = json.loads(body)
        except (TypeError, ValueError):
            continue
        if isinstance(st, dict) and "duty" in st:
            duty = st["duty"]
            out.append((rx, "duty", duty if isinstance(duty, str) else None))
    return out


def build(db_path: str, sections: list[R.Section], t0: float, t1: float, now_end: float) -> dict:
    """The report for [t0, t1), counted up to now_end (<= t1): units, sections, incidents."""
    con = sqlite3.connect(db_path, timeout=30)
    con.row_factory = sqlite3.Row
    with contextlib.closing(con):
        con.execute("PRAGMA query_only = ON")
        lo, hi = t0 - R.MAX_GAP_S, now_end + R.MAX_GAP_S  # the fixes either side close the edge segments
        units, presence, truncated = [], {}, 0
        for unit in _units(con, lo, hi, t0, now_end):
            rows = con.execute("SELECT tst, lat, lon, vel FROM positions WHERE device = ? AND tst >= ? AND tst < ? "
                               "ORDER BY tst, seq LIMIT ?", (unit, lo, hi, MAX_FIXES_PER_UNIT + 1)).fetchall()
            if len(rows) > MAX_FIXES_PER_UNIT:
                rows, truncated = rows[:MAX_FIXES_PER_UNIT], truncated + 1
            counts: dict = {}
            fixes = list(R.clean_track(rows, counts, sections[0].proj if sections else None))
            del rows
            row = R.unit_day(unit, fixes, _changes(con, unit, t0, now_end), t0, now_end, counts)
            units.append(row)
            presence[unit] = R.presence_intervals(fixes, sections, t0, now_end)
        incs = [dict(r) for r in con.execute("SELECT * FROM incidents WHERE created >= ? AND created < ? "
                                             "ORDER BY id LIMIT ?", (t0, t1, MAX_INCIDENTS))]
        ids = [i["id"] for i in incs]
        disp = [dict(r) for r in con.execute(
            f"SELECT * FROM dispatches WHERE incident IN ({','.join('?' * len(ids))})", ids)] if ids else []
    incidents = [R.incident_response(i, disp, sections) for i in incs]
    return {"from": t0, "to": t1, "until": now_end, "units": units,
            "sections": R.section_rows(sections, R.section_presence(presence, sections, t0, now_end), incidents,
                                       t0, now_end),
            "incidents": incidents, "truncated_units": truncated}


def build_days(db_path: str, sections: list[R.Section], day: str, days: int = 1, tz_min: int = 0,
               now: float | None = None) -> list[dict]:
    """One report per calendar day (a day not yet begun is left out)."""
    t0, _, _ = window(day, days, tz_min, now)
    now = time.time() if now is None else now
    out = []
    for i in range(days):
        a, b = t0 + i * 86400, t0 + (i + 1) * 86400
        if a >= now:
            break
        rep = build(db_path, sections, a, b, min(b, now))
        rep["day"] = (dt.date.fromisoformat(day) + dt.timedelta(days=i)).isoformat()
        out.append(rep)
    return out
