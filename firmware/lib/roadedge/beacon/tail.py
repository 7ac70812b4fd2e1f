# Red tail: pure logic, no I/O, time passed in (monotonic ms).
#
# In anti-rear-end mode each detection at this beacon turns it red for the
# time the vehicle needs to cover the tail length, so the red beacons behind a
# vehicle always span about tail_m. Tails of close vehicles overlap: the red
# time only ever extends (max), so two vehicles closer than the tail make one
# merged trail without a dark gap.

DEFAULTS = {
    "tail_m": 75.0,  # tail length at or below tail_speed_kmh
    "tail_speed_kmh": 80.0,  # above this speed the tail grows ...
    "tail_m_per_kmh": 1.0,  # ... by this many metres per km/h
    "tail_max_m": 200.0,
    "default_speed_kmh": 80.0,  # assumed when the radar gave no speed
    "min_speed_kmh": 5.0,  # below this the vehicle is treated as this slow (caps red time)
}


def tail_length_m(cfg, speed_kmh):
    """Configured tail length for a vehicle at speed_kmh."""
    base = cfg.get("tail_m", DEFAULTS["tail_m"])
    ref = cfg.get("tail_speed_kmh", DEFAULTS["tail_speed_kmh"])
    per = cfg.get("tail_m_per_kmh", DEFAULTS["tail_m_per_kmh"])
    top = cfg.get("tail_max_m", DEFAULTS["tail_max_m"])
    m = base + per * (speed_kmh - ref) if speed_kmh > ref else base
    return min(m, top) if top >= base else base


def red_ms(cfg, speed_kmh):
    """How long one detection keeps the beacon red: tail_length / speed."""
    v = speed_kmh if speed_kmh and speed_kmh > 0 else cfg.get("default_speed_kmh", DEFAULTS["default_speed_kmh"])
    v = max(v, cfg.get("min_speed_kmh", DEFAULTS["min_speed_kmh"]))
    return int(tail_length_m(cfg, v) * 3600 / v)  # m / (km/h) -> ms: m * 3600 / kmh


class Tail:
    """Red state of one beacon."""

    def __init__(self, cfg=None):
        self.cfg = cfg or {}
        self.until = None  # monotonic ms when red ends, None = not red

    def detect(self, now_ms, speed_kmh=None):
        """A vehicle passed now; returns the new red-until time."""
        end = now_ms + red_ms(self.cfg, speed_kmh)
        if self.until is None or end > self.until:
            self.until = end
        return self.until

    def red(self, now_ms):
        u = self.until
        if u is None:
            return False
        if now_ms >= u:
            self.until = None
            return False
        return True

    def clear(self):
        self.until = None
