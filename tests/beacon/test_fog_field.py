"""sim.fog_field: the fog field the beacons' virtual meters and the world engine read."""
from __future__ import annotations

import json
from pathlib import Path

from sim.fog_field import MOR_MAX, FogBank, FogField, flicker


def test_bank_forms_drifts_and_thins():
    f = FogField([FogBank(x0_m=1000, t0_s=0, t1_s=1000, core_vis_m=40, width_m=400, edge_m=200, drift_mps=2,
                          form_s=200, thin_s=200)])
    assert f.visibility(1000, 0) == MOR_MAX  # not yet formed
    assert f.visibility(1200, 100) > f.visibility(1380, 190) > 40  # forming (at the moving core)
    assert abs(f.visibility(1600, 300) - 40) < 1  # core has drifted 600 m downstream by t=300
    assert f.visibility(1000, 300) > 1000  # ... and left its birthplace
    assert f.visibility(1600, 300) < f.visibility(1600 + 250, 300) < f.visibility(1600 + 400, 300)  # soft edge
    assert f.visibility(2900, 950) > f.visibility(2700, 850) > 40  # thinning (at the moving core)
    assert f.visibility(3000, 1000) == MOR_MAX


def test_overlapping_banks_are_denser_than_either():
    a = FogBank(x0_m=0, t0_s=0, t1_s=100, core_vis_m=200, width_m=100, edge_m=50, form_s=0, thin_s=0)
    b = FogBank(x0_m=0, t0_s=0, t1_s=100, core_vis_m=200, width_m=100, edge_m=50, form_s=0, thin_s=0)
    assert abs(FogField([a, b]).visibility(0, 50) - 100) < 1


def test_from_scenario_and_flicker_bounds():
    demo = json.loads((Path(__file__).resolve().parents[2] / "sim/scenarios/demo.json").read_text())
    bank = demo["fog"][0]
    f = FogField.from_scenario(demo["fog"], bank["road"])
    x = bank["center_km"] * 1000 + bank.get("drift_mps", 0) * (bank["peak_s"] - bank["start_s"])
    assert abs(f.visibility(x, bank["peak_s"]) - bank["min_vis_m"]) < 2
    assert f.visibility(x, bank["end_s"] + 1) == bank.get("clear_vis_m", MOR_MAX)
    assert FogField.from_scenario(demo["fog"], "no-such-road").banks == []
    vals = [flicker(300, t, 90) for t in range(500)]
    assert min(vals) >= 300 * 0.92 - 1e-9 and max(vals) <= 300 * 1.08 + 1e-9 and len(set(vals)) > 400
    assert flicker(MOR_MAX, 3, 0) <= MOR_MAX
