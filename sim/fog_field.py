"""Fog along a road: banks that form, drift and thin over time.

`FogField.visibility(x_m, t_s)` is the meteorological optical range (MOR) in
metres at chainage x (metres along the road) and time t (seconds). Fog is
modelled as extinction, which adds up where banks overlap (Koschmieder:
MOR = 3 / sigma, sigma in 1/m), so two thin banks together are denser than
either alone, as in the air.

A `FogBank` is born at `t0_s`, thickens over `form_s`, holds, then thins over
`thin_s` until `t1_s`. Its core (densest, visibility `core_vis_m`) is
`width_m` wide with soft edges `edge_m` wide, and it drifts with the wind at
`drift_mps` along the road (negative: against the chainage). The world engine
feeds each beacon's virtual meter from the same field.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

K = 3.0  # MOR = K / sigma (5 % contrast threshold)
MOR_MAX = 20000.0  # what the meter reports in clear air


@dataclass
class FogBank:
    x0_m: float  # core centre at t0
    t0_s: float
    t1_s: float
    core_vis_m: float = 40.0
    width_m: float = 600.0
    edge_m: float = 300.0
    drift_mps: float = 0.0
    form_s: float = 300.0
    thin_s: float = 300.0

    def centre(self, t_s: float) -> float:
        return self.x0_m + self.drift_mps * (t_s - self.t0_s)

    def strength(self, t_s: float) -> float:
        """0..1: how far the bank has formed (and not yet thinned) at t."""
        if t_s <= self.t0_s or t_s >= self.t1_s:
            return 0.0
        up = (t_s - self.t0_s) / self.form_s if self.form_s > 0 else 1.0
        down = (self.t1_s - t_s) / self.thin_s if self.thin_s > 0 else 1.0
        return max(0.0, min(1.0, up, down))

    def sigma(self, x_m: float, t_s: float) -> float:
        s = self.strength(t_s)
        if s <= 0:
            return 0.0
        return self.sigma_at(x_m, self.centre(t_s), s)

    def sigma_at(self, x_m: float, centre_m: float, s: float) -> float:
        """sigma at x for the bank centred at centre_m with strength s (0 < s <= 1)."""
        d = abs(x_m - centre_m) - self.width_m / 2
        if d <= 0:
            shape = 1.0
        elif d >= self.edge_m:
            return 0.0
        else:  # raised-cosine edge: smooth, no step in visibility
            shape = 0.5 * (1 + math.cos(math.pi * d / self.edge_m))
        return s * shape * K / self.core_vis_m


@dataclass
class FogField:
    banks: list[FogBank] = field(default_factory=list)
    clear_vis_m: float = MOR_MAX
    # the banks present at one time: the world asks for thousands of points per tick at the same time, so
    # each bank's time terms (centre, strength) and the stretch it can touch are worked out once per tick
    _present: tuple = field(default=(None, 0, ()), init=False, repr=False, compare=False)

    def present(self, t_s: float) -> tuple:
        """((bank, centre_m, strength, lo_m, hi_m), ...): the banks that have formed and not yet gone at t;
        outside (lo, hi) a bank adds nothing (1 m wider than its edges, so the bank's own test decides)."""
        at, n, banks = self._present
        if at != t_s or n != len(self.banks):
            banks = []
            for b in self.banks:
                st = b.strength(t_s)
                if st > 0:
                    c, reach = b.centre(t_s), b.width_m / 2 + b.edge_m + 1.0
                    banks.append((b, c, st, c - reach, c + reach))
            banks = tuple(banks)
            self._present = (t_s, len(self.banks), banks)
        return banks

    def _banks_sigma(self, x_m: float, t_s: float):
        # the same sum, in the same order, as over every bank: the others only add 0.0
        total = 0
        at, n, banks = self._present
        if at != t_s or n != len(self.banks):
            banks = self.present(t_s)
        for b, c, st, lo, hi in banks:
            if lo < x_m < hi:
                total += b.sigma_at(x_m, c, st)
        return total

    def sigma(self, x_m: float, t_s: float) -> float:
        return K / self.clear_vis_m + self._banks_sigma(x_m, t_s)

    def visibility(self, x_m: float, t_s: float) -> float:
        return min(MOR_MAX, K / (K / self.clear_vis_m + self._banks_sigma(x_m, t_s)))

    def profile(self, xs: list[float], t_s: float) -> list[float]:
        return [self.visibility(x, t_s) for x in xs]

    @classmethod
    def from_scenario(cls, fog: list[dict], road: str, km0: float = 0.0) -> FogField:
        """The banks of a scenario's `fog[]` (docs/scenarios.md) on one road, chainage in metres
        from the road's `km0` ((km - km0) x 1000). A bank forms from `start_s`, is densest
        (`min_vis_m`) at `peak_s` and is gone at `end_s`; `extent_m` is its whole length, half of it
        dense core, a soft edge either side."""
        banks, clear = [], MOR_MAX
        for f in fog:
            if f["road"] != road:
                continue
            start = float(f.get("start_s", 0.0))
            end = float(f.get("end_s", 10 ** 9))
            peak = float(f.get("peak_s", start))
            ext = float(f["extent_m"])
            banks.append(FogBank(x0_m=(float(f["center_km"]) - km0) * 1000, t0_s=start, t1_s=end,
                                 core_vis_m=float(f["min_vis_m"]), width_m=ext / 2, edge_m=ext / 4,
                                 drift_mps=float(f.get("drift_mps", 0.0)),
                                 form_s=max(0.0, peak - start), thin_s=max(0.0, end - peak)))
            if "clear_vis_m" in f:
                clear = min(clear, float(f["clear_vis_m"]))
        return cls(banks, clear)

    @classmethod
    def random(cls, seed: int, length_m: float, duration_s: float, n_banks: int = 3) -> FogField:
        """Patchy fog for a scenario: n banks at random places and times."""
        rnd = random.Random(seed)
        banks = []
        for _ in range(n_banks):
            t0 = rnd.uniform(0, duration_s * 0.5)
            life = rnd.uniform(duration_s * 0.3, duration_s * 0.6)
            banks.append(FogBank(
                x0_m=rnd.uniform(0, length_m), t0_s=t0, t1_s=min(duration_s, t0 + life),
                core_vis_m=rnd.choice([30.0, 45.0, 70.0, 120.0, 180.0]),
                width_m=rnd.uniform(200, 1500), edge_m=rnd.uniform(150, 600),
                drift_mps=rnd.uniform(-3, 3), form_s=rnd.uniform(120, 600), thin_s=rnd.uniform(120, 600)))
        return cls(banks)


def flicker(vis_m: float, t_s: float, x_m: float, pct: float = 8.0) -> float:
    """A meter reading with deterministic scintillation of +-pct %: the
    fluctuation a real forward-scatter meter shows in patchy fog. Clipped to
    the meter's range like a real instrument's report."""
    h = math.sin(t_s * 12.9898 + x_m * 78.233) * 43758.5453
    u = (h - math.floor(h)) * 2 - 1  # -1..1
    return min(MOR_MAX, max(1.0, vis_m * (1 + u * pct / 100)))
