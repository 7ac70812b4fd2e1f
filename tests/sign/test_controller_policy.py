"""The zone controller's configuration, and the decision core's inputs and bookkeeping. What the signs
display in fog is stated in test_fog_scenarios.py and test_fog_properties.py."""
from __future__ import annotations

import pytest

from host_tools.controller.policy import Band, ZonePolicy
from host_tools.controller.zone import ZoneConfig, ZoneConfigError


def zone(**kw) -> ZoneConfig:
    d = {"zone": "g15-k10-n", "signs": [{"id": f"vsl-{i}", "km": 10.0 + 0.5 * i, "sources": [f"bcn-{i}"]}
                                         for i in range(3)]}
    d.update(kw)
    return ZoneConfig.from_dict(d)


@pytest.mark.parametrize("v", [-1, 20001, 1e6, float("nan"), "150", None, True, [150]])
def test_readings_outside_0_to_20000_m_are_rejected_and_counted(v):
    p = ZonePolicy(zone())
    assert p.visibility("bcn-0", v, 0) is False and p.rejected["vis_range"] == 1
    assert p.visibility("bcn-0", 20000, 0) and p.visibility("bcn-0", 0, 0)


def test_a_late_older_reading_never_replaces_a_newer_one():
    p = ZonePolicy(zone())
    p.visibility("bcn-0", 40, 100)
    p.visibility("bcn-0", 1000, 90)
    assert p.readings["bcn-0"] == (40, 100)


def test_a_band_confirms_after_confirm_s_and_releases_after_relax_s_with_hysteresis():
    b = Band(100)
    assert not b.feed(95, 0, 1.25, 10, 180) and not b.feed(105, 5, 1.25, 10, 180)  # 105 < 125: still in
    assert b.feed(98, 10, 1.25, 10, 180) and b.on
    assert not b.feed(120, 20, 1.25, 10, 180)  # between 100 and 125: no release clock
    assert not b.feed(130, 30, 1.25, 10, 180) and not b.judge(209, 10, 180)
    assert b.judge(210, 10, 180) and not b.on
    b2 = Band(100)
    b2.feed(95, 0, 1.25, 10, 180)
    b2.feed(130, 5, 1.25, 10, 180)  # a blip that cleared the band: forgotten
    assert not b2.judge(100, 10, 180)


def test_snapshot_shows_confirmation_and_the_approve_countdown():
    p = ZonePolicy(zone(), "approve")
    p.visibility("bcn-0", 1000, 0)
    p.visibility("bcn-1", 1000, 0)
    p.visibility("bcn-2", 1000, 0)
    p.update(0)
    p.visibility("bcn-2", 150, 5)
    p.update(5)
    s = p.snapshot(8)["signs"][2]
    assert s["confirming_s"] == 3 and s["approve_by"] is None
    p.update(15)
    s = p.snapshot(15)["signs"][2]
    assert s["pending"] == 60 and s["approve_by"] == 15 + 60


@pytest.mark.parametrize("bad", [
    {}, {"zone": "z"}, {"zone": "a/b", "signs": [{"id": "s"}]}, {"zone": "z", "signs": [{"id": "s"}, {"id": "s"}]},
    {"zone": "z", "signs": [{"id": "s"}], "step": 30}, {"zone": "z", "signs": [{"id": "s"}], "bogus": 1},
    {"zone": "z", "signs": [{"id": "s", "sources": "bcn"}]},
])
def test_bad_zone_config_is_refused_with_the_field(bad):
    with pytest.raises(ZoneConfigError):
        ZoneConfig.from_dict(bad)


def test_the_shipped_example_zone_loads():
    from host_tools import fw

    cfg = ZoneConfig.load(fw.REPO / "host_tools" / "controller" / "zones" / "example.json")
    assert [s.id for s in cfg.signs][0] == "vsl-k10-n" and cfg.vis_max_age_s == 60 and cfg.confirm_s == 10
