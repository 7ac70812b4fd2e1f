"""What a device message means for the event log (pure: no I/O, no clock).

`derive(kind, dev, role, prev, body)` turns one stored message (status, state or event) and the device's
state just before it into log entries: plain events, alarms raised, alarms cleared. Device data is
untrusted: anything of the wrong type is read as absent, never raised on.

Field names: roadedge.wire where it defines them (F_LIMIT, F_DUTY, F_TYPE); the rest as docs/topics.md
spells them (sign `source`, `legend`, `comm`, `faults`; tracker `batt`, `sos`; beacon events).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from roadedge import wire

from .sanitize import number

LOW_BATTERY_PCT = 20  # tracker backup battery: alarm below, cleared at or above LOW + BATTERY_HYST_PCT
BATTERY_HYST_PCT = 10
MAX_TEXT = 64  # device-supplied words quoted in a log line

# The sign's `source` (why it shows what it shows, NTCIP 1203 practice) in words a dispatcher reads.
SOURCE_TEXT = {
    "central": "set by the zone controller",
    "local": "local control (maintenance switch)",
    "schedule": "set by the timetable",
    "powerRecovery": "fail-safe message after a power cut",
    "reset": "fail-safe message after a restart",
    "commLoss": "fail-safe message: no contact with the controller",
    "powerLoss": "power loss",
    "endDuration": "the activation ran out",
    "autonomous": "its own fog meter (controller unreachable)",
}


@dataclass
class Entry:
    """One line for the log. phase: "event" (a fact), "raise" (an alarm that needs acknowledgement),
    "clear" (the condition behind alarm `key` is over)."""
    type: str
    phase: str
    text: str
    key: str | None = None
    detail: dict = field(default_factory=dict)
    severity: str | None = None  # None: the type's own (events.TYPES)


def word(v) -> str:
    """A device-supplied value quoted in a sentence: short, printable."""
    s = v if isinstance(v, str) else repr(v)
    return "".join(c if c.isprintable() else "?" for c in s[:MAX_TEXT])


def source_text(src) -> str:
    if not isinstance(src, str) or not src:
        return "source not reported"
    return SOURCE_TEXT.get(src, f"source {word(src)}")


def limit_text(lim) -> str:
    n = number(lim, 0, 1000)
    return "blank" if n is None or n == 0 else f"{n:g} km/h"


def infer_role(role, state) -> str | None:
    """The device's role from its info, else from what its state looks like (info may come later)."""
    if role in wire.ROLES:
        return role
    if isinstance(state, dict):
        if "source" in state and wire.F_LIMIT in state:
            return "sign"
        if "levels_m" in state or "mode" in state:
            return "beacon"
        if wire.F_DUTY in state:
            return "tracker"
    return None


def derive(kind: str, dev: str, role, prev_status, prev_state, body) -> list[Entry]:
    """Log entries for one stored message. prev_*: the device's live row before it (None: never seen)."""
    if not isinstance(body, dict):
        return []
    if kind == wire.STATUS:
        return _status(dev, prev_status, body.get("status"))
    if kind == wire.STATE:
        role = infer_role(role, body)
        prev = prev_state if isinstance(prev_state, dict) else None
        if role == "sign":
            return _sign_state(dev, prev, body)
        if role == "tracker":
            return _tracker_state(dev, prev, body)
        return []
    if kind == wire.EVENT:
        t = body.get(wire.F_TYPE)
        f = _EVENTS.get(t) if isinstance(t, str) else None
        return f(dev, body) if f else []
    return []


def _status(dev: str, prev, now) -> list[Entry]:
    key = f"offline:{dev}"
    if now == "offline" and prev != "offline":
        return [Entry("offline", "raise", f"{dev} went offline (the broker reported its connection lost)", key)]
    if now == "online" and prev == "offline":
        return [Entry("offline", "clear", f"{dev} is back online", key)]
    return []


