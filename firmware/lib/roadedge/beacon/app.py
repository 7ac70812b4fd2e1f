# Fog-zone beacon role: the thin shell around BeaconLogic. It reads the
# meter, detector, ambient light, lamp current and battery, feeds the pure
# policies, writes the two lamp channels and reports (state, events,
# telemetry fields, commands). Topics and payloads: docs/topics.md "Beacon".
from roadedge.core import config, state
from roadedge.core.compat import ticks_ms, ticks_diff, sleep_ms
from roadedge.beacon import modes as M
from roadedge.beacon import flash as F
from roadedge.beacon import energy as E
from roadedge.beacon.logic import BeaconLogic, defaults
from roadedge.beacon.lamps import Lamps, LampMonitor
from roadedge.beacon.meter import MeterPoller, OK, flag_names
from roadedge.beacon.detector import Detector

STATE_FILE = "/beacon.json"
MAX_TTL_S = 86400
STEADY_MS = 50  # lamp current is judged only after the duty held this long


def params(cfg):
    """The beacon section merged over defaults, with range checks."""
    p = config.section(cfg, "beacon", defaults())
    try:
        BeaconLogic(p)  # every policy validates its own parameters
        F.check_rates(p["flash_per_min"])
    except ValueError as e:
        # policy messages start with the parameter's name ("levels_m: ...")
        msg = str(e)
        key = msg.split(":", 1)[0]
        raise config.ConfigError("beacon." + key if key in p else "beacon", msg)
    config.in_range(p, "beacon", "tail_m", 1, 1000)
    config.in_range(p, "beacon", "tail_max_m", 1, 2000)
    config.in_range(p, "beacon", "default_speed_kmh", 5, 250)
    config.in_range(p, "beacon", "safe_level", 0, len(p["levels_m"]))
    config.in_range(p, "beacon", "day_duty", 0, 1)
    config.in_range(p, "beacon", "night_duty", 0, 1)
    config.in_range(p, "beacon", "min_factor", 0, 1)
    config.require(p["dark_u16"] < p["bright_u16"], "beacon.bright_u16", "must be above dark_u16")
    for b in p["level_boost"]:
        config.require(type(b) in (int, float) and 0 <= b <= 1, "beacon.level_boost", "numbers 0..1 expected")
    config.in_range(p, "beacon", "sense_s", 0.1, 3600)
    config.in_range(p, "beacon", "flash_on_pct", 5, 95)
    config.in_range(p, "beacon", "alarm_per_min", 1, 300)
    config.in_range(p["meter"], "beacon.meter", "poll_s", 0.05, 600)
    config.in_range(p["meter"], "beacon.meter", "addr", 0, 99)
    config.in_range(p["meter"], "beacon.meter", "miss_polls", 1, 10)
    config.in_range(p["detector"], "beacon.detector", "debounce_ms", 0, 5000)
    return p


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


