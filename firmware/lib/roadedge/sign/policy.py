# What a variable speed-limit sign shows, and why. Pure: no I/O, no clock;
# every input carries `now_ms` (ticks_ms). The app shell feeds commands,
# heartbeats, the maintenance switch, temperature and visibility in, and
# renders `shown()` / publishes `state()` when `changed` is set.
#
# Behaviour follows NTCIP 1203 practice (domain.md "Sign fail-safe behaviour"):
# the sign never shows a value nobody decided; every loss (comms, power,
# reset, end of duration) has its own configured message, blank by default;
# the source of what is shown is always reported.
from roadedge import wire
from roadedge.core.compat import ticks_add, ticks_diff

CENTRAL = "central"
LOCAL = "local"
COMM_LOSS = "commLoss"
POWER_RECOVERY = "powerRecovery"
RESET = "reset"
END_DURATION = "endDuration"
AUTONOMOUS = "autonomous"

BLANK = (None, "")

# Every parameter has a default (architecture.md: board configs may omit them).
DEFAULTS = {
    "limit_min": 20,
    "limit_max": 120,
    "limit_step": 10,
    "legends": ["", "FOG", "\u96fe"],  # "" = none; \u96fe = the 雾 glyph
    "max_duration_s": 86400,  # 0 in a command = until replaced
    "default_priority": 128,
    "heartbeat_s": 15,  # the controller's heartbeat period
    "comm_loss_heartbeats": 10,  # agencies: 10 missed polls ...
    "comm_loss_min_s": 120,  # ... and at least 2 minutes
    "comm_loss_msg": "blank",  # "blank", a limit, or {"limit": n, "legend": s}
    "power_long_s": 300,  # off at least this long = long power loss
    "power_short_msg": "blank",
    "power_long_msg": "blank",
    "reset_msg": "blank",
    "end_duration_msg": "blank",
    "local_msg": "blank",  # shown when the maintenance switch takes over
    "autonomy": True,  # apply Art. 81 from local visibility when the controller is unreachable
    "fog_legend": "FOG",
    "vis_max_age_s": 120,
    "vis_hysteresis_pct": 25,  # leave a fog level only above threshold * (1 + pct/100)
    "temp_cutoff_c": 60,
    "temp_resume_c": 55,
    "selftest_period_s": 86400,
}

# Art. 81 (expressways): visibility below the threshold -> maximum speed (defined once, in the contract).
ART81 = wire.ART81
VIS_MAX_M = 20000  # a reading above this (or below 0) is a fault, not weather


def _int(v):
    # bool is an int subclass: True must not pass as limit 1
    return isinstance(v, int) and not isinstance(v, bool)


