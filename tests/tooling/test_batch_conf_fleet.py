"""`roadedge batch` from a manifest; the shipped Mosquitto config runs; the fleet view's pure parts."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from host_tools.broker import conf as broker_conf
from host_tools.broker.mosquitto import free_port, mosquitto_binary, wait_port
from host_tools.fleet.devices_cli import DeviceRow, ago, fold
from host_tools.fleet.logs_cli import format_line
from tooling_support import HERE, roadedge


def test_batch_flashes_each_board_and_summarises(tmp_path, firmware_snapshot):
    good = json.loads((HERE / "configs" / "sim-base.json").read_text())
    for dev in ("batch-a", "batch-b"):
        c = dict(good, id=dev, broker=dict(good["broker"], user=dev))
        (tmp_path / f"{dev}.json").write_text(json.dumps(c))
    bad = dict(good, id="batch-c", broker=dict(good["broker"], user="batch-c", url="mqtt://:1"))
    (tmp_path / "batch-c.json").write_text(json.dumps(bad))
    manifest = {"secrets": "secrets", "out": "generated", "boards": [
        {"board": "batch-a.json", "port": "dir:devices/batch-a"},
        {"board": "batch-c.json", "port": "dir:devices/batch-c"},
        {"board": "batch-b.json", "port": "dir:devices/batch-b"},
    ]}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    # the batch provisions new devices itself: no secrets exist yet
    r = roadedge("batch", str(tmp_path / "manifest.json"), "--firmware", str(firmware_snapshot))
    assert r.returncode == 1, r.stdout + r.stderr  # one board failed
    assert (tmp_path / "devices" / "batch-a" / "config.json").exists()
    assert (tmp_path / "devices" / "batch-b" / "config.json").exists()
    assert not (tmp_path / "devices" / "batch-c").exists()
    assert "broker.url" in r.stderr
    assert "2 of 3 ok" in r.stdout and re.search(r"batch-c.*FAILED at validate", r.stdout)
    devices = json.loads((tmp_path / "secrets" / "devices.json").read_text())
    assert {"batch-a", "batch-b", "batch-c"} <= set(devices)
    acl = (tmp_path / "generated" / "acl").read_text()
    assert "user batch-a\ntopic write re/batch-a/status" in acl


def test_shipped_mosquitto_config_starts(tmp_path, provisioned):
    """The template in host_tools/broker/conf, rendered by provisioning, is a config Mosquitto accepts."""
    conf = (provisioned.out / "mosquitto.conf").read_text()
    plain, tls = free_port(), free_port()
    conf = conf.replace("listener 1883 ", f"listener {plain} ").replace("listener 8883", f"listener {tls}")
    assert "allow_anonymous false" in conf and "max_queued_messages 100000" in conf
    path = tmp_path / "m.conf"
    path.write_text(conf)
    log = open(tmp_path / "m.log", "wb")
    p = subprocess.Popen([mosquitto_binary(), "-c", str(path)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port("127.0.0.1", plain, 10)
        wait_port("127.0.0.1", tls, 10)
    finally:
        p.terminate()
        p.wait(10)
        log.close()
    assert broker_conf.render(Path("p"), Path("a"), Path("c"), Path("s"), Path("k"), Path("d"),
                              as_root=False).count("# user root") == 1


def test_devices_view_folds_status_info_and_telemetry():
    rows: dict[str, DeviceRow] = {}
    fold(rows, "re/vsl-1/status", b"online", True)
    fold(rows, "re/vsl-1/info", json.dumps({"role": "sign", "board": "pico_w", "fw": "0.1.0+abc",
                                             "boot": "watchdog", "ts": 1000}).encode(), True)
    fold(rows, "re/vsl-1/tele", json.dumps({"ts": 1500}).encode(), False, now=1600)
    fold(rows, "re/moto-2/status", b"offline", True)
    fold(rows, "re/moto-2/info", b"not json", True)
    fold(rows, "re/sys/time", b"{}", False)
    r = rows["vsl-1"]
    assert (r.status, r.role, r.board, r.fw, r.boot, r.last_seen) == ("online", "sign", "pico_w", "0.1.0+abc",
                                                                      "watchdog", 1600)
    assert rows["moto-2"].status == "offline" and rows["moto-2"].last_seen is None and "sys" not in rows
    assert ago(None, 0) == "-" and ago(100, 160) == "1 min ago" and ago(0, 7200) == "2 h ago"


def test_log_lines_are_formatted():
    assert format_line("re/a/log", b'{"ts": 0, "lvl": "W", "msg": "net down"}') == ("a", "W", "--:--:-- W net down")
    assert format_line("re/a/status", b"offline") == ("a", "W", "** offline **")
    assert format_line("re/a/log", b"\xff garbage")[1] == "W"
