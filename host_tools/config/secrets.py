"""The git-ignored secrets folder and how `"!secret NAME"` is resolved.

Layout (default `secrets/` at the repo root, or $ROADEDGE_SECRETS, or --secrets):

    secrets/devices.json    {"<device id>": {"mqtt_password": "...", "command_key": "<64 hex>"}}
                            (per device; written by `roadedge provision`; read by host_tools.keys.Keyring)
    secrets/site.json       {"wifi_password": "...", ...}   shared by every device of the site
    secrets/services.json   {"controller": {"mqtt_password": "..."}, "dispatcher": {...}}
    secrets/tls/            ca.pem ca.der ca.key server.pem server.key  (broker TLS)

`"!secret NAME"` in a board config for device ID is looked up in
devices.json[ID][NAME] first, then in site.json[NAME]. --secrets may also
name one JSON file: its top-level keys are site secrets and an optional
"devices" object holds per-device ones (handy for a single board).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from host_tools.keys import secrets_dir

SECRET_PREFIX = "!secret "


class SecretsError(ValueError):
    pass


def _read_json(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise SecretsError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise SecretsError(f"{path}: expected a JSON object")
    return data


class Secrets:
    def __init__(self, devices: dict, site: dict, services: dict, root: Path | None, sources: list[Path]):
        self.devices = devices
        self.site = site
        self.services = services
        self.root = root
        self.sources = sources

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> Secrets:
        p = secrets_dir(path)
        if p.is_file() or p.suffix == ".json":
            data = _read_json(p)
            devices = data.pop("devices", {}) if isinstance(data.get("devices"), dict) else {}
            return cls(devices, data, {}, None, [p])
        return cls(_read_json(p / "devices.json"), _read_json(p / "site.json"),
                   _read_json(p / "services.json"), p, [p / "devices.json", p / "site.json"])

    def where(self) -> str:
        return " or ".join(str(s) for s in self.sources)

    def lookup(self, dev_id: str, name: str) -> str | None:
        entry = self.devices.get(dev_id)
        if isinstance(entry, dict) and name in entry:
            return entry[name]
        v = self.site.get(name)
        return v if isinstance(v, str) else None

    # --- writing (provision) ---------------------------------------------------------------
    def save(self) -> None:
        if self.root is None:
            raise SecretsError("secrets given as one file; provisioning needs a secrets folder")
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        for name, data in (("devices.json", self.devices), ("site.json", self.site),
                           ("services.json", self.services)):
            if name != "devices.json" and not data and not (self.root / name).exists():
                continue
            _write_private(self.root / name, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _write_private(path: Path, text: str) -> None:
    """Write-then-rename with mode 0600: a crash never leaves a half-written secrets file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def secret_name(value) -> str | None:
    """NAME for a `"!secret NAME"` value, else None."""
    if isinstance(value, str) and value.startswith(SECRET_PREFIX):
        return value[len(SECRET_PREFIX):].strip()
    return None
