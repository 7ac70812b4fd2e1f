# The tracker role's pure model: smart reporting, the SOS latch, dispatch and
# duty status, ignition, the commands with their validation and the state it
# reports. No I/O; times are arguments (now_ms monotonic, now_s unix). The app
# shell (tracker/app.py) reads the GNSS, buttons and ignition, keeps the flash
# ring and publishes what this returns; the simulator's world runs the same
# model in process. Inputs return the events to publish: [(type, fields)].
from roadedge.tracker import reporting, record, sos, duty, power


def pick(p, keys):
    out = {}
    for k in keys:
        out[k] = p[k]
    return out


def _ev(d):
    # duty's events carry their type inside: (type, fields)
    d = dict(d)
    return d.pop("type"), d


class TrackerModel:
    """p: the tracker parameters (tracker.app.DEFAULTS merged); saved: the
    stored {"sos", "duty"} (or None)."""

    def __init__(self, p, tid, saved=None):
        saved = saved if isinstance(saved, dict) else {}
        self.tid = tid
        self.rep = reporting.Reporter(pick(p, reporting.DEFAULTS))
        self.sos = sos.SOS(pick(p, sos.DEFAULTS), saved.get("sos"))
        self.duty = duty.Duty(pick(p, duty.DEFAULTS), saved.get("duty"))
        self.ign = power.Ignition(pick(p, power.DEFAULTS))
        self.batt = -1
        self.last_fix = None
        self.fix_ok = False

    def stored(self):
        return {"sos": self.sos.state(), "duty": self.duty.state()}

    # ---- inputs
    def fix(self, f):
        """A GNSS fix: (report reason or 0, events, state_changed)."""
        first = not self.fix_ok
        self.last_fix = f
        self.fix_ok = True
        v = f.speed_kmh10()
        why = self.rep.decide(f.unix, f.lat, f.lon, v, f.course, self.sos.latched)
        if why:
            self.rep.reported(f.unix, f.lat, f.lon, v, f.course)
        ev = self.duty.on_fix(f.lat, f.lon, v)
        evs = [_ev(ev)] if ev else []
        return why, evs, first or bool(evs)

    def record(self, f, seq, why):
        """The flash-ring record of a report."""
        return record.from_fix(f, seq, self.batt, self.sos.latched, self.ign.on, why)

    def sos_event(self):
        s = self.sos
        fields = {"id": s.id, "since": s.since, "duty": self.duty.status}
        f = self.last_fix
        if f is not None:
            fields["lat"] = float(record.e7_str(f.lat))
            fields["lon"] = float(record.e7_str(f.lon))
        return ("sos", fields)

    def raise_sos(self, now_s):
        """The long press: the events, and whether the last fix is reported now (reason SOS)."""
        self.sos.trigger(now_s)
        return [self.sos_event()], self.last_fix is not None

    def accept(self, now_ms):
        ev = self.duty.accept(now_ms)
        return [_ev(ev)] if ev else []

    def ignition(self, level, now_ms, uptime_s):
        """The ignition input level: events (ignition on/off, duty status)."""
        evs = []
        if self.ign.feed(level, now_ms):
            evs.append(("ignition", {"on": self.ign.on}))
        ev = self.duty.ignition(self.ign.on, uptime_s)
        if ev:
            evs.append(_ev(ev))
        return evs

    # ---- commands: (code, detail, events)
    def command(self, now_ms, name, args):
        if name == "sos_ack":
            sid = args.get("id")
            if sid is not None and type(sid) is not int:
                return "bad_args", "id: integer", []
            by = args.get("by", "")
            if not isinstance(by, str) or len(by) > 32:
                return "bad_args", "by: string up to 32", []
            code, detail = self.sos.ack(sid, by, now_ms)
            return code, detail, [("sos_ack", {"id": self.sos.id, "by": by})] if code == "ok" else []
        if name == "dispatch":
            code, detail = self.duty.dispatch(args, now_ms)
            return code, detail, []
        return "unknown_command", None, []

    # ---- reports
    def state(self, backlog, dropped, ts):
        """re/<id>/state (docs/topics.md, Tracker)."""
        s = self.sos
        inc = self.duty.incident
        return {"duty": self.duty.status, "incident": inc["id"] if inc else None,
                "sos": {"latched": s.latched, "id": s.id, "since": s.since},
                "ign": self.ign.on, "batt": self.batt, "fix": self.fix_ok, "tid": self.tid,
                "backlog": backlog, "dropped": dropped, "ts": ts}

    def indicator(self, now_ms):
        led, buzz = self.sos.indicator(now_ms)
        if not led and not buzz:
            led, buzz = self.duty.indicator(now_ms)
        return led, buzz
