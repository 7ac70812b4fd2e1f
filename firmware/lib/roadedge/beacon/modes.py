# Mode policy for a fog-zone beacon: pure, no I/O, time passed in.
#
# Visibility is graded into levels by descending thresholds (default the
# weather-service / traffic-law limits 500, 200, 100, 50 m):
#   level 0: vis >= 500 m   level 1: < 500   level 2: < 200   level 3: < 100
#   level 4: < 50
# Each level maps to a mode (LEVEL_MODES). A level change needs
#  - hysteresis: getting worse uses the threshold itself, getting better needs
#    vis >= threshold * (1 + hyst_pct/100), so a reading sitting on a line does
#    not flap;
#  - persistence: the worse (better) candidate must hold on every sample for
#    enter_ms (exit_ms) from the first sample that proposed it; the level then
#    becomes the candidate of the sample that completes the wait. A sample that
#    proposes no change, or a change the other way, restarts the wait.
# The full rules are written out in docs/visibility_meter.md ("Mode policy").

STANDBY = "standby"
CONTOUR = "contour"
GUIDANCE = "guidance"
ANTI_REAR_END = "anti_rear_end"
SECTION_ALARM = "section_alarm"
MODES = (STANDBY, CONTOUR, GUIDANCE, ANTI_REAR_END, SECTION_ALARM)
# Modes that visibility (or the safe-mode setting) may select.
AUTO_MODES = (STANDBY, CONTOUR, GUIDANCE, ANTI_REAR_END)

DEFAULTS = {
    "levels_m": [500, 200, 100, 50],
    "level_modes": [STANDBY, CONTOUR, GUIDANCE, ANTI_REAR_END, ANTI_REAR_END],
    "hyst_pct": 20.0,
    "enter_s": 10.0,
    "exit_s": 60.0,
}


def check_levels(levels):
    """Raise ValueError unless levels is a strictly descending list of
    1..4 positive metre values within 1..20000."""
    if not isinstance(levels, list) or not 1 <= len(levels) <= 4:
        raise ValueError("levels_m: 1..4 thresholds")
    prev = None
    for v in levels:
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not 1 <= v <= 20000:
            raise ValueError("levels_m: each 1..20000 m")
        if prev is not None and v >= prev:
            raise ValueError("levels_m: must be strictly descending")
        prev = v
    return levels


def check_level_modes(level_modes, n_levels):
    if not isinstance(level_modes, list) or len(level_modes) != n_levels + 1:
        raise ValueError("level_modes: need len(levels_m)+1 entries")
    for m in level_modes:
        if m not in AUTO_MODES:
            raise ValueError("level_modes: unknown mode %r" % (m,))
    return level_modes


def raw_level(levels, vis_m):
    """Level from thresholds alone: how many thresholds vis is below."""
    n = 0
    for t in levels:
        if vis_m < t:
            n += 1
    return n


def relief_level(levels, vis_m, hyst_pct):
    """Level allowed when getting better: thresholds raised by hysteresis."""
    n = 0
    for t in levels:
        if vis_m * 100 < t * (100 + hyst_pct):  # exact for whole metres and percents
            n += 1
    return n


class LevelPolicy:
    """Visibility level with hysteresis and persistence."""

    def __init__(self, levels_m=None, hyst_pct=20, enter_s=10, exit_s=60, level=0):
        self.configure(levels_m or DEFAULTS["levels_m"], hyst_pct, enter_s, exit_s)
        self.level = level
        self._pending = None  # (direction +1/-1, since_ms)

    def configure(self, levels_m, hyst_pct, enter_s, exit_s):
        self.levels = check_levels(list(levels_m))
        if not 0 <= hyst_pct <= 100:
            raise ValueError("hyst_pct: 0..100")
        if not 0 <= enter_s <= 3600 or not 0 <= exit_s <= 3600:
            raise ValueError("enter_s/exit_s: 0..3600")
        self.hyst_pct = hyst_pct
        self.enter_ms = int(enter_s * 1000)
        self.exit_ms = int(exit_s * 1000)
        if hasattr(self, "level") and self.level > len(self.levels):
            self.level = len(self.levels)
        self._pending = None

    def update(self, now_ms, vis_m):
        """Feed one visibility sample; return the (possibly new) level."""
        cur = self.level
        worse = raw_level(self.levels, vis_m)
        better = relief_level(self.levels, vis_m, self.hyst_pct)
        if worse > cur:
            d, cand, hold = 1, worse, self.enter_ms
        elif better < cur:
            d, cand, hold = -1, better, self.exit_ms
        else:
            self._pending = None
            return cur
        p = self._pending
        if p is None or p[0] != d:
            p = self._pending = (d, now_ms)
        if now_ms - p[1] >= hold:
            self.level = cand
            self._pending = None
        return self.level

    def reset(self, level=0):
        self.level = level
        self._pending = None


class ModePolicy:
    """Chooses the beacon's mode. Priority: section alarm (incident command)
    > operator override > safe mode (meter fault/silence) > visibility.

    Override and alarm may carry an expiry (monotonic ms, None = until
    cleared)."""

    def __init__(self, cfg=None):
        cfg = cfg or {}
        lv = cfg.get("levels_m", DEFAULTS["levels_m"])
        self.level = LevelPolicy(lv, cfg.get("hyst_pct", DEFAULTS["hyst_pct"]),
                                 cfg.get("enter_s", DEFAULTS["enter_s"]), cfg.get("exit_s", DEFAULTS["exit_s"]))
        self.level_modes = check_level_modes(list(cfg.get("level_modes", DEFAULTS["level_modes"])), len(lv))
        self.safe_mode = cfg.get("safe_mode", GUIDANCE)
        if self.safe_mode not in AUTO_MODES:
            raise ValueError("safe_mode: unknown mode %r" % (self.safe_mode,))
        # Level assumed while the meter is unusable (drives flash rate, brightness).
        self.safe_level = int(cfg.get("safe_level", 2))
        self.safe = False
        self.override = None  # (mode, until_ms or None)
        self.alarm = None  # until_ms or None when off; -1 = on without expiry

    def set_thresholds(self, levels_m, hyst_pct, enter_s, exit_s, level_modes=None):
        # Validate everything before changing anything: a refused command
        # must leave the policy exactly as it was.
        lm = check_level_modes(list(level_modes or self.level_modes), len(levels_m))
        LevelPolicy(levels_m, hyst_pct, enter_s, exit_s)
        self.level.configure(levels_m, hyst_pct, enter_s, exit_s)
        self.level_modes = lm

    def feed(self, now_ms, vis_m):
        return self.level.update(now_ms, vis_m)

    def set_override(self, mode, until_ms=None):
        if mode is None:
            self.override = None
            return
        if mode not in MODES:
            raise ValueError("mode: unknown %r" % (mode,))
        self.override = (mode, until_ms)

    def set_alarm(self, on, until_ms=None):
        self.alarm = (-1 if until_ms is None else until_ms) if on else None

    def _expire(self, now_ms):
        o = self.override
        if o is not None and o[1] is not None and now_ms >= o[1]:
            self.override = None
        a = self.alarm
        if a is not None and a != -1 and now_ms >= a:
            self.alarm = None

    def effective_level(self):
        return self.safe_level if self.safe else self.level.level

    def mode(self, now_ms):
        """(mode, reason) for this instant; reason is alarm/override/safe/auto."""
        self._expire(now_ms)
        if self.alarm is not None:
            return SECTION_ALARM, "alarm"
        if self.override is not None:
            return self.override[0], "override"
        if self.safe:
            return self.safe_mode, "safe"
        return self.level_modes[self.level.level], "auto"
