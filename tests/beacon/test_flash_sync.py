"""Acceptance (c): beacons that never talk to each other flash together. Each
beacon has its own oscillator (up to +-50 ppm, its own tick counter with
wrap-around) and the real core Clock fed by the broker time beacon with
per-device delivery delay; the flash edges come from the real firmware
(flash.is_on on clock.now_ms). The onset of every flash, in true time, must
agree across all beacons within 20 ms -- including through a 10-minute loss of
time beacons, where only the clock's drift compensation holds them."""
from __future__ import annotations

import random

from roadedge.beacon import flash
from roadedge.core.clock import Clock

TICKS_MASK = (1 << 30) - 1
T0_UNIX = 1_763_780_000_000  # true unix ms at simulation start
RATE = 120  # flashes per minute (densest fog): 500 ms period
ON_PCT = 35


class Beacon:
    def __init__(self, rnd: random.Random, ppm: float) -> None:
        self.ppm = ppm
        self.tick0 = rnd.randrange(TICKS_MASK)  # boards boot at different times
        self.clock = Clock()
        self.delay_ms = rnd.uniform(1, 8)  # broker -> device delivery

    def ticks(self, t_ms: float) -> int:
        return (self.tick0 + int(t_ms * (1 + self.ppm / 1e6))) & TICKS_MASK

    def on(self, t_ms: float) -> bool:
        return flash.is_on(self.clock.now_ms(self.ticks(t_ms)), RATE, ON_PCT)

    def onset(self, t_lo: float, t_hi: float) -> float:
        """True time the lamp turns on within (t_lo, t_hi], by bisection on the firmware's output."""
        assert not self.on(t_lo) and self.on(t_hi)
        while t_hi - t_lo > 0.25:
            mid = (t_lo + t_hi) / 2
            if self.on(mid):
                t_hi = mid
            else:
                t_lo = mid
        return t_hi


def simulate(sync_period_s: float, outage: tuple[float, float] | None, hours: float = 1.5, seed: int = 4):
    rnd = random.Random(seed)
    beacons = [Beacon(rnd, ppm) for ppm in [-50.0, 50.0] + [rnd.uniform(-50, 50) for _ in range(98)]]
    period = flash.period_ms(RATE)
    spreads = []
    next_sync = 0.0
    t_end = hours * 3600_000
    t = 0.0
    while t < t_end:
        # broker time beacons
        while next_sync <= t:
            if not (outage and outage[0] * 1000 <= next_sync < outage[1] * 1000):
                for b in beacons:
                    b.clock.set(T0_UNIX + int(next_sync), "broker", b.ticks(next_sync + b.delay_ms))
            next_sync += sync_period_s * 1000
        if t > 1000:
            # the flash onset nearest after t in true time, measured per beacon
            k = (T0_UNIX + int(t)) // period + 1
            nominal = k * period - T0_UNIX
            onsets = [b.onset(nominal - period * ON_PCT / 100 / 2 - 30, nominal + 30) for b in beacons]
            spreads.append((t, max(onsets) - min(onsets)))
        t += 10_000
    return spreads


def test_flash_phase_within_20ms_with_50ppm_and_time_beacon_outage():
    spreads = simulate(sync_period_s=30, outage=(1800, 2400))
    worst = max(s for _, s in spreads)
    print(f"worst flash-onset spread across 100 beacons: {worst:.2f} ms")
    assert worst < 20, [(t, s) for t, s in spreads if s >= 20][:5]


def test_free_running_oscillators_would_drift_apart():
    # Sanity: the same oscillators after a single sync drift far past 20 ms in 15 minutes, so
    # the test above measures the synchronisation, not a trivial case.
    rnd = random.Random(4)
    beacons = [Beacon(rnd, ppm) for ppm in (-50.0, 50.0)]
    for b in beacons:
        b.clock.set(T0_UNIX, "broker", b.ticks(b.delay_ms))
    t = 15 * 60_000
    errs = [b.clock.now_ms(b.ticks(t)) - (T0_UNIX + t) for b in beacons]
    assert max(errs) - min(errs) > 20
