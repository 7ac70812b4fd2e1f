"""`roadedge command DEVICE CMD --args JSON`: send a signed command, print the ack."""
from __future__ import annotations

import argparse
import json

from rich.console import Console
from roadedge import wire

from host_tools.config.secrets import Secrets
from host_tools.fleet import connect as broker
from host_tools.fleet.commands import NoAck, send_command
from host_tools.keys import Keyring, UnknownDevice


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("device")
    p.add_argument("cmd", help="command name: ping, reboot, log_level, selftest, or a role command")
    p.add_argument("--args", default="{}", help='command arguments as a JSON object, e.g. \'{"level": "D"}\'')
    p.add_argument("--timeout", type=float, default=15.0)
    broker.add_broker_arguments(p)


def run(args) -> int:
    err = Console(stderr=True)
    try:
        cargs = json.loads(args.args)
        if not isinstance(cargs, dict):
            raise ValueError("must be a JSON object")
    except ValueError as e:
        err.print(f"[red]--args: {e}[/]")
        return 2
    try:
        secrets = Secrets.load(args.secrets)
        keyring = Keyring(secrets.devices, secrets.sources[0])  # same folder or file as the rest
        c = broker.connect(broker.broker_url(args), args.user, args.password, args.ca, secrets, name="command")
    except (broker.BrokerError, ValueError) as e:
        err.print(f"[red]{e}[/]")
        return 1
    try:
        ack = send_command(c, keyring, args.device, args.cmd, cargs, args.timeout)
    except (UnknownDevice, NoAck, broker.BrokerError) as e:
        err.print(f"[red]{e}[/]")
        return 1
    finally:
        broker.close(c)
    print(json.dumps(ack, indent=2))
    if ack.get("code") in HINTS:
        err.print(f"[yellow]{HINTS[ack['code']]}[/]")
    return 0 if ack.get("ok") else 1


HINTS = {
    "no_clock": "the device has no time yet, so it cannot check a command's expiry: something must publish "
                f"{wire.TIME_TOPIC} (the controller does); is it running?",
    "bad_mac": "the device's command key differs from the secrets folder: re-flash it after `roadedge provision`",
    "replay": "the device has seen a higher counter: is the host clock behind?",
    "expired": "the command arrived after its expiry: check the host and device clocks",
    "future": "the counter is ahead of the command's expiry, or the expiry is beyond the device's longest "
              "validity (15 min): is the host clock ahead?",
}
