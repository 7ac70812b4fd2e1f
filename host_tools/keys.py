"""Per-device secrets on the host and signing of device commands.

The secrets live outside git (see .gitignore) in a folder, by default
`secrets/` at the repo root or $ROADEDGE_SECRETS:

    secrets/devices.json   {"<device id>": {"mqtt_password": "...", "command_key": "<hex>", "role": "tracker"}, ...}
    (the whole layout, and the single-file form: host_tools/config/secrets.py)

`roadedge provision` writes it; the controller, the dispatcher console and
`roadedge command` read it to sign commands with the firmware's own
`roadedge.core.auth.sign_command` (one implementation on both sides). The console
keeps only the trackers' keys (Keyring.of_role): it never commands a sign or a beacon.
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

    def __init__(self, dev_id: str, key: bytes, clock=time.time, last: dict[str, int] | None = None) -> None:
        self.dev_id = dev_id
        self.key = key
        self.clock = clock  # the simulator passes its own (reproducible runs)
        self.last = Signer._last if last is None else last

    def next_ctr(self) -> int:
        with Signer._lock:
            ctr = max(int(self.clock() * 1000), self.last.get(self.dev_id, 0) + 1)
            self.last[self.dev_id] = ctr
            return ctr

    def sign(self, cmd: str, args: dict | None = None, ttl_s: int = 30) -> bytes:
        from roadedge.core.auth import sign_command

        return sign_command(self.key, self.dev_id, cmd, self.next_ctr(), int(self.clock()) + ttl_s, args or {})


class Keyring:
    def __init__(self, devices: dict[str, dict], path: Path | None = None, operator_key: str | None = None,
                 clock=None) -> None:
        self.devices = devices
        self.path = path
        # a clock of its own (the simulator's) comes with counters of its own: runs repeat exactly
        self.clock = clock or time.time
        self.last: dict[str, int] | None = {} if clock else None
        # signs operator actions (re/ctl/<zone>/op): shared by the console and the controller only
        self.operator_key = operator_key

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> Keyring:
        """The device secrets of a secrets folder or single file, read as
        `roadedge provision` writes them (host_tools.config.secrets)."""
        from host_tools.config.secrets import Secrets  # it imports secrets_dir from here

        sec = Secrets.load(path)
        ctl = sec.services.get("controller")
        return cls(sec.devices, sec.sources[0], ctl.get("operator_key") if isinstance(ctl, dict) else None)

    def _entry(self, dev_id: str) -> dict:
        try:
            return self.devices[dev_id]
        except KeyError:
            raise UnknownDevice(f"no secrets for device {dev_id!r} in {self.path}: run `roadedge provision`") from None

    def command_key(self, dev_id: str) -> bytes:
        return bytes.fromhex(self._entry(dev_id)["command_key"])

    def mqtt_password(self, dev_id: str) -> str:
        return self._entry(dev_id)["mqtt_password"]

    def role(self, dev_id: str) -> str | None:
        """The role the device was provisioned with (`roadedge provision` records it when it knows it)."""
        e = self.devices.get(dev_id)
        r = e.get("role") if isinstance(e, dict) else None
        return r if isinstance(r, str) else None

    def only(self, dev_ids) -> Keyring:
        """A keyring holding just these devices' keys (and the operator key): least privilege for a
        process that commands some devices only."""
        keep = {d: self.devices[d] for d in sorted(set(dev_ids)) if d in self.devices}
        k = Keyring(keep, self.path, self.operator_key)
        k.clock, k.last = self.clock, self.last
        return k

    def of_role(self, role: str, listed=()) -> Keyring:
        """Only the keys of devices of one role: provisioned with it, or listed (by a deployment, for
        devices provisioned without a role). A device provisioned with another role stays out, whatever
        the list says; a role a device claims over MQTT counts for nothing here."""
        listed = set(listed)
        return self.only(d for d in self.devices
                         if self.role(d) == role or (self.role(d) is None and d in listed))

    def signer(self, dev_id: str) -> Signer:
        return Signer(dev_id, self.command_key(dev_id), self.clock, self.last)

    def operator_signer(self, zone: str) -> Signer:
        """Signs operator actions for one zone's controller: the device command scheme, with the
        controller's `operator_key` and `ctl/<zone>` as the device id (so an action for one zone
        never verifies at another)."""
        if not self.operator_key:
            raise UnknownDevice(f"no controller operator_key in the secrets ({self.path}): run `roadedge provision`")
        return Signer(operator_id(zone), bytes.fromhex(self.operator_key), self.clock, self.last)


def operator_id(zone: str) -> str:
    """The device id operator actions for a zone are signed for."""
    return f"ctl/{zone}"
