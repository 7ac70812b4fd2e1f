"""What devices said, made safe for the page before the console serves it.

Any device may publish any JSON in its own state, info and telemetry (and claim a role), so
nothing it sent reaches a browser unchecked: positions are finite numbers in range or nothing,
known numeric columns are finite and in range, free-form JSON is cut to a bounded depth, width
and string length, and non-finite numbers become null. Each kind of repair is counted once per
device and field (so a page reload does not count it again); the console shows the counts.
"""
from __future__ import annotations

import math
import threading
from collections import Counter

MAX_DEPTH = 8  # the page reads at most 4 levels (zone -> signs -> sign -> pending.limit)
MAX_ITEMS = 200
MAX_STR = 1000
MAX_KEY = 64

# device columns (store.DEVICE_COLS) that are numbers: (lo, hi, integer)
NUMERIC = {"last_seen": (0, 2**40, False), "tst": (0, 2**40, False), "vel": (0, 1000, False),
           "cog": (0, 360, False), "acc": (0, 1e6, False), "hdop": (0, 100, False), "sat": (0, 1000, True),
           "fix": (0, 10, True), "live": (0, 1, True), "pos_seq": (-2**63, 2**63 - 1, True)}
TEXT = {"id": 64, "role": 32, "status": 16}
FREE_JSON = ("info", "state", "tele")


def number(v, lo: float, hi: float, integer: bool = False) -> int | float | None:
    """v if it is a finite number (not a bool) within [lo, hi], else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    if integer and not isinstance(v, int):
        return None
    if not (lo <= v <= hi):  # also false for NaN
        return None
    return v


def position(lat, lon) -> tuple[float | None, float | None]:
    """(lat, lon) when both are finite numbers in range, else (None, None)."""
    la, lo = number(lat, -90, 90), number(lon, -180, 180)
    return (la, lo) if la is not None and lo is not None else (None, None)


class PageFilter:
    def __init__(self, remember: int = 10000) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self._seen: set[tuple] = set()
        self._remember = remember

    def count(self, reason: str, *where) -> None:
        key = (reason, *where)
        with self.lock:
            if key in self._seen:
                return
            if len(self._seen) >= self._remember:
                self._seen.clear()
            self._seen.add(key)
            self.counts[reason] += 1

    def summary(self) -> dict[str, int]:
        with self.lock:
            return dict(self.counts)

    # -- free-form JSON -------------------------------------------------------------
    def json(self, v, where: tuple = (), depth: int = 0):
        """A bounded copy of v: at most MAX_DEPTH levels, MAX_ITEMS per container, MAX_STR per string;
        NaN and infinities become None. Recursion is bounded by MAX_DEPTH, whatever v is."""
        if v is None or isinstance(v, (bool, int)):
            return v
        if isinstance(v, float):
            if math.isfinite(v):
                return v
            self.count("not_finite", *where)
            return None
        if isinstance(v, str):
            if len(v) > MAX_STR:
                self.count("too_long", *where)
                return v[:MAX_STR]
            return v
        if isinstance(v, (dict, list, tuple)):
            if depth >= MAX_DEPTH:
                self.count("too_deep", *where)
                return None
            if len(v) > MAX_ITEMS:
                self.count("too_many", *where)
            if isinstance(v, dict):
                return {str(k)[:MAX_KEY]: self.json(x, where, depth + 1)
                        for k, x in list(v.items())[:MAX_ITEMS]}
            return [self.json(x, where, depth + 1) for x in list(v)[:MAX_ITEMS]]
        self.count("bad_type", *where)
        return None

    def obj(self, v, where: tuple) -> dict | None:
        """A bounded JSON object, or None for anything that is not an object."""
        if v is None:
            return None
        if not isinstance(v, dict):
            self.count("not_object", *where)
            return None
        return self.json(v, where)

    # -- records ------------------------------------------------------------------------
    def device(self, d: dict) -> dict:
        """A devices row (store.devices) with every device-supplied value checked."""
        dev = str(d.get("id"))[:64]
        out = {}
        for k, v in d.items():
            if k in NUMERIC:
                lo, hi, integer = NUMERIC[k]
                out[k] = number(v, lo, hi, integer)
                if v is not None and out[k] is None:
                    self.count("out_of_range", dev, k)
            elif k in TEXT:
                out[k] = v[:TEXT[k]] if isinstance(v, str) else None
                if v is not None and not isinstance(v, str):
                    self.count("bad_type", dev, k)
            elif k in FREE_JSON:
                out[k] = self.obj(v, (dev, k))
            elif k not in ("lat", "lon"):
                out[k] = self.json(v, (dev, k))
        out["lat"], out["lon"] = self.latlon(d.get("lat"), d.get("lon"), dev)
        return out

    def latlon(self, lat, lon, *where) -> tuple[float | None, float | None]:
        la, lo = position(lat, lon)
        if la is None and (lat is not None or lon is not None):
            self.count("bad_position", *where)
        return la, lo

    def with_position(self, r: dict, where: tuple) -> dict:
        """Any record with lat/lon (an SOS, an incident): bounded, the position checked."""
        out = self.json(r, where)
        out["lat"], out["lon"] = self.latlon(r.get("lat"), r.get("lon"), *where)
        return out
