"""Classify a topic and validate its payload into one normalized record, or a Reject.

Pure: no I/O. Every rejection has a short reason that the store counts and the console
shows (malformed input is counted, never fatal). Topic tree: docs/topics.md.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from roadedge import wire

MAX_PAYLOAD = 16 * 1024
DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEVICE_KINDS = wire.DEVICE_KINDS
SEQ_KINDS = wire.SEQ_KINDS  # carry a never-repeating per-device seq


class Reject(ValueError):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass
class Record:
    kind: str  # location | status | info | state | tele | event | log | ack | ctl | ignore
    device: str
    body: dict = field(default_factory=dict)
    seq: int | None = None
    ts: float | None = None


def classify(topic: str) -> tuple[str, str]:
    """(kind, device or zone) for a topic, or raise Reject('unknown_topic')."""
    parsed = wire.parse(topic)
    if parsed is None:
        raise Reject("unknown_topic", topic[:120])
    kind, dev, _name = parsed
    if kind == wire.SYS:
        return "ignore", ""
    if kind in (wire.COMMAND, wire.CTL_OP):
        return "ignore", dev  # commands to devices (signed by us) and operator actions (ours or another console's)
    if kind == wire.CTL_STATE:
        kind = "ctl"
    if not DEVICE_ID.match(dev):
        raise Reject("bad_device_id", topic[:120])
    return kind, dev


def _num(d: dict, key: str, lo: float, hi: float, required: bool = False) -> float | None:
    v = d.get(key)
    if v is None:
        if required:
            raise Reject("missing_field", key)
        return None
    t = type(v)  # exact types: bool is not a number here
    if t is not float and t is not int:
        raise Reject("bad_type", f"{key} must be a number")
    if not lo <= v <= hi:  # also false for NaN (json.loads accepts NaN/Infinity)
        raise Reject("out_of_range", f"{key}={v}")
    return float(v)


def _seq(d: dict, required: bool = True) -> int | None:
    v = d.get("seq")
    if v is None:
        if required:
            raise Reject("missing_field", "seq")
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 0 or v >= 2**63:
        raise Reject("bad_type", "seq must be a non-negative integer")
    return v


def _json_object(payload: bytes) -> dict:
    try:
        d = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        raise Reject("bad_json") from None
    if not isinstance(d, dict):
        raise Reject("not_object")
    return d


def decode(topic: str, payload: bytes) -> Record:
    kind, dev = classify(topic)
    if kind == "ignore":
        return Record("ignore", dev)
    if len(payload) > MAX_PAYLOAD:
        raise Reject("too_large", f"{len(payload)} bytes")
    if kind == "status":
        text = payload.decode("utf-8", "replace").strip()
        if text not in ("online", "offline"):
            raise Reject("bad_status", text[:40])
        return Record("status", dev, {"status": text})
    if kind == "log" and not payload.startswith(b"{"):
        return Record("log", dev, {"msg": payload.decode("utf-8", "replace")})
    d = _json_object(payload)
    ts = _num(d, "ts", 0, 2**40)
    if kind == "location":
        return _location(dev, d)
    if kind == "event":
        t = d.get("type")
        if not isinstance(t, str) or not t:
            raise Reject("bad_type", "event type must be a string")
        return Record("event", dev, d, _seq(d), ts)
    if kind == "ack":
        if not isinstance(d.get("cmd"), str) or not isinstance(d.get("ok"), bool):
            raise Reject("bad_type", "ack needs cmd (string) and ok (bool)")
        return Record("ack", dev, d, _seq(d), ts)
    if kind == "tele":
        return Record("tele", dev, d, _seq(d), ts)
    return Record(kind, dev, d, _seq(d, required=False), ts)


def _location(dev: str, d: dict) -> Record:
    if d.get("_type", "location") != "location":
        raise Reject("bad_type", "_type must be location")
    lat = _num(d, "lat", -90, 90, required=True)
    lon = _num(d, "lon", -180, 180, required=True)
    tst = _num(d, "tst", 0, 2**40, required=True)
    for k, lo, hi in (("vel", 0, 1000), ("cog", 0, 360), ("acc", 0, 1e6), ("hdop", 0, 100), ("alt", -1e4, 1e5),
                      ("batt", 0, 100)):
        _num(d, k, lo, hi)
    sat = d.get("sat")
    if sat is not None and (isinstance(sat, bool) or not isinstance(sat, int) or sat < 0):
        raise Reject("bad_type", "sat must be a non-negative integer")
    seq = _seq(d, required=False)
    if seq is None:
        # A plain OwnTracks client has no seq: dedupe it by its fix time instead (negative keys
        # never collide with real sequence numbers).
        seq = -int(tst * 1000) - 1
    body = dict(d)
    body["lat"], body["lon"], body["tst"] = lat, lon, tst
    return Record("location", dev, body, seq, tst)
