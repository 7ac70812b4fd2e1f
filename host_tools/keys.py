"""Per-device secrets on the host and signing of device commands.

The secrets live outside git (see .gitignore) in a folder, by default
`secrets/` at the repo root or $ROADEDGE_SECRETS:

    secrets/devices.json   {"<device id>": {"mqtt_password": "...", "command_key": "<hex>"}, ...}
    (the whole layout, and the single-file form: host_tools/config/secrets.py)

`roadedge provision` writes it; the controller, the dispatcher console and
`roadedge command` read it to sign commands with the firmware's own
`roadedge.core.auth.sign_command` (one implementation on both sides).
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from host_tools import fw


DEFAULT_DIR = fw.REPO / "secrets"


class UnknownDevice(LookupError):
    """No secret for that device (not provisioned, or the wrong secrets folder)."""


def secrets_dir(path: str | os.PathLike | None = None) -> Path:
    return Path(path or os.environ.get("ROADEDGE_SECRETS") or DEFAULT_DIR)


class Signer:
    """Signs commands for one device with a strictly increasing counter.

    The counter is wall-clock milliseconds, bumped past the last one used, so
    several host processes (controller, console, CLI) never need to share
    state and still always exceed what the device last accepted.
    """

    _lock = threading.Lock()
    _last: dict[str, int] = {}

    def __init__(self, dev_id: str, key: bytes) -> None:
        self.dev_id = dev_id
        self.key = key

    def next_ctr(self) -> int:
        with Signer._lock:
            ctr = max(int(time.time() * 1000), Signer._last.get(self.dev_id, 0) + 1)
            Signer._last[self.dev_id] = ctr
            return ctr

    def sign(self, cmd: str, args: dict | None = None, ttl_s: int = 30) -> bytes:
        from roadedge.core.auth import sign_command

        return sign_command(self.key, self.dev_id, cmd, self.next_ctr(), int(time.time()) + ttl_s, args or {})


class Keyring:
    def __init__(self, devices: dict[str, dict], path: Path | None = None) -> None:
        self.devices = devices
        self.path = path

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> Keyring:
        """The device secrets of a secrets folder or single file, read as
        `roadedge provision` writes them (host_tools.config.secrets)."""
        from host_tools.config.secrets import Secrets  # it imports secrets_dir from here

        sec = Secrets.load(path)
        return cls(sec.devices, sec.sources[0])

    def _entry(self, dev_id: str) -> dict:
        try:
            return self.devices[dev_id]
        except KeyError:
            raise UnknownDevice(f"no secrets for device {dev_id!r} in {self.path}: run `roadedge provision`") from None

    def command_key(self, dev_id: str) -> bytes:
        return bytes.fromhex(self._entry(dev_id)["command_key"])

    def mqtt_password(self, dev_id: str) -> str:
        return self._entry(dev_id)["mqtt_password"]

    def signer(self, dev_id: str) -> Signer:
        return Signer(dev_id, self.command_key(dev_id))
