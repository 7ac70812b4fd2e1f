# The device app's platform logic without a broker or a board: config checks,
# command verification and acks, built-ins, telemetry counters, health.
import json
import time

import fwtest
from roadedge.core import app, auth, config
from roadedge.core.clock import Clock
from roadedge.core.log import Log

KEY_HEX = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"


def _cfg(**kw):
    c = {"id": "base-u1", "board": "sim", "role": "base", "command_key": KEY_HEX,
         "broker": {"url": "mqtt://127.0.0.1:1883", "user": "base-u1", "keepalive": 10}, "pins": {}}
    c.update(kw)
    return c


class FakeMQTT:
    def __init__(self):
        self.sent = []
        self.stats = {"connects": 1, "dropped": 0}
        self.on_message = None
        self.on_connect = None
        self.connected = True

    def publish(self, topic, payload, qos=0, retain=False):
        self.sent.append((topic, payload, qos, retain))
        return True

    def subscribe(self, topic, qos=1):
        pass

    def is_connected(self):
        return self.connected

    def queued(self):
        return 0

    def in_flight(self):
        return 0

    def of(self, kind):
        return [json.loads(p) for t, p, q, r in self.sent if t.endswith("/" + kind)]


class FakeHAL:
    port = "fake"

    def net_ok(self):
        return True

    def reset_cause(self):
        return "power_on"


def _device():
    clock = Clock()
    clock.set(int(time.time() * 1000), "broker")
    d = fwtest.tmpdir("app")
    dev = app.Device(_cfg(), FakeHAL(), clock, Log(8, echo=False, clock=clock), d, "abc", mqtt=FakeMQTT())
    dev._install_builtins()
    return dev


def _key():
    return auth.key_from_hex(KEY_HEX)


def test_base_role_accepted_and_bad_role_named():
    assert app.check_config(_cfg()) == ("base-u1", "base", "sim")
    e = fwtest.raises(config.ConfigError, app.check_config, _cfg(role="lamp"))
    assert e.field == "role"


def test_platform_params_defaults_and_ranges():
    p = app.platform_params(_cfg())
    assert p["tele_s"] == 60 and p["watchdog_ms"] == 8000 and p["log_mqtt"] == "I"
    assert app.platform_params(_cfg(log={"level": "W", "mqtt": False}))["log_mqtt"] == ""
    e = fwtest.raises(config.ConfigError, app.platform_params, _cfg(device={"tele_s": 0}))
    assert e.field == "device.tele_s"
    e = fwtest.raises(config.ConfigError, app.platform_params, _cfg(device={"tele": 5}))
    assert e.field == "device.tele"
    e = fwtest.raises(config.ConfigError, app.platform_params, _cfg(watchdog_ms=10))
    assert e.field == "watchdog_ms"


async def test_signed_ping_acked_and_rejections_counted():
    dev = _device()
    k = _key()
    now = int(time.time())
    await dev._run_command("ping", auth.sign_command(k, "base-u1", "ping", 5, now + 60))
    await dev._run_command("ping", auth.sign_command(k, "base-u1", "ping", 5, now + 60))  # replay
    await dev._run_command("ping", auth.sign_command(b"x" * 32, "base-u1", "ping", 6, now + 60))  # forged
    await dev._run_command("ping", auth.sign_command(k, "base-u1", "ping", 7, now - 3600))  # expired
    await dev._run_command("ping", b"{not json")
    await dev._run_command("nope", auth.sign_command(k, "base-u1", "nope", 8, now + 60))
    acks = dev.mqtt.of("ack")
    assert [a["code"] for a in acks] == ["ok", "replay", "bad_mac", "expired", "bad_json", "unknown_command"]
    assert acks[0]["ok"] and acks[0]["ctr"] == 5 and acks[0]["cmd"] == "ping"
    assert not acks[1]["ok"] and acks[1]["seq"] > acks[0]["seq"]
    t = dev.telemetry()
    assert t["ctr"]["cmd_ok"] == 1 and t["ctr"]["cmd_rejected"] == 5
    assert t["ctr"]["cmd_replay"] == 1 and t["ctr"]["cmd_bad_mac"] == 1 and t["ctr"]["cmd_expired"] == 1
    assert t["ctr"]["auth_replay"] == 1 and t["ctr"]["mqtt_connects"] == 1


async def test_handler_errors_and_args_refused_not_raised():
    dev = _device()
    k = _key()
    now = int(time.time())

    def boom(args):
        raise ValueError("bad lamp")

    dev.on_command("boom", boom)
    await dev._run_command("boom", auth.sign_command(k, "base-u1", "boom", 1, now + 60))
    await dev._run_command("log_level", auth.sign_command(k, "base-u1", "log_level", 2, now + 60, {"level": "X"}))
    await dev._run_command("log_level", auth.sign_command(k, "base-u1", "log_level", 3, now + 60, {"level": "D"}))
    acks = dev.mqtt.of("ack")
    assert acks[0]["code"] == "refused" and "bad lamp" in acks[0]["detail"]
    assert acks[1]["code"] == "bad_args" and acks[2]["ok"] and dev.log.level == "D"
    assert dev.counters["cmd_errors"] == 1


async def test_selftest_merges_role_checks():
    dev = _device()
    dev.on_selftest(lambda: {"lamp": (False, "open circuit")})
    await dev._run_command("selftest", auth.sign_command(_key(), "base-u1", "selftest", 1, int(time.time()) + 60))
    a = dev.mqtt.of("ack")[0]
    assert a["ok"] and a["detail"]["pass"] is False
    assert a["detail"]["checks"]["lamp"] == [False, "open circuit"] and a["detail"]["checks"]["storage"][0]
    ev = dev.mqtt.of("event")[0]
    assert ev["type"] == "selftest" and ev["pass"] is False


def test_time_beacon_sets_clock_and_bad_ones_counted():
    dev = _device()
    dev.clock = Clock()
    dev._on_message("re/sys/time", b'{"t": 1700000000000}', False)
    assert dev.clock.now_s() is not None and dev.clock.source == "broker"
    dev._on_message("re/sys/time", b'{"t": "soon"}', False)
    dev._on_message("re/sys/time", b"garbage", False)
    assert dev.counters["bad_time"] == 2


def test_command_queue_bounded():
    dev = _device()
    for _ in range(10):
        dev._on_message("re/base-u1/cmd/ping", b"{}", False)
    assert len(dev._cmdq) == dev.params["cmd_queue"] and dev.counters["cmd_dropped"] == 10 - dev.params["cmd_queue"]


def test_log_forwarding_bounded_and_filtered():
    dev = _device()
    dev.log.sink = dev._log_sink
    dev.log.debug("not forwarded at level I")
    for i in range(20):
        dev.log.warn("w%d" % i)
    assert len(dev._logq) == dev.params["log_queue"]
    assert dev.counters["log_dropped"] == 20 - dev.params["log_queue"]


def test_health_follows_checks_and_crashes():
    dev = _device()
    assert dev.healthy()
    ok = [True]
    dev.on_health(lambda: ok[0])
    ok[0] = False
    assert not dev.healthy()
    ok[0] = True
    dev._crashed = "role"
    assert not dev.healthy()


def test_topics_and_publish():
    dev = _device()
    assert dev.topic("cmd", "ping") == "re/base-u1/cmd/ping"
    assert dev.publish("state", {"a": 1}, 1, True)
    assert dev.mqtt.sent[-1] == ("re/base-u1/state", '{"a": 1}', 1, True)
