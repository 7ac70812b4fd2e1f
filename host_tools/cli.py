"""`roadedge`: one entry point for every host tool.

Each subcommand lives in its own module that exposes
`add_arguments(parser)` and `run(args) -> int`; this table is the only place
that lists them, and a module is imported only when its command runs.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "broker": ("host_tools.broker.cli", "run a managed Mosquitto with the provisioned accounts and ACL (zero set-up)"),
    "sim": ("sim.cli", "boot simulated devices / run a scenario / attach a board (HIL)"),
    "flash": ("host_tools.flash.cli", "validate, build, flash a board and watch it come online"),
    "validate": ("host_tools.flash.validate_cli", "validate board configs without flashing"),
    "provision": ("host_tools.provision.cli", "create device credentials, command keys and Mosquitto ACLs"),
    "batch": ("host_tools.flash.batch_cli", "flash and provision many boards from a manifest"),
    "devices": ("host_tools.fleet.devices_cli", "list devices: online, role, firmware, last seen"),
    "logs": ("host_tools.fleet.logs_cli", "follow a device's log over MQTT"),
    "selftest": ("host_tools.fleet.selftest_cli", "run a device's self-test over MQTT"),
    "command": ("host_tools.fleet.command_cli", "send a signed command to a device"),
    "controller": ("host_tools.controller.cli", "run the fog-zone speed-limit controller"),
    "dispatch": ("host_tools.dispatch.cli", "run the dispatcher console (ingest + web)"),
    "record": ("host_tools.recording.record_cli", "record every MQTT message to a file"),
    "replay": ("host_tools.recording.replay_cli", "replay a recording with its timing"),
    "demo": ("sim.demo", "run the demo deployment with the dispatcher console"),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="roadedge", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_mod, help_) in COMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        build_parser().print_help()
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    name, rest = argv[0], argv[1:]
    mod = importlib.import_module(COMMANDS[name][0])
    p = argparse.ArgumentParser(prog=f"roadedge {name}", description=COMMANDS[name][1])
    mod.add_arguments(p)
    args = p.parse_args(rest)
    try:
        return int(mod.run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
