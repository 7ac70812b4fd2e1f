import json

import pytest

from host_tools.deployment import scenario


def test_shipped_scenarios_load():
    demo = scenario.load("sim/scenarios/demo.json")
    assert len(demo.signs) == 3 and len(demo.trackers) == 10
    # 2 km at 30 m spacing, both sides: 67 per side
    assert len(demo.beacons) == 134 + 2
    seed = scenario.load("sim/scenarios/seed-city.json")
    assert len(seed.trackers) == 123 and len(seed.signs) == 10
    assert 1300 <= len(seed.beacons) <= 1360
    total_km = sum(s["to_km"] - s["from_km"] for s in seed.sections)
    assert total_km == pytest.approx(20.0)


def test_beacons_are_spaced_along_the_road():
    demo = scenario.load("sim/scenarios/demo.json")
    right = [b for b in demo.beacons if b.side == "R"]
    kms = [b.km for b in right]
    assert kms == sorted(kms)
    assert all(abs((b - a) * 1000 - 30) < 1e-6 for a, b in zip(kms, kms[1:]))


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d["devices"]["signs"][1].__setitem__("road", "G61"), "devices.signs.1.road"),
    (lambda d: d["devices"]["signs"][0].__setitem__("km", 99.0), "devices.signs.0"),
    (lambda d: d["roads"][0].__setitem__("points", [[30.0, 120.0]]), "roads.0.points"),
    (lambda d: d["origin"].__setitem__("lat", 100), "origin.lat"),
    (lambda d: d["sections"][0].__setitem__("to_km", 2.0), "sections.0"),
    (lambda d: d.__setitem__("surprise", 1), "(top level)"),
    (lambda d: d["traffic"].__setitem__("engine", "sumo"), "traffic.engine"),
])
def test_bad_scenarios_name_the_field(mutate, field):
    raw = json.load(open("sim/scenarios/demo.json"))
    mutate(raw)
    with pytest.raises(scenario.ScenarioError) as e:
        scenario.parse(raw, "demo.json")
    assert field in str(e.value)
