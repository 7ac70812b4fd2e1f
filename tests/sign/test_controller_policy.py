"""The zone controller's decision core against the scripted fog trace, with the signs' own
policies in the loop so the table is what the five signs actually display (synthetic time)."""
from __future__ import annotations

import pytest

from host_tools.controller.policy import ZonePolicy
from host_tools.controller.zone import ZoneConfig, ZoneConfigError
from roadedge.sign.policy import SignPolicy

INTERVAL = 60


def zone(**kw) -> ZoneConfig:
    # five signs, upstream first; the fog bank lies over the last two (fed by bcn-fog),
    # the first three are fed by a beacon in clear air
    d = {"zone": "g15-k10-n", "signs": [
        {"id": f"vsl-{i}", "km": 10.0 + 0.5 * i, "sources": ["bcn-clear" if i < 3 else "bcn-fog"]} for i in range(5)]}
    d.update(kw)
    return ZoneConfig.from_dict(d)


class Section:
    """Controller policy + five sign policies; commands go straight into the signs."""

    def __init__(self, mode="automatic", **kw):
        self.ctl = ZonePolicy(zone(**kw), mode)
        self.signs = {s.id: SignPolicy() for s in self.ctl.signs}
        for sp in self.signs.values():
            sp.boot(0, "power_on", None)
        self.t = 0

    def deliver(self, decisions):
        for d in decisions:
            if d.command:
                code, _ = self.signs[d.sign].set_limit(self.t * 1000, {"limit": d.limit, "legend": d.legend})
                assert code == "ok"
        for sid, sp in self.signs.items():
            sp.heartbeat(self.t * 1000)
            sp.tick(self.t * 1000)
            self.ctl.sign_state(sid, sp.state(self.t * 1000))

    def step(self, fog_vis):
        self.t += INTERVAL
        self.ctl.visibility("bcn-clear", 1000, self.t)
        self.ctl.visibility("bcn-fog", fog_vis, self.t)
        ds = self.ctl.update(self.t)
        self.deliver(ds)
        return ds

    def shown(self):
        return tuple(sp.shown()[0] for sp in self.signs.values())


# interval, visibility in the fog bank, displayed limit on vsl-0 .. vsl-4 (vsl-0 upstream)
EXPECTED = [
    (1, 1000, (100, 100, 100, 100, 100)),
    (2, 1000, (100, 100, 100, 100, 100)),
    (3, 150, (100, 100, 100, 100, 100)),   # < 200 m seen once: persistence (3 intervals)
    (4, 150, (100, 100, 100, 100, 100)),   # seen twice
    (5, 150, (100, 100, 80, 80, 80)),      # adopted: one step; vsl-2 tapers in upstream
    (6, 150, (100, 100, 80, 60, 60)),      # fog signs reach 60; neighbours one step apart
    (7, 80, (100, 100, 80, 60, 60)),
    (8, 80, (100, 100, 80, 60, 60)),
    (9, 80, (100, 80, 60, 40, 40)),        # < 100 m adopted: upstream signs step down with them
    (10, 80, (100, 80, 60, 40, 40)),
    (11, 40, (100, 80, 60, 40, 40)),       # < 50 m: closure recommended at once, limit waits
    (12, 40, (100, 80, 60, 40, 40)),
    (13, 40, (80, 60, 40, 20, 20)),
    (14, 40, (80, 60, 40, 20, 20)),
    (15, 40, (80, 60, 40, 20, 20)),
    (16, 40, (80, 60, 40, 20, 20)),
    (17, 300, (80, 60, 40, 20, 20)),       # clears (300 >= 200 m x 1.25): persistence first
    (18, 300, (80, 60, 40, 20, 20)),
    (19, 300, (100, 80, 60, 40, 40)),      # then back up one step per interval
    (20, 300, (100, 100, 80, 60, 60)),
    (21, 300, (100, 100, 100, 80, 80)),
    (22, 300, (100, 100, 100, 100, 100)),
    (23, 300, (100, 100, 100, 100, 100)),
]


