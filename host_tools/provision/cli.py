"""`roadedge provision`: device credentials, command keys, Mosquitto passwd/ACL/TLS."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from host_tools.config.secrets import Secrets, SecretsError
from host_tools.controller.zone import ZoneConfig
from host_tools.provision import acl
from host_tools.provision.core import DEFAULT_OUT, provision
from roadedge import wire


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("devices", nargs="*", metavar="DEVICE",
                   help="device ids or board config files (their id is used); new ones get fresh secrets")
    p.add_argument("--device", action="append", default=[], metavar="DEVICE", help="same as a DEVICE argument")
    p.add_argument("--role", choices=wire.ROLES,
                   help="role of the bare device ids given (a board config file says its own): recorded with "
                        "the secrets, so the console holds only the trackers' command keys")
    p.add_argument("--secrets", help="secrets folder (default: secrets/ or $ROADEDGE_SECRETS)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"where to write passwd, acl, TLS files "
                                                                 f"(default {DEFAULT_OUT})")
    p.add_argument("--rotate", action="store_true",
                   help="replace the listed devices' MQTT password and command key (re-flash them afterwards)")
    p.add_argument("--remove", action="append", default=[], metavar="DEVICE", help="forget a device")
    p.add_argument("--zone", action="append", default=[], metavar="ZONE.json",
                   help="a zone config (as `roadedge controller --zone` reads it; repeatable): its controller gets "
                        "its own account controller-<zone>, allowed its own signs and zone only; a zone given "
                        "again keeps its password and takes the config's signs and sources")
    p.add_argument("--remove-zone", action="append", default=[], metavar="ZONE",
                   help="forget a zone controller's account (by zone id)")
    p.add_argument("--tls-host", action="append", metavar="HOST",
                   help="broker host name/IP for its TLS certificate (repeatable; default localhost, 127.0.0.1, "
                        "this host)")
    p.add_argument("--no-tls", action="store_true", help="only write passwd and acl")
    p.add_argument("--plain-port", type=int, default=1883)
    p.add_argument("--tls-port", type=int, default=8883)


def device_id(arg: str) -> tuple[str, str | None]:
    """(id, role) of a DEVICE argument: a board config file gives both, a bare id only itself."""
    p = Path(arg)
    if arg.endswith(".json") and p.exists():
        data = json.loads(p.read_text())
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise ValueError(f"{arg}: id: missing")
        role = data.get("role")
        return data["id"], role if isinstance(role, str) else None
    return arg, None


def run(args) -> int:
    con = Console(stderr=True)
    try:
        secrets = Secrets.load(args.secrets)
        if secrets.root is None:
            con.print("[red]provision needs a secrets folder, not a single file[/]")
            return 2
        given = [device_id(a) for a in [*args.devices, *args.device]]
        roles = {i: r or args.role for i, r in given if r or args.role}
        zones = [ZoneConfig.load(z) for z in args.zone]
        res = provision(secrets, [i for i, _r in given], rotate=args.rotate, remove=args.remove, out=args.out,
                        tls_hosts=None if args.no_tls else (args.tls_host or []),
                        plain_port=args.plain_port, tls_port=args.tls_port, roles=roles, zones=zones,
                        remove_zones=args.remove_zone)
    except (ValueError, SecretsError, OSError) as e:
        con.print(f"[red]provision failed:[/] {e}")
        return 1
    t = Table(title=f"devices in {secrets.root}")
    t.add_column("device")
    t.add_column("this run")
    for dev in sorted(set(secrets.devices) | set(res.removed)):
        what = ("created" if dev in res.created else "ROTATED: re-flash it" if dev in res.rotated
                else "removed" if dev in res.removed else "")
        t.add_row(dev, what)
    Console().print(t)
    zone_accounts = acl.zones_of(secrets.services)
    if zone_accounts or res.zones_removed:
        z = Table(title="zone controller accounts")
        for col in ("account", "zone", "signs", "this run"):
            z.add_column(col)
        for acct in sorted(set(zone_accounts) | set(res.zones_removed)):
            zone, signs, _src = zone_accounts.get(acct, ("", (), ()))
            what = ("created" if acct in res.zones_created else "signs/sources changed" if acct in res.zones_changed
                    else "removed" if acct in res.zones_removed else "")
            z.add_row(acct, zone, " ".join(signs), what)
        Console().print(z)
    for name, path in res.files.items():
        print(f"{name}: {path}")
    if res.rotated:
        con.print("[yellow]rotated devices keep their old credentials until re-flashed; restart Mosquitto "
                  "to apply the new accounts file (it is read at start-up only)[/]")
    elif res.zones_created or res.zones_changed or res.zones_removed:
        con.print("[yellow]zone controller accounts changed: restart Mosquitto to apply the new accounts file "
                  "(it is read at start-up only)[/]")
    return 0


if __name__ == "__main__":
    from host_tools.cli import main

    sys.exit(main(["provision", *sys.argv[1:]]))
