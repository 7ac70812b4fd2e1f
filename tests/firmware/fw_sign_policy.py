# The sign's pure state machine under synthetic time (runs under MicroPython and CPython).
from roadedge.sign.policy import SignPolicy, art81_level, brightness_level, adc_to_celsius
from fwtest import raises

S = 1000  # ms per second of synthetic time


def booted(cfg=None, cause="soft", down_s=None, t=0):
    p = SignPolicy(cfg)
    p.boot(t, cause, down_s)
    return p


def cmd(limit, **kw):
    a = {"limit": limit}
    a.update(kw)
    return a


def test_allowed_set_and_bad_args_leave_display_unchanged():
    p = booted()
    assert p.set_limit(0, cmd(80)) == ("ok", None)
    for bad in (cmd(85), cmd(10), cmd(130), cmd("80"), cmd(True), cmd(None), {}, None, [1], "x",
                cmd(60, duration_s=-1), cmd(60, duration_s=10 ** 9), cmd(60, priority=0),
                cmd(60, priority=256), cmd(60, legend="HELLO"), cmd(60, legend=7)):
        code, detail = p.set_limit(1, bad)
        assert code == "bad_args", (bad, code)
        assert detail
        assert p.shown() == (80, "") and p.source == "central"


def test_central_with_duration_then_end_duration_message():
    p = booted({"end_duration_msg": {"limit": 60, "legend": "FOG"}})
    assert p.set_limit(10 * S, cmd(80, duration_s=30, legend="FOG"))[0] == "ok"
    assert p.shown() == (80, "FOG") and p.source == "central"
    p.tick(39 * S)
    assert p.shown() == (80, "FOG")
    assert p.state(39 * S)["remaining_s"] == 1
    p.tick(40 * S)
    assert p.shown() == (60, "FOG") and p.source == "endDuration"


def test_priority_lower_refused_while_active():
    p = booted()
    assert p.set_limit(0, cmd(60, priority=200, duration_s=60))[0] == "ok"
    assert p.set_limit(S, cmd(100, priority=100)) == ("refused", "priority")
    assert p.shown() == (60, "")
    assert p.set_limit(2 * S, cmd(40, priority=200))[0] == "ok"
    assert p.shown() == (40, "")


def test_local_control_refuses_central():
    p = booted()
    p.set_limit(0, cmd(80))
    p.set_local(S, True)
    assert p.source == "local" and p.shown() == (None, "")
    assert p.set_limit(2 * S, cmd(60)) == ("refused", "local_control")
    assert p.clear(2 * S) == ("refused", "local_control")
    p.tick(1000 * S)  # no comm-loss while a technician has it
    assert p.source == "local"
    p.set_local(1001 * S, False)
    assert p.source in ("endDuration", "commLoss")


def test_comm_loss_after_ten_heartbeats_but_at_least_two_minutes():
    p = booted({"heartbeat_s": 5, "comm_loss_msg": {"limit": 60}})
    assert p.comm_loss_ms == 120 * S
    p.set_limit(0, cmd(100))
    p.tick(119 * S)
    assert p.shown() == (100, "")
    p.heartbeat(119 * S)
    p.tick(238 * S)
    assert p.source == "central"
    p.tick(239 * S)
    assert p.source == "commLoss" and p.shown() == (60, "")
    assert p.state(239 * S)["comm"] == "lost"
    p.heartbeat(240 * S)  # contact again: still no stale limit until commanded
    assert p.source == "commLoss" and p.state(240 * S)["comm"] == "ok"
    p2 = booted({"heartbeat_s": 30})
    assert p2.comm_loss_ms == 300 * S


def test_comm_loss_default_is_blank():
    p = booted()
    p.set_limit(0, cmd(80))
    p.tick(150 * S)
    assert p.shown() == (None, "") and p.source == "commLoss"


