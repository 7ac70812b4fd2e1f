"""Provisioning: per-device MQTT credentials and command keys, one account per fog zone's
controller, the Mosquitto accounts file (dynamic-security plugin), the broker's TLS material,
and rotation.

State lives in the secrets folder (host_tools.config.secrets); everything in
the output folder is derived from it and can be regenerated at any time.
"""
from __future__ import annotations

import os
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path

from host_tools import fw
from host_tools.broker import conf as broker_conf
from host_tools.config.secrets import Secrets
from host_tools.provision import acl, dynsec, passwd, tls
from roadedge import wire, wire_access

DEFAULT_OUT = fw.REPO / "deploy" / "generated" / "mosquitto"


@dataclass
class Result:
    created: list[str] = field(default_factory=list)
    rotated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    zones_created: list[str] = field(default_factory=list)  # zone controller accounts, by account name
    zones_changed: list[str] = field(default_factory=list)  # signs or sources changed (password kept)
    zones_removed: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)


def _write(path: Path, text: str, mode: int = 0o600) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def provision(secrets: Secrets, devices: list[str] = (), rotate: bool = False, remove: list[str] = (),
              out: Path = DEFAULT_OUT, tls_hosts: list[str] | None = None, plain_port: int = 1883,
              tls_port: int = 8883, roles: dict[str, str] | None = None, zones=(),
              remove_zones: list[str] = ()) -> Result:
    """Create/rotate/remove device secrets, then write dynsec.json, acl (and TLS + mosquitto.conf) into out.

    roles: device -> role (from its board config), recorded with its secrets: the console keeps only the
    keys of devices provisioned (or deployed) as trackers.
    zones: zone configs (host_tools.controller.zone.ZoneConfig): each zone's controller gets its own
    account `controller-<zone>` (a new password the first time, kept after), its rules made from the
    zone's signs and sources, recorded with it; remove_zones: zone ids whose account goes."""
    res = Result()
    for dev in devices:
        acl.device_rules(dev)  # raises on ids that would break topics or are reserved
        role = (roles or {}).get(dev)
        if role is not None and role not in wire.ALL_ROLES:
            raise ValueError(f"device {dev!r}: role {role!r} is not one of {', '.join(wire.ALL_ROLES)}")
        entry = secrets.devices.get(dev)
        if entry and role and entry.get("role") not in (None, role) and not rotate:
            raise ValueError(f"device {dev!r} was provisioned as {entry['role']}, not {role}: --rotate it "
                             "(new credentials) to change its role")
        if entry and not rotate:
            if role:
                entry["role"] = role
            res.unchanged.append(dev)
            continue
        secrets.devices[dev] = dict(entry or {}, mqtt_password=passwd.new_password(),
                                    command_key=passwd.new_command_key())
        if role:
            secrets.devices[dev]["role"] = role
        (res.rotated if entry else res.created).append(dev)
    for dev in remove:
        if secrets.devices.pop(dev, None) is not None:
            res.removed.append(dev)
    _zones(secrets, res, zones, remove_zones)
    for svc in acl.SERVICE_ROLES:
        secrets.services.setdefault(svc, {"mqtt_password": passwd.new_password(), "role": svc})
    # the key the console signs operator actions with and the controller verifies them by
    secrets.services["controller"].setdefault("operator_key", passwd.new_command_key())
    secrets.save()

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    users = {d: e["mqtt_password"] for d, e in secrets.devices.items()}
    users.update({s: e["mqtt_password"] for s, e in secrets.services.items()})
    zone_accounts = acl.zones_of(secrets.services)
    sec_path = dynsec.write(out / dynsec.FILE_NAME, users,
                            acl.rules(sorted(secrets.devices), sorted(secrets.services), zone_accounts))
    acl_path = out / "acl"  # the same rules, readable (review); the broker enforces dynsec.json
    _write(acl_path, acl.acl_file(sorted(secrets.devices), sorted(secrets.services), zone_accounts), 0o644)
    res.files.update(dynsec_file=sec_path, acl_file=acl_path)
    (out / "passwd").unlink(missing_ok=True)  # an older layout's password file: no longer read by anything
    if tls_hosts is not None:
        assert secrets.root is not None
        tls_dir = secrets.root / "tls"
        cert, key = tls.issue_server(tls_dir, tls_hosts or ["localhost", "127.0.0.1", socket.gethostname()])
        for src in (tls_dir / "ca.pem", tls_dir / "ca.der", cert, key):
            shutil.copyfile(src, out / src.name)
            os.chmod(out / src.name, 0o600 if src.suffix == ".key" else 0o644)
        conf = broker_conf.render(sec_path, out / "ca.pem", out / "server.pem", out / "server.key",
                                  out / "data", plain_port=plain_port, tls_port=tls_port)
        (out / "data").mkdir(exist_ok=True)
        _write(out / "mosquitto.conf", conf, 0o644)
        res.files.update(ca_der=out / "ca.der", ca_pem=out / "ca.pem", conf=out / "mosquitto.conf")
    return res


def _zones(secrets: Secrets, res: Result, zones, remove_zones) -> None:
    """Add, update or remove the zone controllers' accounts in secrets.services (not saved yet)."""
    given: set[str] = set()
    for cfg in zones:
        acct = wire_access.zone_account(cfg.zone)
        if acct in given:
            raise ValueError(f"zone {cfg.zone!r} given twice")
        given.add(acct)
        entry = acl.zone_entry(cfg.zone, [s.id for s in cfg.signs], [src for s in cfg.signs for src in s.sources])
        old = secrets.services.get(acct)
        if old is not None and old.get("role") != wire_access.ZONE_CONTROLLER:
            raise ValueError(f"{acct!r} is a service account, not a zone controller's")
        if old and old.get("mqtt_password"):
            if any(old.get(k) != v for k, v in entry.items()):
                res.zones_changed.append(acct)
            secrets.services[acct] = dict(old, **entry)  # the password stays: the controller runs on
        else:
            secrets.services[acct] = dict(entry, mqtt_password=passwd.new_password())
            res.zones_created.append(acct)
    for zone in remove_zones:
        acct = wire_access.zone_account(zone)
        e = secrets.services.get(acct)
        if isinstance(e, dict) and e.get("role") == wire_access.ZONE_CONTROLLER:
            del secrets.services[acct]
            res.zones_removed.append(acct)
    # one controller per sign: two zones commanding one sign would fight over it
    owner: dict[str, str] = {}
    for acct, (_zone, signs, _sources) in sorted(acl.zones_of(secrets.services).items()):
        for sign in signs:
            if sign in owner:
                raise ValueError(f"sign {sign!r} is in two zones ({owner[sign]}, {acct}): one controller per sign")
            owner[sign] = acct
