# Synchronised flashing: pure, the phase is a function of the shared clock.
#
# Every beacon computes on/off from unix milliseconds alone, so beacons that
# never talk to each other flash together as long as their clocks agree
# (GNSS, NTP or the broker time beacon). Periods are whole milliseconds and the
# phase is counted from the unix epoch: two beacons at the same rate agree on
# every edge. The rate rises as visibility falls (per level, configurable).

DEFAULTS = {
    # flashes per minute for visibility levels 0..4 (only used in flashing modes)
    "flash_per_min": [30, 30, 60, 90, 120],
    "flash_on_pct": 35,  # lamp on for this share of each period
    "alarm_per_min": 120,
}


def period_ms(per_min):
    if per_min <= 0:
        raise ValueError("flash rate must be > 0")
    return int(60000 // per_min)


def rate_for_level(cfg, level):
    rates = cfg.get("flash_per_min", DEFAULTS["flash_per_min"])
    if level >= len(rates):
        level = len(rates) - 1
    return rates[level]


def is_on(now_ms, per_min, on_pct):
    """Lamp state at unix time now_ms for a rate and duty."""
    p = period_ms(per_min)
    return now_ms % p < p * on_pct // 100


def ms_to_next_edge(now_ms, per_min, on_pct):
    """Milliseconds until the lamp next changes state (>= 1)."""
    p = period_ms(per_min)
    on = p * on_pct // 100
    ph = now_ms % p
    if ph < on:
        return on - ph
    return p - ph


def phase_ms(now_ms, per_min):
    """Position in the flash period (0..period-1)."""
    return now_ms % period_ms(per_min)


def check_rates(rates):
    if not isinstance(rates, list) or not rates:
        raise ValueError("flash_per_min: non-empty list")
    for r in rates:
        if not isinstance(r, (int, float)) or isinstance(r, bool) or not 1 <= r <= 300:
            raise ValueError("flash_per_min: each 1..300")
    return rates
