"""`roadedge validate FILE...`: check board configs (schema, board pins, role parameters, secrets, and
whether the role fits the board's heap: host_tools.config.fit)."""
from __future__ import annotations

import argparse

from rich.console import Console

from host_tools import fw
from host_tools.config import ConfigError, Secrets, SecretsError, load
from host_tools.keys import secrets_dir


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="*", metavar="FILE", help="board configs (default: board_configs/*.json)")
    p.add_argument("--secrets", help="resolve !secret references from this secrets folder/file (default: secrets/ "
                                     "or $ROADEDGE_SECRETS when it exists)")
    p.add_argument("--broker", metavar="URL", help="check with this broker.url instead")
    p.add_argument("--force", action="store_true",
                   help="a role over the board's heap budget is a warning, not an error")


def run(args) -> int:
    out, err = Console(), Console(stderr=True)
    files = args.files or sorted(str(p) for p in (fw.REPO / "board_configs").glob("*.json")
                                 if p.name not in ("schema.json", "secrets.json"))
    if not files:
        err.print("[red]no board configs given[/]")
        return 2
    try:
        secrets = Secrets.load(args.secrets) if args.secrets or secrets_dir().exists() else None
    except SecretsError as e:
        err.print(f"[red]{e}[/]")
        return 1
    if secrets is None:
        err.print("[dim]no secrets folder: !secret references are checked at flash time[/]")
    failed = 0
    for f in files:
        try:
            _cfg, warnings = load(f, secrets, args.broker, force=args.force)
        except ConfigError as e:
            failed += 1
            for p in e.problems:
                err.print(f"[{'yellow' if p.warning else 'red'}]{p}[/]", highlight=False)
            continue
        for p in warnings:
            err.print(f"[yellow]{p}[/]", highlight=False)
        out.print(f"[green]ok[/] {f}", highlight=False)
    out.print(f"{len(files) - failed} of {len(files)} valid")
    return 1 if failed else 0
