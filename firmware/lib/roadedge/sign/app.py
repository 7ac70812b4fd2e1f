# The sign role: a thin shell around SignPolicy. Reads the maintenance
# switch, temperature, ambient light and the (optional) visibility meter,
# takes the controller's signed commands (verified by the platform before
# they reach us), draws what the policy says and publishes what the display
# actually shows, with its check value, as retained state.
from roadedge.core.compat import ticks_ms, ticks_diff, sleep_ms
from roadedge.core import config, state
from roadedge.sign import policy as sp

# sign.* parameters: the policy's (messages accept "blank", a limit or an
# object, so their default here is None = any type, validated by the policy)
# plus the hardware shell's.
DEFAULTS = {}
for _k in sp.DEFAULTS:
    DEFAULTS[_k] = None if _k.endswith("_msg") else sp.DEFAULTS[_k]
DEFAULTS.update({
    "display": "matrix",  # "matrix" (MAX7219 8x8 modules) or "7seg" (one MAX7219, digits)
    "matrix_cols": 4,  # modules across
    "matrix_rows": 3,  # modules down (the bottom row holds the legend)
    "digits": 3,
    "maint_active": 1,  # input level meaning "local control"
    "tick_ms": 200,
    "sensor_s": 5,  # temperature / ambient light period
    "temp_mv_per_c": 10.0,  # LM35; TMP36: 10 mV/C with 500 mV offset
    "temp_offset_mv": 0.0,
    "alive_s": 60,  # how often the last-alive time is persisted (power-loss length)
    "power_wait_s": 30,  # after a power-on, how long to wait for the clock to measure the outage
    "state_s": 60,  # republish state at least this often (vis_m, temp_c)
    "selftest_ms": 1500,  # how long the daily lamp test lights every LED (0 = skip)
    "meter": {},  # visibility meter parameters (roadedge.beacon.meter.DEFAULTS)
})
STATE_FILE = "sign.json"


def params(cfg):
    """The sign section of a board config over DEFAULTS."""
    return config.section(cfg, "sign", DEFAULTS)


def make_policy(p):
    """The sign's SignPolicy from its parameters (ConfigError names a bad one)."""
    pol = {}
    for k in sp.DEFAULTS:
        if p[k] is not None:
            pol[k] = p[k]
    try:
        return sp.SignPolicy(pol)
    except ValueError as e:
        raise config.ConfigError("sign", str(e))


def make_display(p, spi, legend_lamp=None):
    """The display driver the config names, writing to spi (any object with write(bytes))."""
    if p["display"] == "7seg":
        from roadedge.sign.display_7seg import SevenSegDisplay

        return SevenSegDisplay(spi, p["digits"], legend_lamp)
    from roadedge.sign.display_max7219 import MatrixDisplay

    return MatrixDisplay(spi, p["matrix_cols"], p["matrix_rows"])


def command(policy, display, now_ms, name, args):
    """A verified sign command: (code, detail). Pure but for the display's check-value preview."""
    if name == "set_limit":
        # NTCIP practice: an activation naming a check value is refused unless the message the
        # sign would draw has exactly that check value (the centre and the sign agree on pixels)
        chk = args.get("check") if isinstance(args, dict) else None
        if chk is not None and not policy.local:
            v = policy.check_args(args)
            if not isinstance(v, str) and display.preview_check(v[0], v[3]) != chk:
                return ("refused", "check_value")
        return policy.set_limit(now_ms, args)
    if name == "clear":
        return policy.clear(now_ms, args if args is not None else {})
    if name == "heartbeat":
        return policy.heartbeat(now_ms)
    return ("unknown_command", None)


def state_payload(policy, now_ms, shown, check, ts):
    """re/<id>/state: the policy's state with what the hardware actually shows."""
    st = policy.state(now_ms)
    st["limit"], st["legend"] = shown if not policy.hot else (None, "")
    st["check"] = check
    st["ts"] = ts
    return st


