# Beacon policies (modes, tail, flash, energy, lamps): under MicroPython and CPython.
from fwtest import raises
from roadedge.beacon import modes as M
from roadedge.beacon import tail as T
from roadedge.beacon import flash as F
from roadedge.beacon import energy as E
from roadedge.beacon import lamps as L
from roadedge.beacon.logic import BeaconLogic


def test_levels_default_thresholds():
    lv = [500, 200, 100, 50]
    assert [M.raw_level(lv, v) for v in (800, 500, 499, 200, 150, 99, 50, 49, 0)] == [0, 0, 1, 1, 2, 3, 3, 4, 4]
    assert M.relief_level(lv, 110, 20) == 3 and M.relief_level(lv, 120, 20) == 2


def test_persistence_and_hysteresis():
    p = M.LevelPolicy([500, 200, 100, 50], hyst_pct=20, enter_s=10, exit_s=60)
    assert p.update(0, 150) == 0  # worse candidate pending since 0
    assert p.update(5000, 90) == 0  # still worse (deeper): keeps the wait
    assert p.update(10000, 150) == 2  # 10 s held: takes this sample's candidate
    assert p.update(15000, 210) == 2  # above 200 but below 240: hysteresis holds
    assert p.update(20000, 250) == 2  # better pending since 20 s
    assert p.update(30000, 150) == 2  # back in band: wait restarts
    assert p.update(40000, 250) == 2
    assert p.update(99000, 260) == 2
    assert p.update(100000, 700) == 0  # 60 s held


def test_flicker_does_not_flap():
    p = M.LevelPolicy([500, 200, 100, 50], hyst_pct=20, enter_s=10, exit_s=60, level=1)
    changes = 0
    last = 1
    for i in range(200):
        v = 195 if i % 2 else 205  # a reading sitting on the 200 m line
        lv = p.update(i * 5000, v)
        if lv != last:
            changes += 1
            last = lv
    assert changes == 0  # never 10 s continuously below 200


def test_mode_priority_and_expiry():
    m = M.ModePolicy({})
    for t in range(0, 20001, 5000):
        m.feed(t, 80)
    assert m.mode(20000) == (M.ANTI_REAR_END, "auto")
    m.safe = True
    assert m.mode(20000) == (M.GUIDANCE, "safe") and m.effective_level() == 2
    m.set_override(M.CONTOUR, 30000)
    assert m.mode(25000) == (M.CONTOUR, "override")
    m.set_alarm(True)
    assert m.mode(26000) == (M.SECTION_ALARM, "alarm")
    m.set_alarm(False)
    assert m.mode(30000) == (M.GUIDANCE, "safe")  # override expired
    raises(ValueError, m.set_override, "disco")


def test_refused_thresholds_change_nothing():
    m = M.ModePolicy({})
    before = (list(m.level.levels), m.level.hyst_pct, m.level.enter_ms, m.level.exit_ms)
    raises(ValueError, m.set_thresholds, [100, 200], 20, 10, 60)
    raises(ValueError, m.set_thresholds, [500, 200, 100, 50], 200, 10, 60)
    raises(ValueError, m.set_thresholds, [500, 200, 100], 20, 10, 60)  # level_modes no longer fit
    assert (list(m.level.levels), m.level.hyst_pct, m.level.enter_ms, m.level.exit_ms) == before
    m.set_thresholds([1000, 300, 150, 60], 10, 5, 30)
    assert m.level.levels == [1000, 300, 150, 60] and m.level.exit_ms == 30000


def test_tail_length_and_merge():
    c = {}
    assert T.tail_length_m(c, 80) == 75 and T.tail_length_m(c, 120) == 115 and T.tail_length_m(c, 400) == 200
    assert T.red_ms(c, 80) == 3375  # 75 m at 80 km/h
    assert T.red_ms(c, None) == 3375  # default speed
    t = T.Tail(c)
    t.detect(0, 80)
    assert t.red(3374) and not t.red(3375)
    t.detect(10000, 80)
    t.detect(11800, 80)  # second vehicle 40 m behind: extends, never shortens
    assert t.until == 11800 + 3375
    t.detect(11900, 300)  # a faster one would end sooner: keep the later end
    assert t.until == 11800 + 3375


