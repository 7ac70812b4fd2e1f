# roadedge.wire: the one definition of topics, roles, envelopes and access.
from roadedge import wire, wire_access


def test_builders_and_parser_agree():
    assert wire.topic("vsl-1", wire.STATE) == "re/vsl-1/state"
    assert wire.cmd_topic("vsl-1", "set_limit") == "re/vsl-1/cmd/set_limit"
    assert wire.location_topic("moto-07") == "owntracks/roadedge/moto-07"
    assert wire.ctl_topic("g15", "op") == "re/ctl/g15/op"
    for k in wire.DEVICE_KINDS:
        assert wire.parse(wire.topic("b-1", k)) == (k, "b-1", "")
    assert wire.parse(wire.cmd_topic("b-1", "mode")) == (wire.COMMAND, "b-1", "mode")
    assert wire.parse(wire.location_topic("t-1")) == (wire.LOCATION, "t-1", "")
    assert wire.parse(wire.ctl_topic("z", "state")) == (wire.CTL_STATE, "z", "")
    assert wire.parse(wire.ctl_topic("z", "op")) == (wire.CTL_OP, "z", "")
    assert wire.parse(wire.TIME_TOPIC) == (wire.SYS, "time", "")


def test_parser_refuses_what_is_not_in_the_tree():
    for t in ("", "re", "re/x", "re/x/nope", "re//state", "re/x/state/extra", "re/x/cmd", "re/x/cmd/",
              "re/ctl/z", "re/ctl/z/other", "re/sys/a/b", "owntracks/other/x", "owntracks/roadedge/",
              "owntracks/roadedge/a/b", "other/x/state"):
        assert wire.parse(t) is None, t


def test_reserved_and_malformed_ids_are_not_device_ids():
    assert wire.valid_id("vsl-k012-n")
    for bad in ("", "sys", "ctl", "controller", "dispatcher", "technician", "a/b", "a+", "a#", "a b", "a:b",
                "x" * 65, None, 7, "controller-F1"):
        assert not wire.valid_id(bad), bad
    # a zone id names its controller's account: the same characters, room for the prefix
    assert wire_access.valid_zone("F1") and wire_access.zone_account("F1") == "controller-F1"
    for bad in ("", "a/b", "a+", "a#", "a b", "a:b", "x" * (65 - len(wire.ZONE_ACCOUNT_PREFIX)), None):
        assert not wire_access.valid_zone(bad), bad


def test_envelopes():
    e = wire.event(7, 1795000000, "sos", {"id": 3})
    assert e == {"seq": 7, "ts": 1795000000, "type": "sos", "id": 3}
    a = wire.ack(8, 1.5, "ping", 12, "ok", {"up_s": 3})
    assert a == {"seq": 8, "ts": 1.5, "cmd": "ping", "ctr": 12, "ok": True, "code": "ok", "detail": {"up_s": 3}}
    assert not wire.ack(9, 0, "x", None, "bad_mac", None)["ok"]


def test_device_access_is_its_own_subtree():
    pub, sub = wire_access.access(wire_access.DEVICE_USER, "b-1")
    assert wire.topic("b-1", wire.TELE) in pub and wire.location_topic("b-1") in pub
    for t in pub:
        assert t.startswith("re/b-1/") or t == "owntracks/roadedge/b-1"
    assert sub == ("re/b-1/cmd/#", "re/sys/#")
    for s in wire.SERVICES:
        assert wire_access.access(s) == wire_access.ACCESS[s]


def test_zone_controller_access_is_its_own_zone():
    pub, sub = wire_access.zone_access("F1", ("vsl-1", "vsl-2"), ("bcn-1", "vsl-2"))
    assert pub == ("re/vsl-1/cmd/#", "re/vsl-2/cmd/#", "re/ctl/F1/state", wire.TIME_TOPIC)
    assert wire.ctl_topic("F1", "op") in sub and wire.ctl_topic("F1", "state") not in sub
    assert "re/vsl-2/state" in sub and "re/bcn-1/tele" in sub and "re/bcn-1/ack" not in sub
    assert len(set(sub)) == len(sub)  # a sign that is its own source: each filter once
    for t in pub + sub:
        assert "{" not in t and "+" not in t and not t.endswith("re/#"), t


def test_art81_ladder():
    assert [wire.art81_limit(v) for v in (None, 500, 200, 199, 100, 99, 50, 49, 0)] == \
        [None, None, None, 60, 60, 40, 40, 20, 20]