class BeaconApp:
    def __init__(self, dev):
        self.dev = dev
        self.p = p = params(dev.cfg)
        self.logic = BeaconLogic(p)
        self.logic.meter_usable(False)  # no reading yet: safe mode until the meter answers
        self.path = dev.data_dir + STATE_FILE
        self._th_cmd = None  # thresholds set by command (stored; the config's apply otherwise)
        self._restore()
        hal = dev.hal
        self.lamps = Lamps(hal)
        self.monitor = LampMonitor(p)
        self.meter = MeterPoller(hal.uart("vis_meter"), p["meter"], dev.counters, self._reading, self._meter_change)
        radar = hal.uart("radar") if "radar" in (dev.cfg.get("uarts") or {}) else None
        self.detector = Detector(hal, p["detector"], dev.counters, self._detect, radar)
        self.adc_amb = hal.adc("ambient")
        self.adc_cur = hal.adc("lamp_current")
        self.adc_batt = hal.adc("battery")
        # optional solar panel voltage, reported only
        self.adc_solar = hal.adc("solar") if "solar" in (dev.cfg.get("pins") or {}) else None
        self.solar_v = None
        self._t = ticks_ms()
        self._mono = 0
        self._last_state = None
        self._duty_at = 0
        self.last_detect_ticks = None  # for the bench: detection -> lamp latency
        self.last_red_ticks = None

    # ---- time
    def mono_ms(self):
        """Monotonic ms since start, immune to the 2**30 ticks wrap."""
        t = ticks_ms()
        self._mono += ticks_diff(t, self._t)
        self._t = t
        return self._mono

    # ---- persistence: thresholds, and override / alarm without expiry
    def _restore(self):
        s = state.read_json(self.path, None)
        if not isinstance(s, dict):
            return
        try:
            th = s.get("thresholds")
            if th:
                self.logic.modes.set_thresholds(th["levels_m"], th["hyst_pct"], th["enter_s"], th["exit_s"],
                                                th.get("level_modes"))
                self._th_cmd = th
            if s.get("override"):
                self.logic.modes.set_override(s["override"])
            if s.get("alarm"):
                self.logic.modes.set_alarm(True)
        except (ValueError, KeyError, TypeError) as e:
            self.dev.count("beacon_state_bad")
            self.dev.log.warn("beacon: stored settings ignored: %s" % e)

    def _save(self):
        m = self.logic.modes
        o = m.override
        s = {"thresholds": self._th_cmd,
             "override": o[0] if o is not None and o[1] is None else None,
             "alarm": m.alarm == -1}
        try:
            state.write_json(self.path, s)
        except OSError as e:
            self.dev.log.error("beacon: cannot store settings: %s" % e)

    # ---- inputs
    def _reading(self, mor, flags):
        old, new = self.logic.visibility(self.mono_ms(), mor)
        if new != old:
            self.dev.count("vis_level_changes")
            self._event("vis_level", {"from": old, "to": new, "vis_m": mor,
                                      "mode": self.logic.modes.level_modes[new]})
            self.render()

    def _meter_change(self, h):
        ok = h.status == OK
        self.logic.meter_usable(ok)
        if ok:
            self._event("fault_cleared", {"what": "meter"})
            self.dev.log.info("meter ok")
        else:
            self.dev.count("meter_faults")
            self._event("fault", {"what": "meter", "status": h.status, "reason": h.reason,
                                  "safe_mode": self.logic.modes.safe_mode})
            self.dev.log.warn("meter %s (%s): safe mode %s" % (h.status, h.reason, self.logic.modes.safe_mode))
        self.render()

    def _detect(self, ticks, kmh):
        self.last_detect_ticks = ticks
        # edge time, not now: the tail is measured from when the vehicle passed
        late = ticks_diff(ticks_ms(), ticks)
        self.logic.detect(self.mono_ms() - (late if late > 0 else 0), kmh)
        self.render()

    # ---- outputs
    def render(self):
        """Decide and drive the lamps now; returns ms until the next change."""
        mono = self.mono_ms()
        mode, reason, y, r, nxt = self.logic.render(mono, self.dev.clock.now_ms())
        if y != self.lamps.yd or r != self.lamps.rd:
            self._duty_at = mono
            if r > 0 and self.lamps.rd <= 0 and self.last_detect_ticks is not None:
                self.last_red_ticks = ticks_ms()
        self.lamps.show(y, r)
        st = self.state()
        if st != self._last_state:
            self._last_state = st
            self.dev.publish("state", st, 1, True)
        return nxt

    def state(self):
        m = self.logic.modes
        mode, reason = m.mode(self._mono)
        o = m.override
        return {"mode": mode, "reason": reason, "level": m.level.level, "vis_m": self.logic.vis_m,
                "meter": self.meter.health.status, "meter_reason": self.meter.health.reason,
                "meter_flags": flag_names(self.meter.health.flags), "override": o[0] if o is not None else None, "alarm": m.alarm is not None,
                "levels_m": m.level.levels, "battery": self.logic.energy.state,
                "lamps": self.monitor.health(), "pos_m": self.p["position_m"]}

    def _event(self, kind, fields):
        self.dev.event(kind, fields)

    def telemetry(self):
        lg = self.logic
        c = self.dev.clock
        return {"vis_m": lg.vis_m, "level": lg.modes.level.level, "mode": lg.modes.mode(self._mono)[0],
                "meter": self.meter.health.status, "det": self.dev.counters.get("detections", 0),
                "lamps": self.monitor.health(), "duty": [self.lamps.yd, self.lamps.rd],
                "batt_v": None if lg.energy.volts is None else round(lg.energy.volts, 2),
                "batt": lg.energy.state, "dim": round(lg.energy.factor, 2),
                "solar_v": None if self.solar_v is None else round(self.solar_v, 2),
                "clock": c.offset_report() if hasattr(c, "offset_report") else None}

    # ---- tasks
    async def render_loop(self):
        while True:
            nxt = self.render()
            # wake on the next flash edge (computed from the shared clock) or
            # at least 4x a second for expiries and mode changes
            await sleep_ms(nxt if nxt < 250 else 250)

    async def sense_loop(self):
        lg = self.logic
        period = int(self.p["sense_s"] * 1000)
        while True:
            lg.ambient(self.adc_amb.read_u16())
            old = lg.energy.state
            if self.adc_solar is not None:
                self.solar_v = self.adc_solar.read_u16() * self.p["solar_full_scale_v"] / 65535
            volts = E.adc_to_volts(self.p, self.adc_batt.read_u16())
            st, _f = lg.battery(volts)
            if st != old:
                self.dev.count("battery_" + st)
                self._event("battery", {"state": st, "from": old, "volts": round(volts, 2)})
            if self._mono - self._duty_at >= STEADY_MS:
                ch = self.monitor.sample(self.lamps.yd, self.lamps.rd, self.adc_cur.read_u16())
                if ch is not None:
                    out = self.monitor.out[ch]
                    if out:
                        self.dev.count("lamp_faults")
                    self._event("fault" if out else "fault_cleared", {"what": "lamp_" + ch})
            self.render()
            await sleep_ms(period)

    def start(self):
        d = self.dev
        d.on_command("mode", self.cmd_mode)
        d.on_command("thresholds", self.cmd_thresholds)
        d.on_command("section_alarm", self.cmd_section_alarm)
        d.on_telemetry(self.telemetry)
        for coro in self.meter.tasks():
            d.spawn(coro, "meter")
        for coro in self.detector.tasks():
            d.spawn(coro, "detector")
        d.spawn(self.sense_loop(), "sense")
        d.spawn(self.render_loop(), "lamps")
        d.log.info("beacon at %s m: levels %s, meter poll %ss" % (self.p["position_m"], self.logic.modes.level.levels,
                                                                 self.p["meter"]["poll_s"]))

    # ---- commands (signature, replay and expiry already checked by the platform)
    def _until(self, args):
        ttl = _num(args, "ttl_s", 1, MAX_TTL_S)
        return None if ttl is None else self.mono_ms() + int(ttl * 1000)

    def _only(self, args, keys):
        for k in args:
            if k not in keys:
                raise ValueError("unknown argument %r" % (k,))

    def _done(self):
        self._save()
        self.render()
        m = self.logic.modes.mode(self._mono)
        return "ok", {"mode": m[0], "reason": m[1]}

    def cmd_mode(self, args):
        """{"mode": standby|contour|guidance|anti_rear_end|section_alarm|auto, "ttl_s": 1..86400}"""
        try:
            self._only(args, ("mode", "ttl_s"))
            mode = args.get("mode")
            if mode != "auto" and mode not in M.MODES:
                raise ValueError("mode: one of auto, %s" % ", ".join(M.MODES))
            until = self._until(args)
        except ValueError as e:
            return "bad_args", str(e)
        self.logic.modes.set_override(None if mode == "auto" else mode, until)
        return self._done()

    def cmd_section_alarm(self, args):
        """{"on": bool, "ttl_s": 1..86400}"""
        try:
            self._only(args, ("on", "ttl_s"))
            on = args.get("on")
            if type(on) is not bool:
                raise ValueError("on: true or false required")
            until = self._until(args)
        except ValueError as e:
            return "bad_args", str(e)
        self.logic.modes.set_alarm(on, until)
        return self._done()

    def cmd_thresholds(self, args):
        """Any of {"levels_m": [4 descending m], "hyst_pct": 0..100, "enter_s": 0..3600,
        "exit_s": 0..3600, "level_modes": [...]}; all checked before any applies.
        {"reset": true} alone returns to the config's values."""
        lv = self.logic.modes.level
        if args.get("reset") is True and len(args) == 1:
            p = self.p
            self.logic.modes.set_thresholds(p["levels_m"], p["hyst_pct"], p["enter_s"], p["exit_s"],
                                            p["level_modes"])
            self._th_cmd = None
            return self._done()
        try:
            self._only(args, ("levels_m", "hyst_pct", "enter_s", "exit_s", "level_modes"))
            if not args:
                raise ValueError("nothing to change")
            levels = args.get("levels_m", lv.levels)
            hyst = _num(args, "hyst_pct", 0, 100)
            enter = _num(args, "enter_s", 0, 3600)
            exit_ = _num(args, "exit_s", 0, 3600)
            self.logic.modes.set_thresholds(levels, lv.hyst_pct if hyst is None else hyst,
                                            lv.enter_ms / 1000 if enter is None else enter,
                                            lv.exit_ms / 1000 if exit_ is None else exit_,
                                            args.get("level_modes"))
        except (ValueError, TypeError) as e:
            return "bad_args", str(e)
        m = self.logic.modes
        self._th_cmd = {"levels_m": m.level.levels, "hyst_pct": m.level.hyst_pct, "enter_s": m.level.enter_ms / 1000,
                        "exit_s": m.level.exit_ms / 1000, "level_modes": m.level_modes}
        return self._done()


def start(dev):
    app = BeaconApp(dev)
    app.start()
    setattr(dev, "beacon", app)  # for benches and tests that look inside a running device
    return None
