# roadedge.core.config: loading, dotted lookup, typed role sections, broker URLs.
import fwtest
from roadedge.core import config
from roadedge.core.config import ConfigError

BEACON = {"tail_m": 75.0, "flash_hz": 1.0, "lamps": 4, "enabled": True, "name": "b", "opts": {}}


def _write(text):
    d = fwtest.tmpdir("cfg")
    p = d + "/config.json"
    with open(p, "w") as f:
        f.write(text)
    return p


def test_load_ok():
    cfg = config.load(_write('{"id": "b-1", "broker": {"keepalive": 20}}'))
    assert cfg["id"] == "b-1"
    assert config.get(cfg, "broker.keepalive") == 20
    assert config.get(cfg, "broker.url", "x") == "x"
    assert config.get(cfg, "id.deeper", 5) == 5


def test_load_missing_file():
    e = fwtest.raises(ConfigError, config.load, fwtest.tmpdir("cfg") + "/nope.json")
    assert "not found" in str(e)
    assert e.field == ""


def test_load_bad_json_and_non_object():
    e = fwtest.raises(ConfigError, config.load, _write('{"id": '))
    assert "not valid JSON" in str(e)
    e = fwtest.raises(ConfigError, config.load, _write("[1, 2]"))
    assert "object" in str(e)


def test_section_defaults_and_merge():
    s = config.section({"beacon": {"tail_m": 100, "lamps": 6}}, "beacon", BEACON)
    assert s["tail_m"] == 100.0 and type(s["tail_m"]) is float  # int accepted for float
    assert s["lamps"] == 6 and s["flash_hz"] == 1.0 and s["enabled"] is True
    s2 = config.section({}, "beacon", BEACON)
    assert s2 == BEACON
    s2["opts"]["x"] = 1
    assert BEACON["opts"] == {}  # defaults are never shared mutable state


def test_section_type_errors_name_the_field():
    e = fwtest.raises(ConfigError, config.section, {"beacon": {"tail_m": "far"}}, "beacon", BEACON)
    assert e.field == "beacon.tail_m"
    assert "beacon.tail_m" in str(e) and "float" in str(e)
    e = fwtest.raises(ConfigError, config.section, {"beacon": {"lamps": True}}, "beacon", BEACON)
    assert e.field == "beacon.lamps"  # bool is not an int
    e = fwtest.raises(ConfigError, config.section, {"beacon": {"lamps": 2.5}}, "beacon", BEACON)
    assert e.field == "beacon.lamps"
    e = fwtest.raises(ConfigError, config.section, {"beacon": {"enabled": 1}}, "beacon", BEACON)
    assert e.field == "beacon.enabled"
    e = fwtest.raises(ConfigError, config.section, {"beacon": [1]}, "beacon", BEACON)
    assert e.field == "beacon"


def test_section_unknown_key_refused():
    e = fwtest.raises(ConfigError, config.section, {"beacon": {"tail": 3}}, "beacon", BEACON)
    assert e.field == "beacon.tail"
    assert "unknown" in str(e) and "tail_m" in str(e)


def test_section_nested_defaults():
    d = {"mode": {"fog_m": 200, "clear_m": 300}, "x": 1}
    s = config.section({"sign": {"mode": {"fog_m": 150}}}, "sign", d)
    assert s["mode"] == {"fog_m": 150, "clear_m": 300}
    e = fwtest.raises(ConfigError, config.section, {"sign": {"mode": {"fog": 1}}}, "sign", d)
    assert e.field == "sign.mode.fog"
    for bad in (0, "", [], False):
        e = fwtest.raises(ConfigError, config.section, {"sign": {"mode": bad}}, "sign", d)
        assert e.field == "sign.mode"


def test_in_range_and_require():
    s = config.section({"beacon": {"lamps": 99}}, "beacon", BEACON)
    e = fwtest.raises(ConfigError, config.in_range, s, "beacon", "lamps", 1, 16)
    assert e.field == "beacon.lamps" and "range" in str(e)
    assert config.in_range(s, "beacon", "tail_m", 0, 500) == 75.0


def test_parse_broker_url():
    assert config.parse_broker_url("mqtt://10.0.0.5") == ("mqtt", "10.0.0.5", 1883, False)
    assert config.parse_broker_url("mqtts://broker.example.org") == ("mqtts", "broker.example.org", 8883, True)
    assert config.parse_broker_url("mqtt://127.0.0.1:18830/") == ("mqtt", "127.0.0.1", 18830, False)
    assert config.parse_broker_url("MQTTS://h:9000") == ("mqtts", "h", 9000, True)
    assert config.parse_broker_url("mqtt://[::1]:1884") == ("mqtt", "::1", 1884, False)
    for bad in ("http://h", "h:1883", "mqtt://", "mqtt://h:0", "mqtt://h:x", "mqtt://u:p@h", "mqtt://h/t", None, 5):
        e = fwtest.raises(ConfigError, config.parse_broker_url, bad)
        assert e.field == "broker.url"


def test_check_device():
    good = {"id": "vsl-k012-n", "board": "sim", "role": "sign",
            "broker": {"url": "mqtt://127.0.0.1:1883", "keepalive": 30}, "command_key": "00" * 32}
    assert config.check_device(good) == ("vsl-k012-n", "sign", "sim")
    for field, value in (("id", "a/b"), ("role", "lamp"), ("board", "uno"), ("command_key", "!secret command_key"),
                         ("command_key", "zz" * 16)):
        bad = dict(good)
        bad[field] = value
        e = fwtest.raises(ConfigError, config.check_device, bad)
        assert e.field == field, (field, e.field)
    bad = dict(good)
    bad["broker"] = {"url": "mqtt://h", "keepalive": 0}
    assert fwtest.raises(ConfigError, config.check_device, bad).field == "broker.keepalive"


def test_mqtts_without_ca_refused_on_a_board():
    from roadedge.core import config_check as cc

    cfg = {"id": "vsl-1", "role": "sign", "board": "pico_w", "broker": {"url": "mqtts://b.example"}}
    try:
        cc.check_device(cfg)
        raise AssertionError("mqtts:// without a CA accepted")
    except cc.ConfigError as e:
        assert "broker.ca" in str(e) and "CA" in str(e)
    cfg["broker"]["ca"] = "ca.der"
    assert cc.check_device(cfg)[2] == "pico_w"
    # fail closed on every board, the sim board too; a CA that is not a file name is no CA
    for board, ca in (("sim", None), ("esp32", ""), ("pico_w", 1)):
        cfg = {"id": "vsl-1", "role": "sign", "board": board, "broker": {"url": "mqtts://b.example", "ca": ca}}
        assert fwtest.raises(cc.ConfigError, cc.check_device, cfg).field == "broker.ca"
