# One beacon's decisions, composed from the pure policies: no I/O, every
# call takes the time (monotonic ms for local timing, unix ms for the shared
# flash phase). The app shell feeds it readings and writes its outputs; tests
# and the simulator drive hundreds of them with synthetic time.
from roadedge.beacon import modes as M
from roadedge.beacon import tail as T
from roadedge.beacon import flash as F
from roadedge.beacon import energy as E
from roadedge.beacon import lamps as L


def defaults():
    """Every beacon parameter with its default (config section "beacon")."""
    d = {}
    for src in (M.DEFAULTS, T.DEFAULTS, F.DEFAULTS, E.DEFAULTS, L.DEFAULTS):
        for k in src:
            v = src[k]
            d[k] = list(v) if isinstance(v, list) else v
    d["safe_mode"] = M.GUIDANCE
    d["safe_level"] = 2
    d["sense_s"] = 2.0
    d["position_m"] = 0.0
    d["meter"] = {"addr": 1, "poll_s": 5.0, "reply_ms": 1500, "miss_polls": 1}
    d["detector"] = {"debounce_ms": 80, "speed_valid_ms": 1500}
    return d


class BeaconLogic:
    def __init__(self, cfg=None):
        c = defaults()
        c.update(cfg or {})
        self.cfg = c
        self.modes = M.ModePolicy(c)
        F.check_rates(c["flash_per_min"])
        self.tail = T.Tail(c)
        self.energy = E.Energy(c)
        self.amb_u16 = 65535  # assume daylight until the sensor says otherwise
        self.vis_m = None

    # --- inputs ---
    def visibility(self, mono_ms, mor_m):
        """A valid meter reading; returns (old_level, new_level)."""
        self.vis_m = mor_m
        old = self.modes.level.level
        return old, self.modes.feed(mono_ms, mor_m)

    def meter_usable(self, usable):
        self.modes.safe = not usable
        if not usable:
            self.vis_m = None

    def detect(self, mono_ms, speed_kmh=None):
        """A vehicle passed this beacon. The tail is kept in every mode (so a
        mode change mid-passage is seamless) but shows only in anti-rear-end."""
        return self.tail.detect(mono_ms, speed_kmh)

    def ambient(self, u16):
        self.amb_u16 = u16

    def battery(self, volts):
        return self.energy.update(volts)

    # --- outputs ---
    def flash_rate(self, mode):
        if mode == M.SECTION_ALARM:
            return self.cfg["alarm_per_min"]
        return F.rate_for_level(self.cfg, self.modes.effective_level())

    def render(self, mono_ms, unix_ms):
        """(mode, reason, yellow_duty, red_duty, ms_to_next_change).
        unix_ms None (clock never set): flash on local time, not in sync."""
        mode, reason = self.modes.mode(mono_ms)
        red = self.tail.red(mono_ms) and mode == M.ANTI_REAR_END
        rate = self.flash_rate(mode)
        on_pct = self.cfg["flash_on_pct"]
        t = mono_ms if unix_ms is None else unix_ms
        on = F.is_on(t, rate, on_pct)
        nxt = F.ms_to_next_edge(t, rate, on_pct) if mode != M.STANDBY and mode != M.CONTOUR else 1000
        if self.tail.until is not None:
            nxt = min(nxt, max(1, self.tail.until - mono_ms))
        duty = L.brightness(self.cfg, self.amb_u16, self.modes.effective_level(), self.energy.factor)
        y, r = L.duties(mode, on, red, duty)
        return mode, reason, y, r, nxt