def test_scripted_trace_gives_the_expected_table():
    sec = Section()
    got = []
    closures = {}
    prev = sec.shown()
    for k, vis, _ in EXPECTED:
        ds = sec.step(vis)
        for d in ds:
            if d.kind in ("closure", "open"):
                closures.setdefault(k, set()).add((d.kind, d.sign))
        shown = sec.shown()
        got.append((k, vis, shown))
        # the properties the table is meant to show, checked on every row
        assert all(abs(a - b) <= 20 for a, b in zip(shown, shown[1:])), shown
        if k > 1:  # the first command replaces the blank shown after power-up
            assert all(abs(a - b) <= 20 for a, b in zip(shown, prev)), (prev, shown)
        assert all(sp.source == "central" for sp in sec.signs.values())
        prev = shown
    assert got == EXPECTED
    assert closures == {11: {("closure", "vsl-3"), ("closure", "vsl-4")}, 17: {("open", "vsl-3"), ("open", "vsl-4")}}
    legends = [sp.shown()[1] for sp in sec.signs.values()]
    assert legends == [""] * 5


def test_fog_limits_carry_the_legend():
    sec = Section()
    for vis in [150] * 4:
        sec.step(vis)
    assert [sp.shown() for sp in sec.signs.values()] == [
        (100, ""), (100, ""), (80, "FOG"), (60, "FOG"), (60, "FOG")]


def test_hysteresis_holds_between_start_and_stop_thresholds():
    sec = Section(persist=1)
    sec.step(150)
    sec.step(150)
    assert sec.shown()[3:] == (60, 60)
    for _ in range(5):
        sec.step(220)  # above 200 m but below 250 m: stays at 60
    assert sec.shown()[3:] == (60, 60)
    sec.step(260)
    assert sec.shown()[3:] == (80, 80)


def test_a_blip_shorter_than_the_persistence_is_ignored():
    sec = Section()
    for vis in (1000, 150, 150, 1000, 150, 150, 1000):
        sec.step(vis)
        assert sec.shown() == (100,) * 5


def test_sudden_thick_fog_steps_down_one_step_per_interval_with_a_taper():
    sec = Section(persist=1)
    rows = []
    for _ in range(6):
        sec.step(30)
        rows.append(sec.shown())
    assert rows == [
        (80, 80, 80, 80, 80),  # the taper pulls every upstream sign down from the start
        (80, 60, 60, 60, 60),
        (80, 60, 40, 40, 40),
        (80, 60, 40, 20, 20),
        (80, 60, 40, 20, 20),
        (80, 60, 40, 20, 20),
    ]


def test_no_fresh_data_keeps_the_level():
    sec = Section(persist=1)
    sec.step(150)
    sec.step(150)
    sec.t += 10 * INTERVAL  # the fog beacon goes quiet
    sec.ctl.visibility("bcn-clear", 1000, sec.t)
    ds = sec.ctl.update(sec.t)
    assert {(d.kind, d.sign) for d in ds} == {("no_data", "vsl-3"), ("no_data", "vsl-4")}
    assert sec.ctl.by_id["vsl-3"].level == 1


def test_approve_mode_shows_nothing_new_until_approved():
    sec = Section(mode="automatic", persist=1)
    sec.step(1000)
    sec.deliver(sec.ctl.operator({"action": "mode", "mode": "approve", "user": "wang", "role": "supervisor"}))
    ds = sec.step(150)
    assert sec.shown() == (100,) * 5
    assert {d.sign: d.limit for d in ds if d.kind == "pending"} == {"vsl-2": 80, "vsl-3": 80, "vsl-4": 80}
    for _ in range(3):
        sec.step(150)
        assert sec.shown() == (100,) * 5
    refused = sec.ctl.operator({"action": "approve", "sign": "vsl-3", "user": "li", "role": "operator"})
    assert [d.kind for d in refused] == ["refused"] and "supervisor" in refused[0].why
    assert sec.shown() == (100,) * 5
    ds = sec.ctl.operator({"action": "approve", "sign": "vsl-3", "user": "wang", "role": "supervisor"})
    sec.deliver(ds)
    assert sec.shown() == (100, 100, 100, 80, 100)
    sec.deliver(sec.ctl.operator({"action": "approve", "user": "wang", "role": "supervisor"}))
    assert sec.shown() == (100, 100, 80, 80, 80)
    assert all(s.pending is None for s in sec.ctl.signs)


