"""Hardware in the loop, end to end: `roadedge sim attach` drives a board over a serial port.

The board is the tracker firmware (compiled, as flashed) under the micropython unix port, its GNSS UART
wired to one end of a socat pty pair (the bench's USB-serial adapter); `roadedge sim attach` opens the
other end with pyserial, plays the unit's patrol from the demo scenario as NMEA, watches the board's
OwnTracks reports on a real Mosquitto and checks them against the ground truth."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import serial

from sim.device_process import DeviceProcess, compiled_lib, device_config, make_device_dir
from sim.hw import HardwareServerThread

REPO = Path(__file__).resolve().parents[2]
DEV = "trk-002"
PINS = {"sos_button": 2, "ignition": 6, "battery": 28}
UARTS = {"gnss": {"id": 1, "baud": 9600, "tx": 4, "rx": 5}}

pytestmark = pytest.mark.skipif(shutil.which("socat") is None, reason="socat not installed")


def _pty_pair(tmp_path: Path):
    a, b = tmp_path / "bench", tmp_path / "board"
    p = subprocess.Popen(["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while not (a.exists() and b.exists()):
        if time.monotonic() > deadline or p.poll() is not None:
            p.kill()
            raise RuntimeError("socat did not create the pty pair")
        time.sleep(0.05)
    return p, a, b


def test_attach_tracker_board_on_a_pty(mosquitto, tmp_path):
    socat, bench_end, board_end = _pty_pair(tmp_path)
    lib = compiled_lib(tmp_path / "lib")
    stop = threading.Event()
    proc = None
    try:
        with HardwareServerThread() as hws:
            hw = hws.device(DEV)
            wire = serial.Serial(str(board_end), 9600, timeout=0.2)

            def uart_wire() -> None:  # the board's GNSS RX pin is the pty
                while not stop.is_set():
                    try:
                        data = wire.read(256)
                    except serial.SerialException:  # the bench end closed: attach is done
                        return
                    if data:
                        hws.call(hw.uart_send, "gnss", data)

            threading.Thread(target=uart_wire, daemon=True).start()
            cfg = device_config({"id": DEV, "board": "sim", "role": "tracker", "broker": {"url": "", "keepalive": 10},
                                 "command_key": "11" * 32, "pins": PINS, "uarts": UARTS, "device": {"tele_s": 30},
                                 "tracker": {"min_period_s": 1, "max_period_s": 5, "store_records": 200,
                                             "seg_bytes": 2048}},
                                mosquitto.url, hws.addr)
            proc = DeviceProcess(make_device_dir(tmp_path / "devices", cfg, fresh=True), "micropython", heap="256K",
                                 lib=lib).start()
            hws.wait_connected(DEV, 30)
            r = subprocess.run([sys.executable, "-m", "host_tools.cli", "sim", "attach", "--serial", str(bench_end),
                                "--device", DEV, "--scenario", str(REPO / "sim" / "scenarios" / "demo.json"),
                                "--broker", mosquitto.url, "--duration", "12", "--speed", "2"],
                               cwd=REPO, capture_output=True, text=True, timeout=120,
                               env=dict(os.environ, PYTHONUNBUFFERED="1"))
            out = r.stdout + r.stderr
            assert r.returncode == 0, out + "\n--- board console:\n" + proc.console()
            n = int(re.search(r"attach: (\d+) reports from the board", out).group(1))
            assert n >= 3, out
            assert "agrees with the ground truth" in out
    finally:
        stop.set()
        if proc is not None:
            proc.stop()
        socat.kill()
        socat.wait(10)


def test_detector_pin_through_blinka_mock():
    """Smoke test only: the detector pulse goes through adafruit-blinka's OS-agnostic mock board (real
    GPIO needs a Linux SBC or an FT232H)."""
    pytest.importorskip("adafruit_blinka")
    code = ("from sim.hil import DetectorPin\n"
            "d = DetectorPin('Dx_OUTPUT', pulse_s=0.01)\n"
            "d.pulse(); assert d.level is True and d.pulses == 1\n"
            "import time; time.sleep(0.2); assert d.level is False\n"
            "print('pulsed')\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, BLINKA_OS_AGNOSTIC="1"))
    assert r.returncode == 0 and "pulsed" in r.stdout, r.stdout + r.stderr
