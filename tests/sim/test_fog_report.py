"""The simulator's report with the real zone controller in the loop (sim/world/engine.py runs
host_tools.controller): on the demo and the seed scenario every sign in fog shows the Art. 81 limit
within 30 s of the fog reaching it, and never later than that allowance afterwards."""
from __future__ import annotations

import pytest

from host_tools import fw
from sim.run_report import summary
from host_tools.deployment.scenario import load
from sim.world.engine import World


@pytest.mark.parametrize("name,until", [("demo.json", None), ("seed-city.json", 600)])
def test_fog_onset_to_lawful_limit_within_30_s_on_every_sign(name, until):
    sc = load(fw.REPO / "sim" / "scenarios" / name)
    w = World(sc, traffic=False)  # vehicles do not change what the signs must show
    w.run(until or sc.duration_s)
    signs = summary(w)["signs"]
    fogged = {k: v for k, v in signs.items() if v["fog_onset_s"] is not None}
    assert fogged, "the scenario has fog at some sign"
    for sid, v in fogged.items():
        assert v["onset_to_lawful_s"] is not None and v["onset_to_lawful_s"] <= 30, (sid, v)
        assert v["unlawful_late_s"] == 0, (sid, v)
