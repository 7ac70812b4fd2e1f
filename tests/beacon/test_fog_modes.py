"""Acceptance (a): 100 beacons 30 m apart under a fog bank that rolls in and
out; each beacon's level/mode follows its own visibility with persistence and
hysteresis. The expected trace is computed here from the rules written in
docs/visibility_meter.md ("Mode policy"), not with the firmware's code; the
firmware runs for real in-process (meter decoder -> BeaconLogic) with
synthetic time."""
from __future__ import annotations

import pytest

from roadedge.beacon import meter as V
from roadedge.beacon.logic import BeaconLogic
from sim.fog_field import FogBank, FogField, flicker

SPACING = 30.0
N = 100
POLL_S = 5
DURATION_S = 3600


def rolling_bank() -> FogField:
    # Forms upstream of the section, drifts through it with the wind, thins.
    return FogField([FogBank(x0_m=-1500, t0_s=0, t1_s=3500, core_vis_m=35, width_m=900, edge_m=500,
                             drift_mps=1.6, form_s=300, thin_s=600)])


def readings(fog: FogField, x: float) -> list[tuple[int, int]]:
    """(ms, metres) the meter reports: visibility with scintillation, whole metres."""
    return [(int(t * 1000), int(round(flicker(fog.visibility(x, t), t, x, pct=15))))
            for t in range(0, DURATION_S, POLL_S)]


def expected_levels(samples, thresholds, hyst_pct, enter_s, exit_s):
    """The documented rules, written out independently:
    - worse: the reading is below a threshold the current level is not below;
    - better: the reading is at or above threshold*(1+hyst) for the current level's threshold;
    - a proposal must be made by every sample for enter_s (worse) / exit_s (better), counted
      from the first sample that proposed that direction; then the level becomes what the
      completing sample proposes."""
    level, since, direction, out = 0, None, 0, []
    for t, v in samples:
        worse_lv = len([th for th in thresholds if v < th])
        better_lv = len([th for th in thresholds if v * 100 < th * (100 + hyst_pct)])
        if worse_lv > level:
            d, prop = 1, worse_lv
        elif better_lv < level:
            d, prop = -1, better_lv
        else:
            d, prop = 0, level
        if d == 0:
            since, direction = None, 0
        else:
            if d != direction:
                since, direction = t, d
            wait = (enter_s if d > 0 else exit_s) * 1000
            if t - since >= wait:
                level, since, direction = prop, None, 0
        out.append(level)
    return out


CONFIGS = [
    ({}, [500, 200, 100, 50], 20, 10, 60, ["standby", "contour", "guidance", "anti_rear_end", "anti_rear_end"]),
    ({"levels_m": [800, 300, 120, 60], "hyst_pct": 10.0, "enter_s": 20.0, "exit_s": 30.0,
      "level_modes": ["standby", "contour", "contour", "guidance", "anti_rear_end"]},
     [800, 300, 120, 60], 10, 20, 30, ["standby", "contour", "contour", "guidance", "anti_rear_end"]),
]


@pytest.mark.parametrize("cfg,th,hyst,enter,exit_,lmodes", CONFIGS, ids=["defaults", "custom"])
def test_hundred_beacons_follow_their_own_visibility(cfg, th, hyst, enter, exit_, lmodes):
    fog = rolling_bank()
    xs = [i * SPACING for i in range(N)]
    traces = []
    for x in xs:
        logic = BeaconLogic(cfg)
        poller = V.MeterPoller(None, {"addr": 1}, {}, None, lambda h: None)
        samples = readings(fog, x)
        got_levels, got_modes = [], []
        for t, v in samples:
            # through the real decoder: the line the meter would send
            poller.on_reading = lambda mor, flags, t=t, lg=logic: lg.visibility(t, mor)
            poller.line(V.reply_line(1, v, 0))
            got_levels.append(logic.modes.level.level)
            got_modes.append(logic.render(t, 1_700_000_000_000 + t)[0])
        exp = expected_levels(samples, th, hyst, enter, exit_)
        assert got_levels == exp, f"beacon at {x} m: first difference at sample " \
            f"{next(i for i, (a, b) in enumerate(zip(got_levels, exp)) if a != b)}"
        assert got_modes == [lmodes[lv] for lv in exp]
        traces.append(exp)

    # The bank really rolled in and out over every beacon, reaching the worst level ...
    for i, tr in enumerate(traces):
        assert max(tr) == len(th), f"beacon {i} never saw the dense core"
        assert tr[0] == 0 and tr[-1] == 0
    # ... each beacon on its own schedule: downstream beacons enter the core later (the
    # bank drifts 30 m in ~19 s, about 4 samples; scintillation may shift a beacon by a few samples).
    first_fog = [tr.index(len(th)) for tr in traces]
    assert all(b >= a - 4 for a, b in zip(first_fog, first_fog[1:])), first_fog
    assert first_fog[-1] - first_fog[0] > 300
    # Persistence + hysteresis absorb the meter's scintillation: few level changes per beacon,
    # where a bare threshold comparison flaps on every flicker across a line.
    total = total_bare = 0
    for x, tr in zip(xs, traces):
        changes = sum(1 for a, b in zip(tr, tr[1:]) if a != b)
        bare = [len([t for t in th if v < t]) for _, v in readings(fog, x)]
        total += changes
        total_bare += sum(1 for a, b in zip(bare, bare[1:]) if a != b)
        assert changes <= 2 * len(th) + 2, (x, changes)
    print(f"level changes: {total} with the policy, {total_bare} on bare thresholds")
    assert total_bare > 1.5 * total