def _sign_state(dev: str, prev: dict | None, st: dict) -> list[Entry]:
    out: list[Entry] = []
    lim, src, legend = st.get(wire.F_LIMIT), st.get("source"), st.get("legend")
    p = prev or {}
    plim, psrc, pleg = p.get(wire.F_LIMIT), p.get("source"), p.get("legend")
    if prev is None or (limit_text(lim), src, legend) != (limit_text(plim), psrc, pleg):
        was = "" if prev is None else f" (was {limit_text(plim)})"
        leg = f", legend {word(legend)}" if isinstance(legend, str) and legend else ""
        out.append(Entry("sign_change", "event", f"{dev} shows {limit_text(lim)}{leg}{was}: {source_text(src)}",
                         detail={"limit": number(lim, 0, 1000), "was": number(plim, 0, 1000),
                                 "source": word(src) if src is not None else None}))
    comm, pcomm = st.get("comm"), p.get("comm")
    if comm == "lost" and pcomm != "lost":
        out.append(Entry("sign_comm_lost", "raise", f"{dev} has no contact with the zone controller "
                                                    f"(shows {limit_text(lim)}: {source_text(src)})", f"comm:{dev}"))
    elif comm == "ok" and pcomm == "lost":
        out.append(Entry("sign_comm_lost", "clear", f"{dev} is in contact with the zone controller again",
                         f"comm:{dev}"))
    faults = {word(f) for f in st.get("faults") or () if isinstance(f, str)} if isinstance(st.get("faults"), list) \
        else set()
    pf = p.get("faults")
    pfaults = {word(f) for f in pf if isinstance(f, str)} if isinstance(pf, list) else set()
    for f in sorted(faults - pfaults):
        out.append(Entry("sign_fault", "raise", f"{dev} reports fault {f}", f"sign_fault:{dev}:{f}"))
    for f in sorted(pfaults - faults):
        out.append(Entry("sign_fault", "clear", f"{dev}: fault {f} cleared", f"sign_fault:{dev}:{f}"))
    return out


def _tracker_state(dev: str, prev: dict | None, st: dict) -> list[Entry]:
    out: list[Entry] = []
    p = prev or {}
    duty, pduty = st.get(wire.F_DUTY), p.get(wire.F_DUTY)
    if prev is not None and isinstance(duty, str) and duty != pduty:
        inc = st.get("incident")
        about = f" (incident {word(inc)})" if isinstance(inc, (str, int)) and not isinstance(inc, bool) else ""
        out.append(Entry("duty", "event", f"{dev}: {word(pduty) if pduty else 'unknown'} → {word(duty)}{about}",
                         detail={"from": word(pduty) if pduty else None, "to": word(duty)}))
    batt, pbatt = number(st.get("batt"), 0, 100), number(p.get("batt"), 0, 100)  # -1 = not measured yet
    key = f"battery:{dev}"
    if batt is not None and batt < LOW_BATTERY_PCT and (pbatt is None or pbatt >= LOW_BATTERY_PCT):
        out.append(Entry("low_battery", "raise", f"{dev} backup battery low: {batt:g} %", key, {"batt": batt}))
    elif batt is not None and batt >= LOW_BATTERY_PCT + BATTERY_HYST_PCT and pbatt is not None \
            and pbatt < LOW_BATTERY_PCT + BATTERY_HYST_PCT:
        out.append(Entry("low_battery", "clear", f"{dev} backup battery {batt:g} %", key, {"batt": batt}))
    return out


# ---- device events (re/<id>/event, docs/topics.md) -----------------------------------------------
def _sos_id(body: dict):
    sid = body.get("id")
    return sid if isinstance(sid, int) and not isinstance(sid, bool) else None


