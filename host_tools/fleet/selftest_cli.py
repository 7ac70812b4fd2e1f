"""`roadedge selftest DEVICE`: run the device's self-test (lamps, display, sensors, GNSS fix...) and show it."""
from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from host_tools.config.secrets import Secrets
from host_tools.fleet import connect as broker
from host_tools.fleet.commands import NoAck, send_command
from host_tools.keys import Keyring, UnknownDevice


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("device")
    p.add_argument("--timeout", type=float, default=20.0)
    p.add_argument("--json", action="store_true", help="print the raw result")
    broker.add_broker_arguments(p)


def checks_table(dev: str, detail: dict) -> Table:
    t = Table(title=f"self-test of {dev}: {'PASS' if detail.get('pass') else 'FAIL'}")
    t.add_column("check")
    t.add_column("result")
    t.add_column("detail")
    for name, v in sorted((detail.get("checks") or {}).items()):
        ok, info = (v + [None, None])[:2] if isinstance(v, list) else (bool(v), None)
        t.add_row(name, "[green]ok[/]" if ok else "[red]FAIL[/]", "" if info is None else str(info))
    return t


def run(args) -> int:
    err = Console(stderr=True)
    try:
        secrets = Secrets.load(args.secrets)
        keyring = Keyring(secrets.devices, secrets.sources[0])  # same folder or file as the rest
        c = broker.connect(broker.broker_url(args), args.user, args.password, args.ca, secrets, name="selftest")
    except (broker.BrokerError, ValueError) as e:
        err.print(f"[red]{e}[/]")
        return 1
    try:
        ack = send_command(c, keyring, args.device, "selftest", {}, args.timeout)
    except (UnknownDevice, NoAck, broker.BrokerError) as e:
        err.print(f"[red]{e}[/]")
        return 1
    finally:
        broker.close(c)
    if not ack.get("ok"):
        from host_tools.fleet.command_cli import HINTS

        err.print(f"[red]{args.device} refused the self-test: {ack.get('code')} {ack.get('detail') or ''}[/]")
        if ack.get("code") in HINTS:
            err.print(f"[yellow]{HINTS[ack['code']]}[/]")
        return 1
    detail = ack.get("detail") or {}
    if args.json:
        print(json.dumps(detail, indent=2))
    else:
        Console().print(checks_table(args.device, detail))
    return 0 if detail.get("pass") else 1