def test_power_recovery_short_and_long_and_reset():
    cfg = {"power_long_s": 300, "power_short_msg": {"limit": 80}, "power_long_msg": "blank",
           "reset_msg": {"limit": 60, "legend": "FOG"}}
    p = booted(cfg, "power_on", 120)
    assert p.shown() == (80, "") and p.source == "powerRecovery" and p.power_loss == "short"
    p = booted(cfg, "power_on", 301)
    assert p.shown() == (None, "") and p.source == "powerRecovery" and p.power_loss == "long"
    p = booted(cfg, "power_on", None)  # unknown outage length: the long-loss message meanwhile
    assert p.power_loss == "unknown" and p.shown() == (None, "") and p.source == "powerRecovery"
    p.power_down_known(S, 10)  # the clock got set: it was short
    assert p.power_loss == "short" and p.shown() == (80, "") and p.source == "powerRecovery"
    p = booted(cfg, "power_on", None)
    p.set_limit(S, cmd(100))
    p.power_down_known(2 * S, 10)  # too late to matter: a central command replaced it
    assert p.shown() == (100, "") and p.source == "central"
    for cause in ("watchdog", "soft", "unknown"):
        p = booted(cfg, cause, 5)
        assert p.shown() == (60, "FOG") and p.source == "reset"


def test_autonomy_applies_art81_when_controller_unreachable():
    p = booted()
    p.set_limit(0, cmd(100))
    p.set_visibility(10 * S, 150)
    p.tick(10 * S)
    assert p.source == "central"  # controller reachable: it decides
    for t in range(20, 160, 10):  # default comm loss: 10 x 15 s = 150 s
        p.set_visibility(t * S, 150)
        p.tick(t * S)
    assert p.source == "autonomous" and p.shown() == (60, "FOG")
    p.set_visibility(161 * S, 80)
    p.tick(161 * S)
    assert p.shown() == (40, "FOG")
    p.set_visibility(162 * S, 40)
    p.tick(162 * S)
    assert p.shown() == (20, "FOG")
    p.set_visibility(163 * S, 55)  # hysteresis: 55 < 50 * 1.25
    p.tick(163 * S)
    assert p.shown() == (20, "FOG")
    p.set_visibility(164 * S, 300)
    p.tick(164 * S)
    assert p.source == "commLoss" and p.shown() == (None, "")
    p.set_visibility(165 * S, 90)
    p.tick(165 * S)
    assert p.source == "autonomous" and p.shown() == (40, "FOG")
    # the meter goes quiet: no decision from stale data
    p.tick(500 * S)
    assert p.source == "commLoss" and p.shown() == (None, "")
    # a central command takes over again
    p.set_visibility(501 * S, 30)
    assert p.set_limit(501 * S, cmd(40))[0] == "ok"
    p.tick(502 * S)
    assert p.source == "central" and p.shown() == (40, "")


def test_autonomy_off_falls_back_to_comm_loss_message():
    p = booted({"autonomy": False})
    p.set_visibility(140 * S, 30)
    p.tick(150 * S)
    assert p.source == "commLoss" and p.shown() == (None, "")


def test_over_temperature_darkens_and_resumes():
    p = booted()
    p.set_limit(0, cmd(80))
    p.set_temperature(S, 59.9)
    assert p.shown() == (80, "")
    p.set_temperature(S, 60)
    assert p.shown() == (None, "") and p.state(S)["faults"] == ["over_temp"]
    p.set_temperature(S, 57)
    assert p.shown() == (None, "")
    p.set_temperature(S, 55)
    assert p.shown() == (80, "")


def test_clear_is_central_blank():
    p = booted()
    p.set_limit(0, cmd(80))
    assert p.clear(S) == ("ok", None)
    assert p.shown() == (None, "") and p.source == "central"


def test_bad_config_names_the_field():
    e = raises(ValueError, SignPolicy, {"comm_loss_msg": 85})
    assert "comm_loss_msg" in str(e)
    e = raises(ValueError, SignPolicy, {"heartbeat_s": "x"})
    assert "heartbeat_s" in str(e)


def test_art81_levels_and_hysteresis():
    assert [art81_level(v, 0, 25) for v in (1000, 199, 99, 49)] == [0, 1, 2, 3]
    assert art81_level(220, 1, 25) == 1
    assert art81_level(250, 1, 25) == 0
    assert art81_level(80, 3, 25) == 2
    assert art81_level(300, 3, 25) == 0


def test_selftest_daily():
    p = booted()
    assert p.selftest_due(0)
    p.selftest_done(0)
    assert not p.selftest_due(86399 * S)
    assert p.selftest_due(86400 * S)