class SignPolicy:
    def __init__(self, cfg=None):
        c = dict(DEFAULTS)
        if cfg:
            for k in cfg:
                if k in DEFAULTS:
                    c[k] = cfg[k]
        self.cfg = c
        for k in ("limit_min", "limit_max", "limit_step", "max_duration_s", "heartbeat_s",
                  "comm_loss_heartbeats", "comm_loss_min_s", "power_long_s", "vis_max_age_s",
                  "temp_cutoff_c", "temp_resume_c", "selftest_period_s", "default_priority"):
            if not (_int(c[k]) or isinstance(c[k], float)) or c[k] < 0:
                raise ValueError("sign.%s: expected a number >= 0" % k)
        if c["limit_step"] <= 0 or c["limit_min"] > c["limit_max"]:
            raise ValueError("sign.limit_*: empty allowed set")
        self.legends = list(c["legends"])
        self.msgs = {}
        for k in ("comm_loss_msg", "power_short_msg", "power_long_msg", "reset_msg",
                  "end_duration_msg", "local_msg"):
            self.msgs[k] = self._parse_msg(k, c[k])
        if c["fog_legend"] not in self.legends:
            raise ValueError("sign.fog_legend: not in sign.legends")
        self.comm_loss_ms = int(max(c["comm_loss_min_s"], c["comm_loss_heartbeats"] * c["heartbeat_s"]) * 1000)

        self.limit = None
        self.legend = ""
        self.source = RESET
        self.prio = 0  # run-time priority of the central activation (0 = none)
        self.end_ms = None  # when the central activation ends (None = until replaced)
        self.last_contact = None
        self.comm_lost = False
        self.auto = False  # autonomy armed: comms were lost and no central command since
        self.local = False
        self.hot = False
        self.temp_c = None
        self.vis = None
        self.vis_ms = None
        self.nb_vis = {}  # neighbour id -> (vis_m, at_ms): used when our own meter is blind
        self.vis_rejected = 0
        self.held = None  # the last limit a supervisor held (veto): no fallback shows more
        self.held_legend = ""
        self.level = 0  # current Art. 81 fog level used by autonomy (0 clear .. 3)
        self.power_loss = None  # "short" / "long" after a power-on boot
        self.selftest_ms = None
        self.changed = True

    # --- configuration helpers -------------------------------------------
    def allowed(self, limit):
        c = self.cfg
        return (_int(limit) and c["limit_min"] <= limit <= c["limit_max"]
                and (limit - c["limit_min"]) % c["limit_step"] == 0)

    def _parse_msg(self, name, v):
        if v is None or v == "blank":
            return BLANK
        if _int(v):
            v = {"limit": v}
        if isinstance(v, dict):
            lim = v.get("limit")
            leg = v.get("legend", "")
            if (lim is None or self.allowed(lim)) and leg in self.legends:
                return (lim, leg)
        raise ValueError("sign.%s: expected \"blank\", an allowed limit or {\"limit\", \"legend\"}" % name)

    # --- display ---------------------------------------------------------
    def _show(self, msg, source):
        if (self.limit, self.legend, self.source) != (msg[0], msg[1], source):
            self.changed = True
        self.limit, self.legend = msg
        self.source = source

    def _end_activation(self):
        self.prio = 0
        self.end_ms = None

    def shown(self):
        """(limit or None, legend) to put on the display now (dark when too hot)."""
        if self.hot:
            return BLANK
        return (self.limit, self.legend)

    def state(self, now_ms):
        rem = None
        if self.end_ms is not None:
            rem = max(0, ticks_diff(self.end_ms, now_ms) // 1000)
        faults = ["over_temp"] if self.hot else []
        return {
            "limit": self.shown()[0],
            "legend": self.shown()[1],
            "source": self.source,
            "commanded": self.limit,
            "priority": self.prio,
            "remaining_s": rem,
            "local": self.local,
            "comm": "lost" if self.comm_lost else "ok",
            "power_loss": self.power_loss,
            "vis_m": self.vis if self._vis_fresh(now_ms) else None,
            "held": self.held,
            "vis_rejected": self.vis_rejected,
            "temp_c": self.temp_c,
            "faults": faults,
        }

    # --- events ----------------------------------------------------------
    def boot(self, now_ms, cause, down_s):
        """After start-up. cause: hal.reset_cause(); down_s: seconds since the
        last persisted alive time (None if unknown, e.g. clock not set)."""
        if cause == "power_on":
            # an unknown outage length (clock not yet set) shows the long-loss
            # message until power_down_known() can tell
            self.power_loss = "unknown"
            self._show(self._capped(self.msgs["power_long_msg"]), POWER_RECOVERY)
            if down_s is not None:
                self.power_down_known(now_ms, down_s)
        else:
            self._show(self._capped(self.msgs["reset_msg"]), RESET)
        self._end_activation()
        # the comms-loss timer runs from boot: a sign that never hears from
        # the controller still falls back (and may go autonomous)
        self.last_contact = now_ms
        self.changed = True

    def power_down_known(self, now_ms, down_s):
        """How long the power was off, once the clock can tell (seconds)."""
        if self.power_loss != "unknown" or not isinstance(down_s, (int, float)):
            return
        long_loss = down_s < 0 or down_s >= self.cfg["power_long_s"]
        self.power_loss = "long" if long_loss else "short"
        if self.source == POWER_RECOVERY:  # nothing has replaced the recovery message yet
            self._show(self._capped(self.msgs["power_long_msg" if long_loss else "power_short_msg"]), POWER_RECOVERY)
        self.changed = True

    def _contact(self, now_ms):
        self.last_contact = now_ms
        if self.comm_lost:
            self.comm_lost = False
            self.changed = True

    def heartbeat(self, now_ms):
        self._contact(now_ms)
        return ("ok", None)

    def check_args(self, args):
        """Validate set_limit args -> (limit, duration_s, priority, legend) or an error string."""
        if not isinstance(args, dict):
            return "args must be an object"
        lim = args.get("limit")
        if not self.allowed(lim):
            c = self.cfg
            return "limit must be one of %d..%d step %d" % (c["limit_min"], c["limit_max"], c["limit_step"])
        dur = args.get("duration_s", 0)
        if not _int(dur) or dur < 0 or dur > self.cfg["max_duration_s"]:
            return "duration_s must be 0..%d" % self.cfg["max_duration_s"]
        prio = args.get("priority", self.cfg["default_priority"])
        if not _int(prio) or not 1 <= prio <= 255:
            return "priority must be 1..255"
        leg = args.get("legend", "")
        if leg is None:
            leg = ""
        if not isinstance(leg, str) or leg not in self.legends:
            return "legend must be one of %s" % ",".join(repr(x) for x in self.legends)
        chk = args.get("check")
        if chk is not None and (not _int(chk) or not 0 <= chk <= 0xFFFF):
            return "check must be the 16-bit check value of the message"
        return (lim, dur, prio, leg)

    def _active(self, now_ms):
        if self.source != CENTRAL or self.prio == 0:
            return False
        return self.end_ms is None or ticks_diff(self.end_ms, now_ms) > 0

    def set_limit(self, now_ms, args):
        """A verified central set_limit. Returns (code, detail)."""
        r = self.check_args(args)
        if isinstance(r, str):
            return ("bad_args", r)
        if self.local:
            return ("refused", "local_control")
        lim, dur, prio, leg = r
        self._contact(now_ms)
        if self._active(now_ms) and prio < self.prio:
            return ("refused", "priority")
        if args.get("hold") is True:
            self.held, self.held_legend = lim, leg
        else:  # the controller released the hold (or never had one)
            self.held, self.held_legend = None, ""
        self._show((lim, leg), CENTRAL)
        self.prio = prio
        self.end_ms = None if dur == 0 else ticks_add(now_ms, dur * 1000)
        self.auto = False
        self.changed = True
        return ("ok", None)

    def clear(self, now_ms, args=None):
        """A verified central clear: blank, reported as central."""
        if args is not None and not isinstance(args, dict):
            return ("bad_args", "args must be an object")
        if self.local:
            return ("refused", "local_control")
        self._contact(now_ms)
        self._show(BLANK, CENTRAL)
        self.held, self.held_legend = None, ""
        self._end_activation()
        self.auto = False
        self.changed = True
        return ("ok", None)

    def set_local(self, now_ms, on):
        """The maintenance switch: local control refuses central commands."""
        on = bool(on)
        if on == self.local:
            return
        self.local = on
        self._end_activation()
        self.auto = False
        if on:
            self._show(self.msgs["local_msg"], LOCAL)
        elif self.comm_lost:
            self._fall_back(now_ms)
        else:
            self._show(self._capped(self.msgs["end_duration_msg"]), END_DURATION)
        self.changed = True

    def set_temperature(self, now_ms, c):
        if not isinstance(c, (int, float)):
            return
        self.temp_c = c
        if not self.hot and c >= self.cfg["temp_cutoff_c"]:
            self.hot = True
            self.changed = True
        elif self.hot and c <= self.cfg["temp_resume_c"]:
            self.hot = False
            self.changed = True

    def _vis_ok(self, vis_m):
        if isinstance(vis_m, bool) or not isinstance(vis_m, (int, float)) or not 0 <= vis_m <= VIS_MAX_M:
            self.vis_rejected += 1
            return False
        return True

    def set_visibility(self, now_ms, vis_m):
        """A visibility reading (metres) from the sign's own meter; False (counted) if out of range."""
        if not self._vis_ok(vis_m):
            return False
        self.vis = vis_m
        self.vis_ms = now_ms
        return True

    def set_neighbour_visibility(self, now_ms, src, vis_m):
        """A neighbour's reading (beacon or sign meter nearby), used while our own meter is blind."""
        if not self._vis_ok(vis_m) or not isinstance(src, str):
            return False
        if src in self.nb_vis or len(self.nb_vis) < 8:  # bounded: a few neighbours at most
            self.nb_vis[src] = (vis_m, now_ms)
        return True

    def _fresh(self, at_ms, now_ms):
        # ticks wrap: a negative age is a reading from before a wrap, i.e. old (tick() drops them in time)
        if at_ms is None:
            return False
        age = ticks_diff(now_ms, at_ms)
        return 0 <= age <= self.cfg["vis_max_age_s"] * 1000

    def _vis_fresh(self, now_ms):
        return self._fresh(self.vis_ms, now_ms)

    def worst_vis(self, now_ms):
        """Our own fresh reading, else the worst fresh neighbour reading (a blind sign), else None."""
        if self._vis_fresh(now_ms):
            return self.vis
        worst = None
        for v, at in self.nb_vis.values():
            if self._fresh(at, now_ms) and (worst is None or v < worst):
                worst = v
        return worst

    def _expire(self, now_ms):
        """Forget stale readings while their age still reads true (before the ticks wrap)."""
        if self.vis_ms is not None and not self._fresh(self.vis_ms, now_ms):
            self.vis, self.vis_ms = None, None
        for k in [k for k, (_v, at) in self.nb_vis.items() if not self._fresh(at, now_ms)]:
            del self.nb_vis[k]

    def fog_level(self, vis_m):
        """Art. 81 level with hysteresis around the current level."""
        return art81_level(vis_m, self.level, self.cfg["vis_hysteresis_pct"])

    def _autonomous_limit(self, level):
        cap = ART81[3 - level][1]
        lim = None
        v = self.cfg["limit_min"]
        while v <= self.cfg["limit_max"]:
            if v <= cap:
                lim = v
            v += self.cfg["limit_step"]
        return lim

    def _capped(self, msg):
        """A configured fallback message, never above a supervisor's hold (a person's decision stands)."""
        if self.held is not None and (msg[0] is None or msg[0] > self.held):
            return (self.held, self.held_legend)
        return msg

    def _comm_loss_msg(self):
        return self._capped(self.msgs["comm_loss_msg"])

    def restore_hold(self, held):
        """The hold persisted before a power loss or reset ([limit, legend]); call before boot()."""
        if isinstance(held, list) and len(held) == 2 and self.allowed(held[0]) and held[1] in self.legends:
            self.held, self.held_legend = held[0], held[1]

    def _fall_back(self, now_ms):
        """Comms lost: autonomy from fresh visibility, else the comm-loss message."""
        self._end_activation()
        self.auto = bool(self.cfg["autonomy"])
        if not self._autonomy(now_ms):
            self._show(self._comm_loss_msg(), COMM_LOSS)

    def _autonomy(self, now_ms):
        """Apply Art. 81 if armed and visibility is fresh and foggy; True if shown."""
        vis = self.worst_vis(now_ms)
        if not self.auto or vis is None:
            return False
        self.level = self.fog_level(vis)
        if self.level == 0:
            return False
        lim = self._autonomous_limit(self.level)
        if lim is None:
            return False
        leg = self.cfg["fog_legend"]
        if self.held is not None and self.held < lim:
            lim, leg = self.held, self.held_legend
        self._show((lim, leg), AUTONOMOUS)
        return True

    def tick(self, now_ms):
        """Advance timers. Call often (every few hundred ms)."""
        self._expire(now_ms)
        if self.local:
            return
        if (not self.comm_lost and self.last_contact is not None
                and ticks_diff(now_ms, self.last_contact) >= self.comm_loss_ms):
            self.comm_lost = True
            self.changed = True
            self._fall_back(now_ms)
            return
        if self.source == CENTRAL and self.end_ms is not None and ticks_diff(now_ms, self.end_ms) >= 0:
            self._end_activation()
            self._show(self._capped(self.msgs["end_duration_msg"]), END_DURATION)
            return
        if self.auto and self.source in (AUTONOMOUS, COMM_LOSS):
            if not self._autonomy(now_ms) and self.source == AUTONOMOUS:
                # fog lifted or the meter went quiet: back to the comm-loss message
                self._show(self._comm_loss_msg(), COMM_LOSS)

    def selftest_due(self, now_ms):
        return self.selftest_ms is None or ticks_diff(now_ms, self.selftest_ms) >= self.cfg["selftest_period_s"] * 1000

    def selftest_done(self, now_ms):
        self.selftest_ms = now_ms


def art81_level(vis_m, level, hysteresis_pct):
    """Fog level 0 (>= 200 m) .. 3 (< 50 m). Going down is immediate below a
    threshold; going up needs visibility above threshold * (1 + pct/100)."""
    new = 0
    for i in range(3):
        if vis_m < ART81[i][0]:
            new = 3 - i
            break
    if new >= level:
        return new
    # improving: step out only as far as the raised thresholds allow
    k = 1 + hysteresis_pct / 100
    up = level
    while up > 0 and vis_m >= ART81[3 - up][0] * k:
        up -= 1
    return max(new, up)


def brightness_level(u16, levels=16, min_level=1):
    """Ambient light (ADC 0..65535) -> display intensity 0..levels-1, never below min_level."""
    if not _int(u16):
        return levels - 1
    lv = (max(0, min(65535, u16)) * levels) // 65536
    return max(min_level, min(levels - 1, lv))


def adc_to_celsius(u16, mv_per_c=10, offset_mv=0, vref_mv=3300):
    """Analogue temperature sensor (LM35: 10 mV/C, TMP36: offset 500 mV) on a u16 ADC."""
    mv = u16 * vref_mv / 65535
    return (mv - offset_mv) / mv_per_c
