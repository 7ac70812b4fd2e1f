"""Broken board configs are refused with a message naming the file and the field,
and nothing is written; every shipped config is valid."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from host_tools import fw
from host_tools.config import ConfigError, Secrets, check, load
from host_tools.flash.flasher import FlashOptions, flash

from tooling_support import roadedge

CONFIGS = fw.REPO / "board_configs"
SHIPPED = sorted(p for p in CONFIGS.glob("*.json") if p.name != "schema.json")


def cfg(name: str) -> dict:
    return json.loads((CONFIGS / name).read_text())


def _set(d: dict, path: str, value) -> None:
    keys = path.split(".")
    for k in keys[:-1]:
        d = d[k]
    if value is _DEL:
        del d[keys[-1]]
    else:
        d[keys[-1]] = value


_DEL = object()

# (id, base file, [(dotted path, new value or _DEL)], field the error must name, words the message must hold)
BROKEN = [
    ("missing-pin", "pico_w-beacon.json", [("pins.lamp_yellow", _DEL)], "pins.lamp_yellow", "missing"),
    ("wrong-type", "pico_w-beacon.json", [("pins.detector", "16")], "pins.detector", "integer"),
    ("unknown-role", "pico_w-sign.json", [("role", "lighthouse")], "role", "lighthouse"),
    ("pin-used-twice", "pico_w-beacon.json", [("pins.lamp_red", 14)], "pins.lamp_red", "already used"),
    ("uart-pin-clash", "pico_w-tracker.json", [("pins.led", 4)], "uarts.gnss.tx", "already used"),
    ("bad-broker-scheme", "pico_w-sign.json", [("broker.url", "http://broker:8883")], "broker.url", "form"),
    ("broker-no-host", "sim-beacon.json", [("broker.url", "mqtt://:1883")], "broker.url", "no host"),
    ("broker-bad-port", "sim-beacon.json", [("broker.url", "mqtt://host:99999")], "broker.url", "not a valid URL"),
    ("missing-secret", "sim-tracker.json", [("command_key", "!secret no_such_key")], "command_key", "no_such_key"),
    ("radio-pin", "pico_w-sign.json", [("pins.legend", 24)], "pins.legend", "CYW43"),
    ("input-only-output", "esp32-beacon.json", [("pins.lamp_yellow", 39)], "pins.lamp_yellow", "input-only"),
    ("flash-pin", "esp32-tracker.json", [("pins.led", 7)], "pins.led", "flash"),
    ("adc-without-adc", "pico_w-beacon.json", [("pins.battery", 10)], "pins.battery", "ADC"),
    ("adc2-with-wifi", "esp32-tracker.json", [("pins.battery", 4)], "pins.battery", "ADC"),
    ("uart-unroutable", "pico_w-tracker.json", [("uarts.gnss.tx", 6)], "uarts.gnss.tx", "cannot be UART1 TX"),
    ("esp32-uart0", "esp32-sign.json", [("uarts.vis_meter.id", 0)], "uarts.vis_meter.id", "REPL"),
    ("spi-unroutable", "pico_w-sign.json", [("spi.display.sck", 5)], "spi.display.sck", "SPI0 SCK"),
    ("unknown-pin-function", "pico_w-beacon.json", [("pins.lamp_yelow", 20)], "pins.lamp_yelow", "not a pin function"),
    ("unknown-parameter", "pico_w-beacon.json", [("beacon.tail_len", 90)], "beacon.tail_len", "unknown parameter"),
    ("parameter-type", "pico_w-beacon.json", [("beacon.tail_m", "75")], "beacon.tail_m", "got str"),
    ("user-not-id", "pico_w-sign.json", [("broker.user", "someone-else")], "broker.user", "device id"),
    ("literal-secret", "pico_w-sign.json", [("broker.password", "hunter2")], "broker.password", "literal secret"),
    ("mqtts-without-ca", "pico_w-sign.json", [("broker.ca", _DEL)], "broker.ca", "CA"),
    ("watchdog-too-long", "pico_w-tracker.json", [("watchdog_ms", 9000)], "watchdog_ms", "8388"),
    ("unknown-field", "pico_w-sign.json", [("pinz", {})], "pinz", "unknown field"),
    ("missing-broker", "esp32-sign.json", [("broker", _DEL)], "broker", "missing"),
    ("other-role-section", "pico_w-sign.json", [("beacon", {"tail_m": 75})], "beacon", "'beacon'"),
    ("bad-device-id", "pico_w-sign.json", [("id", "VSL K12!")], "id", "does not match"),
    ("unknown-platform-param", "pico_w-sign.json", [("device", {"tele": 30})], "device.tele", "unknown platform parameter"),
    ("platform-param-type", "pico_w-sign.json", [("device", {"tele_s": "often"})], "device.tele_s", "must be int"),
    ("bad-baud", "pico_w-tracker.json", [("uarts.gnss.baud", 9601)], "uarts.gnss.baud", "not one of"),
    ("sim-section-on-board", "pico_w-tracker.json", [("sim", {"hw": "127.0.0.1:7000"})], "sim", "only applies"),
]


@pytest.fixture(scope="module")
def secrets(tmp_path_factory) -> Secrets:
    d = tmp_path_factory.mktemp("secrets")
    s = Secrets.load(d)
    s.site["wifi_password"] = "w"
    for p in SHIPPED:
        s.devices[json.loads(p.read_text())["id"]] = {"mqtt_password": "p" * 20, "command_key": "ab" * 32}
    s.save()
    return Secrets.load(d)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_are_valid(path: Path, secrets: Secrets):
    merged, problems = load(path, secrets)
    assert [p for p in problems if not p.warning] == []
    assert merged["broker"]["password"] == "p" * 20 and merged["command_key"] == "ab" * 32
    assert merged["network"]["password"] == "w" if merged["board"] != "sim" else True


def test_shipped_configs_cover_every_role_on_both_boards():
    have = {(c["board"], c["role"]) for c in map(lambda p: json.loads(p.read_text()), SHIPPED)}
    for board in ("pico_w", "esp32", "sim"):
        for role in ("sign", "beacon", "tracker"):
            assert (board, role) in have


@pytest.mark.parametrize("case", BROKEN, ids=[c[0] for c in BROKEN])
def test_broken_config_is_refused_naming_the_field_and_nothing_is_written(case, secrets, tmp_path):
    _id, base, edits, field, words = case
    raw = copy.deepcopy(cfg(base))
    for path, value in edits:
        _set(raw, path, value)
    f = tmp_path / f"{_id}.json"
    f.write_text(json.dumps(raw))
    target = tmp_path / "device"
    res = flash(str(f), f"dir:{target}", FlashOptions(secrets=str(secrets.root)))
    assert not res.ok and res.stage == "validate"
    errors = [p for p in res.problems if not p.warning]
    assert any(p.field == field and words in p.message for p in errors), [str(p) for p in errors]
    assert all(p.file == str(f) for p in errors)
    assert not target.exists()  # nothing written


def test_invalid_json_names_line_and_column(tmp_path):
    f = tmp_path / "broken.json"
    f.write_text('{"id": "x",\n "board": }')
    with pytest.raises(ConfigError) as e:
        load(f)
    assert "line 2" in str(e.value) and str(f) in str(e.value)


def test_command_key_must_be_hex(secrets):
    raw = cfg("sim-sign.json")
    s = copy.deepcopy(secrets)
    s.devices[raw["id"]] = {"mqtt_password": "x" * 20, "command_key": "not-hex"}
    _cfg, problems = check(raw, "sim-sign.json", s)
    assert any(p.field == "command_key" and "hex" in p.message for p in problems)


def test_cli_reports_file_field_and_exit_code(tmp_path):
    raw = cfg("pico_w-beacon.json")
    raw["pins"]["lamp_red"] = raw["pins"]["lamp_yellow"]
    f = tmp_path / "dup.json"
    f.write_text(json.dumps(raw))
    r = roadedge("validate", str(f), str(CONFIGS / "sim-sign.json"))
    assert r.returncode == 1
    assert f"{f}: error: pins.lamp_red: GPIO 14 is already used by pins.lamp_yellow" in r.stderr.replace("\n", "")
    assert "1 of 2 valid" in r.stdout
    r = roadedge("flash", "--board", str(f), "--port", f"dir:{tmp_path / 'dev'}")
    assert r.returncode == 1 and "pins.lamp_red" in r.stderr.replace("\n", "")
    assert not (tmp_path / "dev").exists()
