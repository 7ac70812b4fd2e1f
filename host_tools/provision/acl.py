"""Broker access rules, generated from the one access table (`roadedge.wire_access.ACCESS`).

`rules()` is each account's (read filters, write filters); the broker enforces them through the
dynamic-security plugin (host_tools.provision.dynsec), which also binds every account to one client
id (its user name): a CONNECT with another id is refused, so no account can take over another's
connection or session (each service worker therefore has its own account, e.g. ingest-1 .. ingest-4).
`acl_file()` renders the same rules in Mosquitto's acl_file syntax (for review, and for a broker run
without the plugin; that one cannot refuse a foreign client id).

A client may do exactly what is listed for its user, nothing else. Devices get explicit per-user
rules (no patterns, which would apply to the service users too).

Each fog zone's controller has its own account, `controller-<zone>` (`wire_access.zone_account`), with the
table's zone-controller entry filled in for that zone: its signs' command topics, its re/ctl/<zone>
topics, the time beacon, and reading its signs and sources (`wire_access.zone_access`). Its zone, signs and
sources are recorded with its password in services.json (`zone_entry`), so every re-provision renders
the same rules without the zone config at hand.
"""
from __future__ import annotations

from roadedge import wire, wire_access

# Read-only ingest worker accounts provisioned by default (one per worker process).
INGEST_WORKERS = 4

# Host services: user -> (read filters, write filters). Users are named after their service; each
# ingest worker has its own account (client ids are bound to user names) with the "ingest" rights.
SERVICE_ROLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    svc: (wire_access.ACCESS[svc][1], wire_access.ACCESS[svc][0]) for svc in wire.SERVICES}
SERVICE_ROLES.update({f"ingest-{n}": SERVICE_ROLES["ingest"] for n in range(1, INGEST_WORKERS + 1)})

RESERVED_IDS = set(wire.RESERVED_IDS)


def check_device_id(dev_id: str) -> None:
    if dev_id in RESERVED_IDS or dev_id in SERVICE_ROLES or str(dev_id).startswith(wire.ZONE_ACCOUNT_PREFIX):
        raise ValueError(f"device id {dev_id!r} is reserved (re/{dev_id}/, the service users and the zone "
                         f"controllers' {wire.ZONE_ACCOUNT_PREFIX}<zone>); pick another")
    if not wire.valid_id(dev_id):
        raise ValueError(f"device id {dev_id!r} must be 1-64 characters without MQTT wildcards, '/', ':' or spaces")


Rules = dict[str, tuple[tuple[str, ...], tuple[str, ...]]]  # user -> (read filters, write filters)


def device_access(dev_id: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(read, write) filters of device dev_id's account; raises on ids that would break topics."""
    check_device_id(dev_id)
    pub, sub = wire_access.access(wire_access.DEVICE_USER, dev_id)
    return sub, pub


def device_rules(dev_id: str) -> list[str]:
    read, write = device_access(dev_id)
    return [f"topic write {t}" for t in write] + [f"topic read {t}" for t in read]


# A zone controller's account: account name -> (zone, signs, sources)
Zones = dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]]


def zone_entry(zone: str, signs, sources) -> dict:
    """What services.json records of a zone controller's account besides its password: the role and
    the zone's devices its rules are made of. Raises on a zone or device id that would break topics."""
    if not wire_access.valid_zone(zone):
        raise ValueError(f"zone id {zone!r} must be 1-{64 - len(wire.ZONE_ACCOUNT_PREFIX)} characters without "
                         "MQTT wildcards, '/', ':' or spaces (it names the account controller-<zone>)")
    signs, sources = sorted(set(signs)), sorted(set(sources) - set(signs))
    if not signs:
        raise ValueError(f"zone {zone!r}: no signs")
    for dev in signs + sources:
        check_device_id(dev)
    return {"role": wire_access.ZONE_CONTROLLER, "zone": zone, "signs": signs, "sources": sources}


def zones_of(services: dict[str, dict]) -> Zones:
    """The zone controller accounts among services.json's entries."""
    return {name: (e["zone"], tuple(e["signs"]), tuple(e.get("sources", ())))
            for name, e in services.items() if isinstance(e, dict) and e.get("role") == wire_access.ZONE_CONTROLLER}


def zone_access(zone: str, signs, sources=()) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(read, write) filters of zone's controller account (the table's zone-controller entry)."""
    pub, sub = wire_access.zone_access(zone, tuple(signs), tuple(sources))
    return sub, pub


def service_rules(role: str, zones: Zones | None = None) -> list[str]:
    read, write = zone_access(*zones[role]) if zones and role in zones else SERVICE_ROLES[role]
    return [f"topic read {t}" for t in read] + [f"topic write {t}" for t in write]


def rules(devices: list[str], services: list[str], zones: Zones | None = None) -> Rules:
    """Every account's (read, write) filters: the services' from SERVICE_ROLES, the zone controllers'
    from their zone (zones: account -> (zone, signs, sources)), the devices' own."""
    zones = zones or {}
    out: Rules = {svc: zone_access(*zones[svc]) if svc in zones else SERVICE_ROLES[svc] for svc in sorted(services)}
    out.update({acct: zone_access(*z) for acct, z in sorted(zones.items())})
    out.update({dev: device_access(dev) for dev in sorted(devices)})
    return out


def acl_file(devices: list[str], services: list[str], zones: Zones | None = None) -> str:
    out = ["# Generated by `roadedge provision`; edit the generator, not this file.",
           "# No anonymous access and no pattern rules: every user below gets exactly its list.", ""]
    for svc in sorted(set(services) | set(zones or {})):
        out.append(f"user {svc}")
        out += service_rules(svc, zones)
        out.append("")
    for dev in sorted(devices):
        out.append(f"user {dev}")
        out += device_rules(dev)
        out.append("")
    return "\n".join(out)
