# Lamps: what each PWM channel shows (pure), brightness from ambient light,
# visibility and battery (pure), lamp-current sense -> burnt-out fault (pure),
# and a thin driver over the two HAL PWM channels.
from roadedge.beacon import modes as M

DEFAULTS = {
    # brightness (PWM duty) by day and by night; ambient ADC thresholds between them
    "day_duty": 1.0,
    "night_duty": 0.3,
    "dark_u16": 4000,  # at or below: night
    "bright_u16": 30000,  # at or above: full day; linear in between
    # extra brightness per visibility level (night only needs it in fog)
    "level_boost": [0.0, 0.1, 0.2, 0.3, 0.4],
    # lamp current sense: full-duty current per channel and the ADC scale
    "yellow_ma": 120.0,
    "red_ma": 120.0,
    "current_full_scale_ma": 500.0,
    "burnt_ratio": 0.3,  # below this share of the expected current = lamp out
    "burnt_samples": 3,  # consecutive bad samples before the fault
    "min_sense_duty": 0.2,  # only judge a channel driven at least this much
}


def ambient_duty(cfg, amb_u16):
    d, n = cfg.get("day_duty", DEFAULTS["day_duty"]), cfg.get("night_duty", DEFAULTS["night_duty"])
    lo, hi = cfg.get("dark_u16", DEFAULTS["dark_u16"]), cfg.get("bright_u16", DEFAULTS["bright_u16"])
    if amb_u16 <= lo:
        return n
    if amb_u16 >= hi:
        return d
    return n + (d - n) * (amb_u16 - lo) / (hi - lo)


def brightness(cfg, amb_u16, level, energy_factor):
    """PWM duty 0..1 for a lit lamp."""
    b = cfg.get("level_boost", DEFAULTS["level_boost"])
    boost = b[min(level, len(b) - 1)] if b else 0.0
    x = (ambient_duty(cfg, amb_u16) + boost) * energy_factor
    return 0.0 if x < 0 else (1.0 if x > 1 else x)


def duties(mode, flash_on, red, duty):
    """(yellow, red) PWM duty for a mode.
    standby: dark; contour: steady yellow; guidance: yellow flashing in sync;
    anti-rear-end: yellow flashing, steady red (yellow off) while the tail is
    active; section alarm: red flashing in sync."""
    if mode == M.CONTOUR:
        return duty, 0.0
    if mode == M.GUIDANCE:
        return (duty if flash_on else 0.0), 0.0
    if mode == M.ANTI_REAR_END:
        if red:
            return 0.0, duty
        return (duty if flash_on else 0.0), 0.0
    if mode == M.SECTION_ALARM:
        return 0.0, (duty if flash_on else 0.0)
    return 0.0, 0.0


class LampMonitor:
    """Burnt-out detection from one shared current sense. A sample is judged
    only when exactly one channel is driven (so the current belongs to it);
    burnt_samples bad samples in a row raise the fault, one good one clears."""

    def __init__(self, cfg=None):
        c = dict(DEFAULTS)
        c.update(cfg or {})
        self.cfg = c
        self.bad = {"yellow": 0, "red": 0}
        self.out = {"yellow": False, "red": False}

    def sample(self, yellow_duty, red_duty, current_u16):
        """Return the channel whose fault state changed (or None)."""
        c = self.cfg
        if (yellow_duty > 0) == (red_duty > 0):
            return None
        ch, duty = ("yellow", yellow_duty) if yellow_duty > 0 else ("red", red_duty)
        if duty < c["min_sense_duty"]:
            return None
        ma = current_u16 * c["current_full_scale_ma"] / 65535
        expect = duty * c[ch + "_ma"]
        if ma < expect * c["burnt_ratio"]:
            self.bad[ch] += 1
            if self.bad[ch] >= c["burnt_samples"] and not self.out[ch]:
                self.out[ch] = True
                return ch
        else:
            self.bad[ch] = 0
            if self.out[ch]:
                self.out[ch] = False
                return ch
        return None

    def health(self):
        return {"yellow": "out" if self.out["yellow"] else "ok", "red": "out" if self.out["red"] else "ok"}


class Lamps:
    """The two PWM channels; writes only on change."""

    def __init__(self, hal, freq=1000):
        self.y = hal.pwm("lamp_yellow", freq)
        self.r = hal.pwm("lamp_red", freq)
        self.yd = -1.0
        self.rd = -1.0

    def show(self, yd, rd):
        if yd != self.yd:
            self.y.duty(yd)
            self.yd = yd
        if rd != self.rd:
            self.r.duty(rd)
            self.rd = rd