def test_veto_holds_the_lower_limit():
    sec = Section(mode="automatic", persist=1)
    for _ in range(3):
        sec.step(150)
    assert sec.shown() == (100, 100, 80, 60, 60)
    sec.deliver(sec.ctl.operator({"action": "veto", "sign": "vsl-3", "user": "wang", "role": "supervisor",
                                  "reason": "crash site ahead"}))
    for _ in range(6):
        sec.step(1000)  # fog lifts: the others rise, vsl-3 stays held and vsl-2/4 taper to it
    assert sec.shown() == (100, 100, 80, 60, 80)
    for _ in range(2):
        sec.step(1000)
    assert sec.ctl.operator({"action": "approve", "user": "wang", "role": "supervisor"})[0].kind == "refused"
    assert sec.shown() == (100, 100, 80, 60, 80)  # "approve all" does not lift a hold
    sec.deliver(sec.ctl.operator({"action": "approve", "sign": "vsl-3", "user": "wang", "role": "supervisor"}))
    for _ in range(3):
        sec.step(1000)
    assert sec.shown() == (100,) * 5


def test_approving_one_sign_never_breaks_the_one_step_rule():
    sec = Section(mode="automatic", persist=1)
    sec.step(1000)
    for _ in range(4):
        sec.step(80)
    assert sec.shown() == (100, 80, 60, 40, 40)
    sec.ctl.mode = "approve"
    sec.step(1000)
    sec.step(1000)
    assert [s.pending for s in sec.ctl.signs] == [None, 100, 80, 60, 60]
    r = sec.ctl.operator({"action": "approve", "sign": "vsl-1", "user": "wang", "role": "supervisor"})
    assert [d.kind for d in r] == ["refused"] and "neighbour" in r[0].why  # 100 next to 60
    assert sec.shown() == (100, 80, 60, 40, 40)
    sec.deliver(sec.ctl.operator({"action": "approve", "user": "wang", "role": "supervisor"}))
    assert sec.shown() == (100, 100, 80, 60, 60)


def test_veto_of_a_pending_reduction_applies_the_lower_one():
    sec = Section(mode="automatic", persist=1)
    sec.step(1000)
    sec.ctl.mode = "approve"
    sec.step(150)
    ds = sec.ctl.operator({"action": "veto", "sign": "vsl-4", "user": "wang", "role": "supervisor"})
    sec.deliver(ds)
    assert sec.shown()[4] == 80 and sec.ctl.by_id["vsl-4"].hold == 80


def test_manual_mode_and_roles():
    sec = Section(mode="automatic")
    r = sec.ctl.operator({"action": "manual", "sign": "vsl-1", "limit": 60, "user": "wang", "role": "supervisor"})
    assert r[0].kind == "refused"  # not in manual mode
    r = sec.ctl.operator({"action": "mode", "mode": "manual", "user": "zhao", "role": "viewer"})
    assert r[0].kind == "refused" and sec.ctl.mode == "automatic"
    r = sec.ctl.operator({"action": "mode", "mode": "manual", "user": "wang", "role": "supervisor"})
    assert r[0].kind == "mode" and sec.ctl.mode == "manual"
    r = sec.ctl.operator({"action": "manual", "sign": "vsl-1", "limit": 65, "user": "wang", "role": "supervisor"})
    assert r[0].kind == "refused"
    sec.deliver(sec.ctl.operator({"action": "manual", "sign": "vsl-1", "limit": 60, "user": "wang",
                                  "role": "supervisor"}))
    assert sec.shown()[1] == 60
    for _ in range(5):
        assert not [d for d in sec.step(40) if d.command]  # manual: recommendations only
    assert sec.ctl.by_id["vsl-4"].recommended == 80
    for bad in (None, [], {"action": "approve"}, {"action": "fly", "user": "x"}, {"action": "veto", "user": "w",
                "role": "supervisor", "sign": "nope"}):
        assert sec.ctl.operator(bad)[0].kind == "refused"


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
    assert [s.id for s in cfg.signs][0] == "vsl-k10-n" and cfg.vis_max_age_s == 180
