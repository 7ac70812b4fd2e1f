"""`roadedge batch MANIFEST`: provision and flash many boards, one after another, then a summary table.

MANIFEST (JSON):
    {"secrets": "secrets",                       # optional, like --secrets
     "broker": "mqtts://broker.example:8883",    # optional, overrides every broker.url
     "out": "deploy/generated/mosquitto",        # optional: where provisioning writes passwd/acl
     "firmware": "release/firmware",             # optional: firmware tree (default: this checkout's)
     "boards": [{"board": "board_configs/pico_w-sign.json", "port": "/dev/ttyACM0"},
                {"board": "board_configs/esp32-beacon.json", "port": "/dev/ttyUSB0", "wait_online": false,
                 "deploy": "romfs", "force": false}]}     # deploy/force: as `roadedge flash --deploy/--force`
Relative paths are taken from the manifest's folder.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console

from host_tools.config import Secrets, SecretsError
from host_tools.flash.flasher import FlashOptions, FlashResult, flash
from host_tools.flash.report import print_problems, summary_table
from host_tools.provision.core import DEFAULT_OUT, provision


class ManifestError(ValueError):
    pass


def read_manifest(path: Path) -> dict:
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ManifestError(f"{path}: cannot read: {e}") from None
    if not isinstance(m, dict) or not isinstance(m.get("boards"), list) or not m["boards"]:
        raise ManifestError(f"{path}: boards: missing (a list of {{board, port}})")
    for i, b in enumerate(m["boards"]):
        if not isinstance(b, dict) or not isinstance(b.get("board"), str) or not isinstance(b.get("port"), str):
            raise ManifestError(f"{path}: boards[{i}]: needs \"board\" (config file) and \"port\"")
        if b.get("deploy") not in (None, "auto", "romfs", "mpy"):
            raise ManifestError(f"{path}: boards[{i}].deploy: one of auto, romfs, mpy")
    return m


def _rel(base: Path, p: str) -> str:
    if p.startswith("dir:"):
        return "dir:" + _rel(base, p[4:])
    q = Path(p)
    return str(q if q.is_absolute() or not (base / q).exists() and q.exists() else base / q)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", type=Path)
    p.add_argument("--secrets", help="secrets folder (overrides the manifest)")
    p.add_argument("--broker", metavar="URL", help="override every board's broker.url")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each board online")
    p.add_argument("--firmware", metavar="DIR", help="firmware tree to flash (default: the manifest's "
                                                     "\"firmware\", else this checkout's firmware/)")
    p.add_argument("--prompt", action="store_true", help="wait for Enter before each board (one USB port)")
    p.add_argument("--keep-going", action="store_true", default=True, help=argparse.SUPPRESS)


def run(args) -> int:
    err = Console(stderr=True)
    try:
        m = read_manifest(args.manifest)
    except ManifestError as e:
        err.print(f"[red]{e}[/]")
        return 2
    base = args.manifest.resolve().parent
    secrets_path = args.secrets or (_rel(base, m["secrets"]) if m.get("secrets") else None)
    out = Path(_rel(base, m["out"])) if m.get("out") else DEFAULT_OUT
    results: list[FlashResult] = []
    ids, roles = [], {}
    for b in m["boards"]:
        try:
            data = json.loads(Path(_rel(base, b["board"])).read_text())
            ids.append(data["id"])
            if isinstance(data.get("role"), str):
                roles[data["id"]] = data["role"]
        except (OSError, ValueError, KeyError, TypeError):
            pass  # flash() reports the bad config with its file and field
    try:
        secrets = Secrets.load(secrets_path)
        if secrets.root is not None:
            res = provision(secrets, ids, out=out, tls_hosts=None, roles=roles)
            if res.created:
                err.print(f"provisioned {', '.join(res.created)}; restart Mosquitto to apply "
                          f"{res.files['dynsec_file']}")
    except (SecretsError, ValueError, OSError) as e:
        err.print(f"[red]provisioning failed: {e}[/]")
        return 1
    for i, b in enumerate(m["boards"], 1):
        board, port = _rel(base, b["board"]), _rel(base, b["port"])
        if args.prompt:
            input(f"[{i}/{len(m['boards'])}] connect the board for {board} on {port} and press Enter ")
        err.rule(f"[{i}/{len(m['boards'])}] {board} → {port}")
        opts = FlashOptions(secrets=secrets_path, broker_url=args.broker or m.get("broker"),
                            wait_online=b.get("wait_online"), timeout_s=float(b.get("timeout", args.timeout)),
                            source=bool(b.get("source", False)), deploy=b.get("deploy"),
                            force=bool(b.get("force", False)),
                            firmware=args.firmware or (_rel(base, m["firmware"]) if m.get("firmware") else None))
        r = flash(board, port, opts, err)
        print_problems(r, err)
        results.append(r)
    Console(width=200).print(summary_table(results, f"batch: {sum(r.ok for r in results)} of {len(results)} ok"))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    from host_tools.cli import main

    sys.exit(main(["batch", *sys.argv[1:]]))
