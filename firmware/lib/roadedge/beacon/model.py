# The beacon role's pure model: its decisions (BeaconLogic), the meter's and
# lamps' health, the commands with their validation, the settings it stores,
# and the payloads it reports (state, telemetry fields, events). No I/O, time
# as an argument (now_ms = monotonic ms): the app shell (beacon/app.py) feeds
# it from the drivers and publishes what it returns; the simulator's world
# runs the same model in process, so both report the same payloads.
from roadedge.beacon import modes as M
from roadedge.beacon.logic import BeaconLogic
from roadedge.beacon.lamps import LampMonitor
from roadedge.beacon.meter import MeterHealth, OK, flag_names

MAX_TTL_S = 86400


def _num(args, key, lo, hi, required=False):
    """args[key] as a number within lo..hi; None when absent and optional."""
    if key not in args:
        if required:
            raise ValueError("%s: required" % key)
        return None
    v = args[key]
    if type(v) is bool or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise ValueError("%s: %r not a number in %r..%r" % (key, v, lo, hi))
    return v


def _only(args, keys):
    for k in args:
        if k not in keys:
            raise ValueError("unknown argument %r" % (k,))


class BeaconModel:
    """p: the checked beacon parameters (beacon.app.params). health: the
    meter's MeterHealth (the poller's own on a post)."""

    def __init__(self, p, health=None):
        self.p = p
        self.logic = BeaconLogic(p)
        self.logic.meter_usable(False)  # no reading yet: safe mode until the meter answers
        self.health = health if health is not None else MeterHealth(p["meter"]["miss_polls"])
        self.monitor = LampMonitor(p)
        self.th_cmd = None  # thresholds set by command (stored; the config's apply otherwise)

    # ---- persistence: thresholds, and override / alarm without expiry
    def restore(self, s):
        """Apply stored settings (raises ValueError/KeyError/TypeError on a bad file)."""
        th = s.get("thresholds")
        m = self.logic.modes
        if th:
            m.set_thresholds(th["levels_m"], th["hyst_pct"], th["enter_s"], th["exit_s"], th.get("level_modes"))
            self.th_cmd = th
        if s.get("override"):
            m.set_override(s["override"])
        if s.get("alarm"):
            m.set_alarm(True)

    def stored(self):
        m = self.logic.modes
        o = m.override
        return {"thresholds": self.th_cmd, "override": o[0] if o is not None and o[1] is None else None,
                "alarm": m.alarm == -1}

    # ---- inputs: each returns the events to publish, [(type, fields)]
    def reading(self, now_ms, mor):
        """A valid meter reading (MOR, metres)."""
        old, new = self.logic.visibility(now_ms, mor)
        if new == old:
            return []
        return [("vis_level", {"from": old, "to": new, "vis_m": mor, "mode": self.logic.modes.level_modes[new]})]

    def meter_changed(self):
        """The meter's health changed status (self.health)."""
        h = self.health
        ok = h.status == OK
        self.logic.meter_usable(ok)
        if ok:
            return [("fault_cleared", {"what": "meter"})]
        return [("fault", {"what": "meter", "status": h.status, "reason": h.reason,
                           "safe_mode": self.logic.modes.safe_mode})]

    def lamp_sample(self, yellow_duty, red_duty, current_u16):
        ch = self.monitor.sample(yellow_duty, red_duty, current_u16)
        if ch is None:
            return []
        return [("fault" if self.monitor.out[ch] else "fault_cleared", {"what": "lamp_" + ch})]

    def battery(self, volts):
        old = self.logic.energy.state
        st, _f = self.logic.battery(volts)
        if st == old:
            return []
        return [("battery", {"state": st, "from": old, "volts": round(volts, 2)})]

    # ---- commands (signature, replay and expiry already checked): (code, detail)
    def command(self, now_ms, name, args):
        if name == "mode":
            return self._cmd_mode(now_ms, args)
        if name == "section_alarm":
            return self._cmd_section_alarm(now_ms, args)
        if name == "thresholds":
            return self._cmd_thresholds(now_ms, args)
        return "unknown_command", None

    def _until(self, now_ms, args):
        ttl = _num(args, "ttl_s", 1, MAX_TTL_S)
        return None if ttl is None else now_ms + int(ttl * 1000)

    def _done(self, now_ms):
        m = self.logic.modes.mode(now_ms)
        return "ok", {"mode": m[0], "reason": m[1]}

    def _cmd_mode(self, now_ms, args):
        """{"mode": standby|contour|guidance|anti_rear_end|section_alarm|auto, "ttl_s": 1..86400}"""
        try:
            _only(args, ("mode", "ttl_s"))
            mode = args.get("mode")
            if mode != "auto" and mode not in M.MODES:
                raise ValueError("mode: one of auto, %s" % ", ".join(M.MODES))
            until = self._until(now_ms, args)
        except ValueError as e:
            return "bad_args", str(e)
        self.logic.modes.set_override(None if mode == "auto" else mode, until)
        return self._done(now_ms)

    def _cmd_section_alarm(self, now_ms, args):
        """{"on": bool, "ttl_s": 1..86400}"""
        try:
            _only(args, ("on", "ttl_s"))
            on = args.get("on")
            if type(on) is not bool:
                raise ValueError("on: true or false required")
            until = self._until(now_ms, args)
        except ValueError as e:
            return "bad_args", str(e)
        self.logic.modes.set_alarm(on, until)
        return self._done(now_ms)

    def _cmd_thresholds(self, now_ms, args):
        """Any of {"levels_m": [4 descending m], "hyst_pct": 0..100, "enter_s": 0..3600,
        "exit_s": 0..3600, "level_modes": [...]}; all checked before any applies.
        {"reset": true} alone returns to the config's values."""
        m = self.logic.modes
        lv = m.level
        if args.get("reset") is True and len(args) == 1:
            p = self.p
            m.set_thresholds(p["levels_m"], p["hyst_pct"], p["enter_s"], p["exit_s"], p["level_modes"])
            self.th_cmd = None
            return self._done(now_ms)
        try:
            _only(args, ("levels_m", "hyst_pct", "enter_s", "exit_s", "level_modes"))
            if not args:
                raise ValueError("nothing to change")
            levels = args.get("levels_m", lv.levels)
            hyst = _num(args, "hyst_pct", 0, 100)
            enter = _num(args, "enter_s", 0, 3600)
            exit_ = _num(args, "exit_s", 0, 3600)
            m.set_thresholds(levels, lv.hyst_pct if hyst is None else hyst,
                             lv.enter_ms / 1000 if enter is None else enter,
                             lv.exit_ms / 1000 if exit_ is None else exit_, args.get("level_modes"))
        except (ValueError, TypeError) as e:
            return "bad_args", str(e)
        lv = m.level
        self.th_cmd = {"levels_m": lv.levels, "hyst_pct": lv.hyst_pct, "enter_s": lv.enter_ms / 1000,
                       "exit_s": lv.exit_ms / 1000, "level_modes": m.level_modes}
        return self._done(now_ms)

    # ---- reports
    def state(self, now_ms):
        """re/<id>/state (docs/topics.md, Beacon)."""
        m = self.logic.modes
        mode, reason = m.mode(now_ms)
        o = m.override
        h = self.health
        return {"mode": mode, "reason": reason, "level": m.level.level, "vis_m": self.logic.vis_m,
                "meter": h.status, "meter_reason": h.reason, "meter_flags": flag_names(h.flags),
                "override": o[0] if o is not None else None, "alarm": m.alarm is not None,
                "levels_m": m.level.levels, "battery": self.logic.energy.state,
                "lamps": self.monitor.health(), "pos_m": self.p["position_m"]}

    def telemetry(self, now_ms):
        """The model's telemetry fields (the shell adds its drivers': det, duty, solar_v, clock)."""
        lg = self.logic
        return {"vis_m": lg.vis_m, "level": lg.modes.level.level, "mode": lg.modes.mode(now_ms)[0],
                "meter": self.health.status, "lamps": self.monitor.health(),
                "batt_v": None if lg.energy.volts is None else round(lg.energy.volts, 2),
                "batt": lg.energy.state, "dim": round(lg.energy.factor, 2)}
