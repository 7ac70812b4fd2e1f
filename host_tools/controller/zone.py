"""Zone configuration: the signs of one road section in road order, and what feeds them.

```json
{"zone": "g15-k12-n",
 "signs": [{"id": "vsl-k10-n", "km": 10.0, "sources": ["bcn-k10-1"]}, ...],   // upstream first
 "confirm_s": 10, "relax_s": 180, "interval_s": 60, "hysteresis_pct": 25,
 "normal_limit": 100, "step": 20, "legend": "FOG", "heartbeat_s": 15}
```
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from roadedge import wire

ART81_LIMITS = tuple(kmh for _m, kmh in reversed(wire.ART81))  # (60, 40, 20)
VIS_MAX_M = 20000  # a visibility report above this is a fault, not weather (meters read to 10-20 km)

# Why each default is what it is, and the practice it follows: docs/fog-control.md.
DEFAULTS = {
    "confirm_s": 10,  # visibility below a band this long confirms it: tighten at once (two meter polls)
    "relax_s": 180,  # clear of a band (with hysteresis) this long releases it (3 x the 60 s cycle)
    "interval_s": 60,  # relaxing: at most one step up per this many seconds (practice: 1-5 min cycles)
    "hysteresis_pct": 25,  # leave a fog band only above threshold * (1 + pct/100)
    "approve_timeout_s": 60,  # approve mode: a tightening nobody acted on is applied after this
    "normal_limit": 100,  # what the signs show without fog
    "step": 20,  # one step of the ladder (km/h)
    "legend": "FOG",  # legend shown with a fog limit ("" for none)
    "heartbeat_s": 15,  # signed heartbeat period to each sign
    "vis_max_age_s": 60,  # readings older than this are ignored (12 polls of a 5 s meter)
    "closure_below_m": 50,  # recommend closing the section below this visibility
    "allowed": {"min": 20, "max": 120, "step": 10},  # the signs' allowed set
    "priority": 128,
    "duration_s": 0,  # 0 = until replaced (the sign's comm-loss timer covers a dead controller)
    "command_ttl_s": 30,
}


class ZoneConfigError(ValueError):
    pass


@dataclass
class SignSpec:
    id: str
    km: float
    sources: list[str]
    # the sign's face, when known: {"display": "matrix", "cols": 4, "rows": 3} or
    # {"display": "7seg", "digits": 3, "lamp": true}; commands then carry the message's check value
    face: dict | None = None


@dataclass
class ZoneConfig:
    zone: str
    signs: list[SignSpec]
    params: dict = field(default_factory=dict)

    def __getattr__(self, name):  # params as attributes: cfg.interval_s
        try:
            return self.__dict__["params"][name]
        except KeyError:
            raise AttributeError(name) from None

    def allowed(self, limit) -> bool:
        a = self.params["allowed"]
        return (isinstance(limit, int) and not isinstance(limit, bool) and a["min"] <= limit <= a["max"]
                and (limit - a["min"]) % a["step"] == 0)

    @classmethod
    def from_dict(cls, d: dict) -> ZoneConfig:
        if not isinstance(d, dict):
            raise ZoneConfigError("zone config: expected a JSON object")
        zone = d.get("zone")
        if not isinstance(zone, str) or not zone or "/" in zone or "+" in zone or "#" in zone:
            raise ZoneConfigError("zone: a name without / + #")
        raw = d.get("signs")
        if not isinstance(raw, list) or not raw:
            raise ZoneConfigError("signs: a non-empty list, upstream first")
        signs = []
        for i, s in enumerate(raw):
            if not isinstance(s, dict) or not isinstance(s.get("id"), str):
                raise ZoneConfigError(f"signs[{i}].id: required string")
            src = s.get("sources", [])
            if not isinstance(src, list) or not all(isinstance(x, str) for x in src):
                raise ZoneConfigError(f"signs[{i}].sources: list of device ids")
            km = s.get("km", 0.0)
            if not isinstance(km, (int, float)):
                raise ZoneConfigError(f"signs[{i}].km: number")
            face = s.get("face")
            if face is not None and not (isinstance(face, dict) and face.get("display") in ("matrix", "7seg")):
                raise ZoneConfigError(f"signs[{i}].face: {{\"display\": \"matrix\"|\"7seg\", ...}}")
            signs.append(SignSpec(s["id"], float(km), list(src), face))
        if len({s.id for s in signs}) != len(signs):
            raise ZoneConfigError("signs: duplicate id")
        p = dict(DEFAULTS)
        for k, v in d.items():
            if k in ("zone", "signs"):
                continue
            if k not in DEFAULTS:
                raise ZoneConfigError(f"{k}: unknown parameter")
            p[k] = v
        for k in ("interval_s", "normal_limit", "step", "heartbeat_s", "closure_below_m", "vis_max_age_s"):
            if not isinstance(p[k], (int, float)) or isinstance(p[k], bool) or p[k] <= 0:
                raise ZoneConfigError(f"{k}: positive number")
        for k in ("confirm_s", "relax_s", "approve_timeout_s", "hysteresis_pct"):
            if not isinstance(p[k], (int, float)) or isinstance(p[k], bool) or p[k] < 0:
                raise ZoneConfigError(f"{k}: number >= 0")
        cfg = cls(zone, signs, p)
        for lim in (p["normal_limit"],) + ART81_LIMITS:
            if not cfg.allowed(lim) or (p["normal_limit"] - lim) % p["step"]:
                raise ZoneConfigError(f"normal_limit/step: {lim} km/h must be on the ladder and allowed by the signs")
        return cfg

    @classmethod
    def load(cls, path) -> ZoneConfig:
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ZoneConfigError(f"{path}: {e}") from e
        return cls.from_dict(d)