def test_flash_phase_from_clock_only():
    assert F.period_ms(60) == 1000 and F.period_ms(120) == 500
    assert F.is_on(1_700_000_000_000, 60, 35) and not F.is_on(1_700_000_000_350, 60, 35)
    assert F.ms_to_next_edge(1_700_000_000_100, 60, 35) == 250
    assert F.ms_to_next_edge(1_700_000_000_400, 60, 35) == 600
    raises(ValueError, F.check_rates, [30, 0])


def test_energy_dims_before_cutoff():
    e = E.Energy({})
    assert e.update(12.8) == ("ok", 1.0)
    st, f = e.update(11.5)
    assert st == "dim" and 0.25 < f < 1.0
    assert e.update(11.0) == ("cutoff", 0.0)
    assert e.update(11.2)[0] == "cutoff"  # needs recover_v above cutoff
    assert e.update(11.4)[0] == "dim"
    assert e.update(12.1)[0] == "dim"
    assert e.update(12.4)[0] == "ok"
    raises(ValueError, E.Energy, {"dim_v": 10.0, "cutoff_v": 11.0})


def test_lamp_duties_and_burnt_out():
    assert L.duties(M.STANDBY, True, True, 0.5) == (0.0, 0.0)
    assert L.duties(M.CONTOUR, False, True, 0.5) == (0.5, 0.0)
    assert L.duties(M.GUIDANCE, False, False, 0.5) == (0.0, 0.0)
    assert L.duties(M.ANTI_REAR_END, True, True, 0.5) == (0.0, 0.5)
    assert L.duties(M.SECTION_ALARM, True, False, 0.5) == (0.0, 0.5)
    assert L.brightness({}, 0, 4, 1.0) == 0.3 + 0.4 and L.brightness({}, 65535, 4, 1.0) == 1.0
    mon = L.LampMonitor({})
    full = int(0.9 * 120 / 500 * 65535)
    assert mon.sample(0.9, 0.0, full) is None
    assert mon.sample(0.9, 0.0, 100) is None and mon.sample(0.9, 0.0, 100) is None
    assert mon.sample(0.9, 0.0, 100) == "yellow" and mon.health()["yellow"] == "out"
    assert mon.sample(0.9, 0.9, 100) is None  # both driven: cannot tell
    assert mon.sample(0.9, 0.0, full) == "yellow" and mon.health()["yellow"] == "ok"


def test_logic_render():
    b = BeaconLogic({})
    b.ambient(0)
    for t in range(0, 20001, 5000):
        b.visibility(t, 60)
    assert b.modes.level.level == 3
    unix = (1_700_000_000_000 // 666) * 666  # phase 0 of the 90/min period: on
    mode, why, y, r, nxt = b.render(20000, unix)
    assert mode == M.ANTI_REAR_END and y > 0 and r == 0
    b.detect(20000, 80)
    mode, why, y, r, nxt = b.render(20001, unix + 1)
    assert y == 0 and r > 0 and nxt >= 1
    b.meter_usable(False)
    assert b.render(30000, unix)[0:2] == (M.GUIDANCE, "safe")


def test_config_refused_naming_the_field():
    from roadedge.beacon.app import params
    from roadedge.core.config import ConfigError

    p = params({"beacon": {"tail_m": 60, "meter": {"poll_s": 2}}})
    assert p["tail_m"] == 60.0 and p["meter"]["poll_s"] == 2.0 and p["meter"]["addr"] == 1
    for bad, field in (({"tail_m": "long"}, "beacon.tail_m"), ({"levels_m": [100, 200]}, "beacon.levels_m"),
                       ({"meter": {"poll_s": 0}}, "beacon.meter.poll_s"), ({"colour": 1}, "beacon.colour"),
                       ({"level_boost": [0, "x"]}, "beacon.level_boost"), ({"safe_mode": "party"}, "beacon.safe_mode"),
                       ({"flash_per_min": [0]}, "beacon.flash_per_min"), ({"cutoff_v": 13.0}, "beacon.cutoff_v"), ({"dark_u16": 40000}, "beacon.bright_u16")):
        e = raises(ConfigError, params, {"beacon": bad})
        assert e.field == field, (bad, e.field)