def _ev_sos(dev: str, b: dict) -> list[Entry]:
    sid = _sos_id(b)
    lat, lon = number(b.get("lat"), -90, 90), number(b.get("lon"), -180, 180)
    where = f" at {lat:.5f}, {lon:.5f}" if lat is not None and lon is not None else " (position unknown)"
    return [Entry("sos", "raise", f"SOS from {dev}{where}", f"sos:{dev}", {"id": sid, "lat": lat, "lon": lon})]


def _ev_sos_ack(dev: str, b: dict) -> list[Entry]:
    by = b.get("by")
    who = f" (acknowledged by {word(by)})" if isinstance(by, str) and by else ""
    return [Entry("sos", "clear", f"SOS cleared on {dev}: the rider's terminal received the acknowledgement{who}",
                  f"sos:{dev}", {"id": _sos_id(b)})]


def _what(b: dict) -> str:
    w = b.get("what")
    return word(w) if isinstance(w, str) and w else "unknown"


def _ev_fault(dev: str, b: dict) -> list[Entry]:
    what = _what(b)
    if what == "meter":
        why = " ".join(word(b[k]) for k in ("status", "reason") if isinstance(b.get(k), str))
        safe = " — beacon in safe mode" if b.get("safe_mode") else ""
        return [Entry("meter_fault", "raise", f"{dev} visibility meter fault: {why or 'no detail'}{safe}",
                      f"meter:{dev}", {"status": b.get("status") if isinstance(b.get("status"), str) else None})]
    return [Entry("lamp_fault" if what.startswith("lamp") else "device_fault", "raise",
                  f"{dev} fault: {what.replace('_', ' ')}", f"fault:{dev}:{what}")]


def _ev_fault_cleared(dev: str, b: dict) -> list[Entry]:
    what = _what(b)
    if what == "meter":
        return [Entry("meter_fault", "clear", f"{dev} visibility meter working again", f"meter:{dev}")]
    return [Entry("lamp_fault" if what.startswith("lamp") else "device_fault", "clear",
                  f"{dev}: {what.replace('_', ' ')} fault cleared", f"fault:{dev}:{what}")]


def _ev_sign_meter(dev: str, b: dict) -> list[Entry]:
    status = b.get("status")
    if status == "ok":
        return [Entry("meter_fault", "clear", f"{dev} visibility meter working again", f"meter:{dev}")]
    if status in ("fault", "silent"):
        why = f" ({word(b['reason'])})" if isinstance(b.get("reason"), str) else ""
        return [Entry("meter_fault", "raise", f"{dev} visibility meter {status}{why}", f"meter:{dev}",
                      {"status": status})]
    return []  # init / warm-up: not a fault


def _ev_battery(dev: str, b: dict) -> list[Entry]:
    state = b.get("state")
    volts = number(b.get("volts"), 0, 100)
    v = f" ({volts:.2f} V)" if volts is not None else ""
    if state in ("dim", "cutoff"):
        sev = "critical" if state == "cutoff" else None
        what = "lamps switched off to save the battery" if state == "cutoff" else "lamps dimmed"
        return [Entry("low_battery", "raise", f"{dev} battery low{v}: {what}", f"battery:{dev}", {"state": state},
                      sev)]
    if state == "ok":
        return [Entry("low_battery", "clear", f"{dev} battery ok{v}", f"battery:{dev}", {"state": state})]
    return []


def _ev_overflow(dev: str, b: dict) -> list[Entry]:
    n, total = number(b.get("dropped"), 0, 2**31, True), number(b.get("total"), 0, 2**31, True)
    return [Entry("store_overflow", "event", f"{dev} overwrote {n if n is not None else 'some'} buffered reports "
                                             f"(full store; {total if total is not None else '?'} lost in total)",
                  detail={"dropped": n, "total": total})]


_EVENTS = {"sos": _ev_sos, "sos_ack": _ev_sos_ack, "fault": _ev_fault, "fault_cleared": _ev_fault_cleared,
           "meter": _ev_sign_meter, "battery": _ev_battery, "store_overflow": _ev_overflow}
