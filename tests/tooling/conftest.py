"""Fixtures for the technician tooling tests: a provisioned secrets folder, a
Mosquitto that enforces the generated password file and ACL, a hardware server."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from host_tools.broker import conf as broker_conf
from host_tools.broker.mosquitto import Mosquitto, free_port
from host_tools.config.secrets import Secrets
from host_tools.provision.core import provision

HERE = Path(__file__).resolve().parent
DEVICES = ["tool-dev-a", "tool-dev-b"]
# 64-bit unix build: about twice a board's heap for the same objects (see tests/test_device_runtime.py)
HEAP = "160K"
# The pty REPL also holds the REPL, the raw-paste buffers and the fragments of the copy.
PTY_HEAP = "320K"


@dataclass
class Provisioned:
    secrets_dir: Path
    out: Path
    secrets: Secrets

    def password(self, user: str) -> str:
        if user in self.secrets.devices:
            return self.secrets.devices[user]["mqtt_password"]
        return self.secrets.services[user]["mqtt_password"]


@pytest.fixture
def provisioned(tmp_path: Path) -> Provisioned:
    sd = tmp_path / "secrets"
    s = Secrets.load(sd)
    s.site["wifi_password"] = "roadside-wifi"
    provision(s, DEVICES, out=tmp_path / "generated", tls_hosts=["localhost", "127.0.0.1"])
    return Provisioned(sd, tmp_path / "generated", Secrets.load(sd))


@pytest.fixture
def secure_broker(tmp_path: Path, provisioned: Provisioned):
    """Mosquitto with the generated accounts (dynsec.json), plus the TLS listener with the generated
    certificates. Mosquitto reads the accounts at start-up: restart() it after provisioning more."""
    out = provisioned.out
    tls_port = free_port()
    extra = broker_conf.auth_lines(out / "dynsec.json")
    # per_listener_settings false (the default) applies the accounts to every listener
    extra += broker_conf.tls_listener_lines(tls_port, out / "ca.pem", out / "server.pem", out / "server.key")
    b = Mosquitto(tmp_path / "mosquitto", extra_conf=extra)
    b.tls_port = tls_port  # type: ignore[attr-defined]
    with b:
        yield b


@pytest.fixture
def hw_server():
    from sim.hw import HardwareServerThread

    with HardwareServerThread() as h:
        yield h


@pytest.fixture(scope="session")
def firmware_snapshot(tmp_path_factory) -> Path:
    """A copy of the firmware tree: other work in this checkout cannot change it between two flashes."""
    import shutil

    from host_tools import fw

    dest = tmp_path_factory.mktemp("fw") / "firmware"
    shutil.copytree(fw.FIRMWARE, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


@pytest.fixture
def pty_repl(tmp_path):
    """A MicroPython unix-port REPL on a pty (socat), running in its own device folder."""
    yield from _pty_repl(tmp_path)


@pytest.fixture
def pty_repl_romfs(tmp_path):
    """The same REPL with a ROMFS partition (tests/tooling/mp/rom_partition.py), as a 1.25+ board has."""
    # the partition (128 KiB) is a bytearray on this heap: on a board it is flash
    yield from _pty_repl(tmp_path, ["-i", str(HERE / "mp" / "rom_partition.py")], heap="512K")


def _pty_repl(tmp_path, extra: list[str] | None = None, heap: str = PTY_HEAP):
    import os
    import shutil
    import signal
    import subprocess
    import time

    from host_tools import fw

    if not shutil.which("socat"):
        pytest.skip("socat not installed")
    folder = tmp_path / "pty-device"
    folder.mkdir()
    link = tmp_path / "ttyRE0"
    env = dict(os.environ, MICROPYPATH="lib:.frozen")
    p = subprocess.Popen(["socat", f"PTY,link={link},raw,echo=0",
                          f"EXEC:{' '.join([fw.micropython_binary(), f'-X heapsize={heap}', *(extra or [])])}"
                          ",pty,raw,echo=0"],
                         cwd=folder, env=env, start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not link.exists():
        assert p.poll() is None and time.monotonic() < deadline, "socat did not create the pty"
        time.sleep(0.02)
    yield folder, str(link)
    os.killpg(p.pid, signal.SIGTERM)
    p.wait(10)