def test_brightness_and_temperature_conversion():
    assert brightness_level(0) == 1
    assert brightness_level(65535) == 15
    assert brightness_level(32768) == 8
    assert brightness_level("x") == 15
    c = adc_to_celsius(int(60 * 10 * 65535 / 3300))
    assert 59.9 < c < 60.1


def test_fuzz_never_raises():
    import random
    p = booted()
    vals = [None, 0, -1, 1, 20, 60, 65, 120, 1 << 40, 1.5, "60", "", "FOG", [], {}, True, False,
            {"limit": 60}, "\u96fe"]
    keys = ["limit", "duration_s", "priority", "legend", "x"]
    for i in range(3000):
        args = {}
        for k in keys:
            if random.getrandbits(1):
                args[k] = random.choice(vals)
        if random.getrandbits(3) == 0:
            args = random.choice(vals)
        code, _ = p.set_limit(i * 10, args)
        assert code in ("ok", "bad_args", "refused")
        if code != "ok":
            continue
        lim, leg = p.shown()
        assert p.allowed(lim) and leg in p.legends


def test_a_supervisors_hold_caps_every_fallback():
    # held at 20 by a veto, then cut off: its own meter reads 150 m (Art. 81: 60) and later clear air
    p = booted()
    assert p.set_limit(0, cmd(20, legend="FOG", hold=True)) == ("ok", None)
    assert p.held == 20
    for t in range(10, 160, 10):
        p.set_visibility(t * S, 150)
        p.tick(t * S)
    assert p.source == "autonomous" and p.shown() == (20, "FOG")
    p.set_visibility(170 * S, 1000)
    p.tick(170 * S)
    assert p.source == "commLoss" and p.shown() == (20, "FOG")  # not blank: the person's decision stands
    # a configured comm-loss limit above the hold is capped too
    q = booted({"comm_loss_msg": 60, "autonomy": False})
    q.set_limit(0, cmd(40, hold=True))
    q.tick(200 * S)
    assert q.shown() == (40, "")
    # a later command without the hold flag releases it
    q.set_limit(201 * S, cmd(80))
    assert q.held is None


def test_visibility_ages_survive_the_tick_wrap():
    from roadedge.core.compat import ticks_add

    p = booted()
    p.set_limit(0, cmd(100))
    p.set_visibility(1 * S, 40)
    # without contact for 6.2 days the age reads negative after the wrap: the reading must stay old
    half = (1 << 29)
    for k in range(1, 40):
        p.tick(ticks_add(1 * S, k * (half // 20)))
    assert p.state(ticks_add(1 * S, half + 1000))["vis_m"] is None and p.shown() == (None, "")
    assert p.worst_vis(ticks_add(1 * S, 2 * half - 5 * S)) is None


def test_readings_outside_0_to_20000_m_are_rejected_and_counted():
    p = booted()
    for bad in (-1, 20001, 1e9, "100", None, True):
        assert p.set_visibility(0, bad) is False
    assert p.vis_rejected == 6 and p.vis is None
    assert p.set_visibility(0, 20000) and p.set_visibility(0, 0)


def test_a_blind_sign_takes_the_worst_neighbour_reading():
    p = booted()
    p.set_limit(0, cmd(100))
    for t in range(10, 160, 10):
        p.set_neighbour_visibility(t * S, "bcn-a", 150)
        p.set_neighbour_visibility(t * S, "bcn-b", 80)
        p.tick(t * S)
    assert p.source == "autonomous" and p.shown() == (40, "FOG")
    p.set_visibility(160 * S, 180)  # its own meter back: it wins
    p.tick(160 * S)
    assert p.shown() == (60, "FOG")
    for i in range(20):  # bounded
        p.set_neighbour_visibility(161 * S, "n%d" % i, 500)
    assert len(p.nb_vis) <= 8


def test_a_hold_survives_a_power_loss():
    p = booted()
    p.set_limit(0, cmd(20, legend="FOG", hold=True))
    q = SignPolicy()
    q.restore_hold([p.held, p.held_legend])
    q.boot(0, "power_on", 10)
    assert q.source == "powerRecovery" and q.shown() == (20, "FOG")  # not blank: the hold stands
    r = SignPolicy()
    r.restore_hold([45, "FOG"])  # not in the allowed set: ignored
    r.restore_hold("junk")
    r.boot(0, "soft", None)
    assert r.held is None and r.shown() == (None, "")
