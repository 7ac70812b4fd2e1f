# Fog-zone beacon role: the thin shell around the pure BeaconModel. It reads
# the meter, detector, ambient light, lamp current and battery, feeds the
# model, writes the two lamp channels and publishes what the model reports
# (state, events, telemetry fields, command results). Topics and payloads:
# docs/topics.md "Beacon".
from roadedge.core import config, state
from roadedge.core.compat import ticks_ms, ticks_diff, sleep_ms
from roadedge.beacon import flash as F
from roadedge.beacon import energy as E
from roadedge.beacon.logic import BeaconLogic, defaults
from roadedge.beacon.lamps import Lamps
from roadedge.beacon.meter import MeterPoller
from roadedge.beacon.model import BeaconModel
from roadedge.beacon.detector import Detector

STATE_FILE = "/beacon.json"
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


class BeaconApp:
    def __init__(self, dev):
        self.dev = dev
        self.p = p = params(dev.cfg)
        hal = dev.hal
        self.meter = MeterPoller(hal.uart("vis_meter"), p["meter"], dev.counters, self._reading, self._meter_change)
        self.model = BeaconModel(p, self.meter.health)
        self.logic = self.model.logic
        self.monitor = self.model.monitor
        self.path = dev.data_dir + STATE_FILE
        self._restore()
        self.lamps = Lamps(hal)
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
            self.model.restore(s)
        except (ValueError, KeyError, TypeError) as e:
            self.dev.count("beacon_state_bad")
            self.dev.log.warn("beacon: stored settings ignored: %s" % e)

    def _save(self):
        try:
            state.write_json(self.path, self.model.stored())
        except OSError as e:
            self.dev.log.error("beacon: cannot store settings: %s" % e)

    # ---- inputs
    def _reading(self, mor, flags):
        evs = self.model.reading(self.mono_ms(), mor)
        if evs:
            self.dev.count("vis_level_changes")
            self._events(evs)
            self.render()

    def _meter_change(self, h):
        self._events(self.model.meter_changed())
        if h.status == "ok":
            self.dev.log.info("meter ok")
        else:
            self.dev.count("meter_faults")
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
        return self.model.state(self._mono)

    def _events(self, evs):
        for kind, fields in evs:
            self.dev.event(kind, fields)

    def telemetry(self):
        t = self.model.telemetry(self._mono)
        c = self.dev.clock
        t["det"] = self.dev.counters.get("detections", 0)
        t["duty"] = [self.lamps.yd, self.lamps.rd]
        t["solar_v"] = None if self.solar_v is None else round(self.solar_v, 2)
        t["clock"] = c.offset_report() if hasattr(c, "offset_report") else None
        return t

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
            if self.adc_solar is not None:
                self.solar_v = self.adc_solar.read_u16() * self.p["solar_full_scale_v"] / 65535
            evs = self.model.battery(E.adc_to_volts(self.p, self.adc_batt.read_u16()))
            for _k, f in evs:
                self.dev.count("battery_" + f["state"])
            if self._mono - self._duty_at >= STEADY_MS:
                lamp = self.model.lamp_sample(self.lamps.yd, self.lamps.rd, self.adc_cur.read_u16())
                for k, _f in lamp:
                    if k == "fault":
                        self.dev.count("lamp_faults")
                evs += lamp
            self._events(evs)
            self.render()
            await sleep_ms(period)

    def start(self):
        d = self.dev
        for name in ("mode", "thresholds", "section_alarm"):
            d.on_command(name, self._command(name))
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
    def _command(self, name):
        def handler(args):
            r = self.model.command(self.mono_ms(), name, args)
            if r[0] == "ok":
                self._save()
                self.render()
            return r
        return handler


def start(dev):
    app = BeaconApp(dev)
    app.start()
    setattr(dev, "beacon", app)  # for benches and tests that look inside a running device
    return None
