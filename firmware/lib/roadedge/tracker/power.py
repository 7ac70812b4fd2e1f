# Backup battery and ignition. Pure.
# Battery: the ADC reads the cell through a divider (Pico W: VSYS/3 on ADC3);
# percent from a single-cell Li-ion open-circuit curve, interpolated.
# Ignition: the bike's switched 12 V through an opto/divider on an input;
# a level must hold for debounce_ms before it counts (cranking dips).

from roadedge.core.compat import ticks_diff

DEFAULTS = {"vref": 3.3, "divider": 3.0, "ignition_debounce_ms": 500, "ignition_active_high": True}

# (millivolts, percent), descending
CURVE = ((4200, 100), (4100, 90), (4000, 80), (3920, 70), (3870, 60), (3820, 50), (3790, 40), (3770, 30),
         (3730, 20), (3690, 10), (3610, 5), (3300, 0))


def battery_mv(u16, vref=3.3, divider=3.0):
    return int(u16 * vref * divider * 1000 / 65535 + 0.5)


def percent(mv):
    if mv >= CURVE[0][0]:
        return 100
    for i in range(1, len(CURVE)):
        v1, p1 = CURVE[i]
        if mv >= v1:
            v0, p0 = CURVE[i - 1]
            return p1 + (p0 - p1) * (mv - v1) // (v0 - v1)
    return 0


class Ignition:
    def __init__(self, params=None):
        p = dict(DEFAULTS)
        if params:
            p.update(params)
        self.debounce_ms = p["ignition_debounce_ms"]
        self.active_high = p["ignition_active_high"]
        self.on = False
        self._cand = None
        self._since = 0

    def feed(self, level, now_ms):
        """Raw input level; returns True when the debounced state changes."""
        v = bool(level) == self.active_high
        if v == self.on:
            self._cand = None
            return False
        if self._cand != v:
            self._cand = v
            self._since = now_ms
            return False
        if ticks_diff(now_ms, self._since) >= self.debounce_ms:
            self.on = v
            self._cand = None
            return True
        return False
