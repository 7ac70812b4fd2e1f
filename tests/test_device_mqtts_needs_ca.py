"""A device whose config asks for mqtts:// without a CA certificate refuses to start, under the real
MicroPython unix port: it names broker.ca in a clear error and never opens a connection (without a
CA it would accept any server and hand it its password). The same config over plain mqtt:// to the
same listener does connect, so the listener would have seen an attempt."""
from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from host_tools import fw
from sim.device_process import DeviceProcess, make_device_dir
from sim.hw import HardwareServerThread

BOARD = fw.REPO / "board_configs" / "sim-base.json"
DEV = json.loads(BOARD.read_text())["id"]


def _cfg(url: str, hw_addr: str, tmp_path: Path) -> dict:
    """sim-base.json with its secrets merged as flash does, then the broker URL edited by hand on
    the device (host validation would have refused mqtts:// without a CA: the firmware must too)."""
    from sim.boot import load_config

    sec = tmp_path / "secrets"
    sec.mkdir(exist_ok=True)
    (sec / "devices.json").write_text(json.dumps({DEV: {"mqtt_password": "dev-secret", "command_key": "ab" * 32}}))
    (sec / "site.json").write_text("{}")
    cfg = load_config(BOARD, "mqtt://127.0.0.1:1883", str(sec))
    cfg["sim"] = {"hw": hw_addr}
    cfg["broker"]["url"] = url
    cfg["broker"].pop("ca", None)
    return cfg


def _boot(url: str, hws, tmp_path: Path) -> DeviceProcess:
    return DeviceProcess(make_device_dir(tmp_path / "devices", _cfg(url, hws.addr, tmp_path), fresh=True),
                         "micropython").start()


@pytest.fixture
def listener():
    """A TCP listener standing in for any server on the path (it accepts, never answers)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    s.settimeout(60)
    yield s
    s.close()


def test_mqtts_without_ca_refuses_to_start_and_never_connects(listener, tmp_path):
    port = listener.getsockname()[1]
    with HardwareServerThread() as hws:
        p = _boot(f"mqtts://127.0.0.1:{port}", hws, tmp_path)
        try:
            assert p.proc is not None
            rc = p.proc.wait(60)
        finally:
            p.kill()
    out = p.console()
    assert rc != 0, out
    assert "roadedge: cannot start" in out and "broker.ca" in out and "CA certificate" in out, out
    assert "Traceback" not in out, out
    # the process is gone: any connection it made would be waiting in the listen backlog
    listener.setblocking(False)
    with pytest.raises(BlockingIOError):
        listener.accept()


def test_the_same_device_over_plain_mqtt_does_reach_the_listener(listener, tmp_path):
    port = listener.getsockname()[1]
    with HardwareServerThread() as hws:
        p = _boot(f"mqtt://127.0.0.1:{port}", hws, tmp_path)
        try:
            conn, _addr = listener.accept()  # waits (60 s timeout) for the device's connect
            conn.close()
        finally:
            p.kill()
