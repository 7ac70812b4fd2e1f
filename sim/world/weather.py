"""Scenario fog banks -> one `sim.fog_field.FogField` per road, in road chainage (metres from the road's start)."""
from __future__ import annotations

from sim.fog_field import MOR_MAX, FogBank, FogField


def bank_from_scenario(f: dict, km0: float) -> FogBank:
    """A scenario bank spans `extent_m` in all: a core half as wide with soft edges a quarter each side;
    it forms from `start_s` to `peak_s` and thins from `peak_s` to `end_s`."""
    ext = float(f["extent_m"])
    start, peak, end = float(f["start_s"]), float(f.get("peak_s", f["start_s"])), float(f["end_s"])
    return FogBank(x0_m=(float(f["center_km"]) - km0) * 1000, t0_s=start, t1_s=end, core_vis_m=float(f["min_vis_m"]),
                   width_m=ext / 2, edge_m=ext / 4, drift_mps=float(f.get("drift_mps", 0.0)),
                   form_s=max(0.0, peak - start), thin_s=max(0.0, end - peak))


def fog_fields(sc) -> dict[str, FogField]:
    out: dict[str, FogField] = {}
    for f in sc.fog:
        pl = sc.roads[f["road"]]
        ff = out.setdefault(f["road"], FogField([], MOR_MAX))
        ff.banks.append(bank_from_scenario(f, pl.km0))
        if "clear_vis_m" in f:
            ff.clear_vis_m = min(ff.clear_vis_m, float(f["clear_vis_m"]))
    return out


class Weather:
    """Visibility anywhere on the network: clear air (MOR_MAX) on roads without fog banks."""

    def __init__(self, sc) -> None:
        self.fields = fog_fields(sc)

    def visibility(self, road: str, s_m: float, t_s: float) -> float:
        ff = self.fields.get(road)
        return MOR_MAX if ff is None else ff.visibility(s_m, t_s)
