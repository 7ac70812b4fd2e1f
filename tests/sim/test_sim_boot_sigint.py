"""`roadedge sim boot` stops cleanly on Ctrl-C at any moment of boot: before anything started,
while the devices are being started, the moment a device is online (before the status view is
up: the race a fast device used to win), and once the live table runs. Afterwards no firmware
process is left running and a device that said online says offline."""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from host_tools import fw

DEV = "sigint-base"
KEY = bytes(range(32)).hex()


def _config(tmp_path: Path, broker_url: str) -> Path:
    cfg = json.loads((fw.REPO / "board_configs" / "sim-base.json").read_text())
    cfg.update(id=DEV)
    cfg["broker"] = dict(cfg["broker"], url=broker_url, user=DEV)
    sec = tmp_path / "secrets"
    sec.mkdir()
    (sec / "devices.json").write_text(json.dumps({DEV: {"mqtt_password": "pw", "command_key": KEY}}))
    (sec / "site.json").write_text("{}")
    path = tmp_path / "sim-base.json"
    path.write_text(json.dumps(cfg))
    return path


def _firmware_processes(workdir: Path) -> list[int]:
    """pids whose working directory is a device folder under workdir."""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cwd = os.readlink(p / "cwd")
        except OSError:
            continue
        if cwd.startswith(str(workdir) + "/"):
            out.append(int(p.name))
    return out


@pytest.mark.parametrize("moment", ["at_once", "starting", "online", "running"])
def test_ctrl_c_at_any_moment_of_boot_stops_cleanly(moment, mosquitto, collector_factory, tmp_path):
    cfgf = _config(tmp_path, mosquitto.url)
    workdir = tmp_path / "wd"
    col = collector_factory(mosquitto.port, [f"re/{DEV}/status"])
    proc = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "sim", "boot", "--workdir", str(workdir),
                             "--heap", "160K", "--for", "120", "--secrets", str(tmp_path / "secrets"), str(cfgf)],
                            cwd=fw.REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, COLUMNS="200", PYTHONUNBUFFERED="1"))
    lines: queue.Queue = queue.Queue()
    seen: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def wait_line(text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, "".join(seen)
            if text in line:
                return

    try:
        if moment == "starting":
            wait_line("device folders in")  # the processes were just spawned; none is online yet
        elif moment == "online":
            col.wait_for(lambda t, p, r, q: p == b"online" and not r, 60)
        elif moment == "running":
            col.wait_for(lambda t, p, r, q: p == b"online" and not r, 60)
            wait_line("status view:", 60)  # the status view is up, the live table runs
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(10)
    out = "".join(seen)
    # before the handler exists (interpreter start-up, imports) nothing was started yet: ending by the
    # signal (-2) or KeyboardInterrupt (130) is a clean exit then
    assert proc.returncode in ((0, 130, -signal.SIGINT) if moment == "at_once" else (0,)), out
    assert _firmware_processes(workdir) == [], out
    if moment in ("online", "running"):
        assert "stopping devices" in out
        col.wait_for(lambda t, p, r, q: p == b"offline", 20)
    if proc.returncode == 0 and moment != "at_once":
        assert "stopping devices" in out, out