class SignApp:
    def __init__(self, dev):
        self.dev = dev
        p = params(dev.cfg)
        self.p = p
        self.policy = make_policy(p)
        config.require(p["display"] in ("matrix", "7seg"), "sign.display", "\"matrix\" or \"7seg\"")
        hal = dev.hal
        pins = dev.cfg.get("pins") or {}
        uarts = dev.cfg.get("uarts") or {}
        spi = hal.spi("display")
        self.display = make_display(p, spi, hal.output("legend") if p["display"] == "7seg" and "legend" in pins else None)
        self.maint = hal.input("maint_switch") if "maint_switch" in pins else None
        self.temp = hal.adc("temp") if "temp" in pins else None
        self.ambient = hal.adc("ambient") if "ambient" in pins else None
        self.meter = None
        if "vis_meter" in uarts:
            from roadedge.beacon.meter import MeterPoller

            self.meter = MeterPoller(hal.uart("vis_meter"), p["meter"], dev.counters,
                                     self._on_vis, self._on_meter)
        self.path = dev.data_dir + "/" + STATE_FILE
        self.shown = (None, "")
        self.level = -1
        self.published_ms = None
        self.published_ts = 0
        self.last_alive = None
        self.boot_ms = ticks_ms()

    # --- platform hooks ------------------------------------------------------
    def _count(self, name):
        c = self.dev.counters
        c[name] = c.get(name, 0) + 1

    def _command(self, name):
        def handler(args):
            held = self.policy.held
            r = command(self.policy, self.display, ticks_ms(), name, args)
            # the platform counts every result (cmd_ok / cmd_rejected + cmd_<code>) once, in its ack
            if r == ("refused", "check_value"):
                self._count("cmd_check_value")
            if self.policy.held != held:
                self._alive()  # a supervisor's hold (or its release) survives a power loss
            self._refresh()
            return r
        return handler

    def _on_vis(self, mor, flags):
        self.policy.set_visibility(ticks_ms(), mor)

    def _on_meter(self, health):
        self.dev.event("meter", {"status": health.status, "reason": health.reason})

    # --- helpers -------------------------------------------------------------
    def _now_s(self):
        return self.dev.now_s()

    def _boot(self):
        saved = state.read_json(self.path, {}) or {}
        last = saved.get("alive") if isinstance(saved, dict) else None
        self.last_alive = last if isinstance(last, (int, float)) and last > 0 else None
        if isinstance(saved, dict):
            self.policy.restore_hold(saved.get("held"))
        self.boot_ms = ticks_ms()
        cause = self.dev.hal.reset_cause()
        self.policy.boot(self.boot_ms, cause, None)
        self._classify_power()
        self.dev.log.info("sign boot: %s -> %s (%s)" % (cause, self.policy.source, self.policy.power_loss))
        self._alive()

    def _classify_power(self):
        """After a power-on the outage length decides short/long; the clock is
        usually set a moment after boot (broker time), so keep trying for a while."""
        pol = self.policy
        if pol.power_loss != "unknown" or self.last_alive is None or not self.dev.clock.is_set():
            return
        pol.power_down_known(ticks_ms(), self._now_s() - self.last_alive)
        self.dev.log.info("power was off %d s: %s loss" % (self._now_s() - self.last_alive, pol.power_loss))

    def _alive(self):
        pol = self.policy
        held = None if pol.held is None else [pol.held, pol.held_legend]
        # before the clock is set keep the last alive time (the outage is measured from it) but still
        # record the hold
        alive = self._now_s() if self.dev.clock.is_set() else (self.last_alive or 0)
        try:
            state.write_json(self.path, {"alive": alive, "held": held})
        except OSError:
            self._count("alive_write_errors")

    def _sensors(self, now):
        if self.temp is not None:
            c = sp.adc_to_celsius(self.temp.read_u16(), self.p["temp_mv_per_c"], self.p["temp_offset_mv"])
            self.policy.set_temperature(now, round(c, 1))
        if self.ambient is not None:
            lv = sp.brightness_level(self.ambient.read_u16())
            if lv != self.level:
                self.level = lv
                self.display.brightness(lv)

    def _refresh(self, force=False):
        """Draw if the policy changed; publish what is shown."""
        pol = self.policy
        if not (pol.changed or force):
            return
        pol.changed = False
        lim, leg = pol.shown()
        self.shown = self.display.show(lim, leg)
        self.display.power(not pol.hot)
        self.publish_state()

    def publish_state(self):
        now = ticks_ms()
        self.published_ts = self._now_s()
        st = state_payload(self.policy, now, self.shown, self.display.check(), self.published_ts)
        self.dev.publish("state", st, qos=1, retain=True)
        self.published_ms = now

    def telemetry(self):
        pol = self.policy
        now = ticks_ms()
        return {"limit": self.shown[0], "source": pol.source, "vis_m": pol.state(now)["vis_m"],
                "temp_c": pol.temp_c, "check": self.display.check()}

    def selftest(self):
        pol = self.policy
        r = {"display": (True, {"limit": self.shown[0], "legend": self.shown[1], "check": self.display.check()}),
             "temperature": (not pol.hot, pol.temp_c)}
        if self.meter is not None:
            h = self.meter.health
            r["vis_meter"] = (h.usable(), h.status if h.reason is None else h.reason)
        return r

    async def _selftest(self, now):
        self.policy.selftest_done(now)
        ms = self.p["selftest_ms"]
        if ms <= 0 or self.policy.hot:
            return
        self.display.lamp_test(True)
        await sleep_ms(ms)
        self.display.lamp_test(False)
        self._count("selftests")
        self.dev.event("selftest", {"kind": "lamp", "ms": ms})

    async def run(self):
        self._boot()
        self._refresh(force=True)
        p = self.p
        last_sensor = last_alive = None
        while True:
            now = ticks_ms()
            try:
                if self.maint is not None:
                    self.policy.set_local(now, self.maint.value() == p["maint_active"])
                if last_sensor is None or ticks_diff(now, last_sensor) >= p["sensor_s"] * 1000:
                    last_sensor = now
                    self._sensors(now)
                if self.policy.power_loss == "unknown" and ticks_diff(now, self.boot_ms) < p["power_wait_s"] * 1000:
                    self._classify_power()
                self.policy.tick(now)
                self._refresh()
                if (self.published_ms is None or ticks_diff(now, self.published_ms) >= p["state_s"] * 1000
                        or (self.published_ts == 0 and self.dev.clock.is_set())):
                    self.publish_state()
                if (last_alive is None or ticks_diff(now, last_alive) >= p["alive_s"] * 1000) and (
                        self.policy.power_loss != "unknown" or ticks_diff(now, self.boot_ms) >= p["power_wait_s"] * 1000):
                    last_alive = now
                    self._alive()
                if self.policy.selftest_due(now):
                    await self._selftest(now)
            except Exception as e:  # keep the sign alive; the watchdog covers hangs
                self._count("loop_errors")
                self.dev.log.exc(e, "sign loop")
            await sleep_ms(p["tick_ms"])


def start(dev):
    app = SignApp(dev)
    for name in ("set_limit", "clear", "heartbeat"):
        dev.on_command(name, app._command(name))
    dev.on_telemetry(app.telemetry)
    dev.on_selftest(app.selftest)
    dev.spawn(app.run(), "sign")
    if app.meter is not None:
        for t in app.meter.tasks():
            dev.spawn(t)
    return app
