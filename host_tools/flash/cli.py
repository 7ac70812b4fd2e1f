"""`roadedge flash --board FILE --port PORT`: validate, build, copy what changed, start, watch it come online.

PORT: a serial device (/dev/ttyACM0, COM3), an mpremote connect string
(a0, u0, port:/dev/ttyUSB0, rfc2217://host:port), or dir:PATH (write the
device filesystem into a folder that `roadedge sim boot` can run).
"""
from __future__ import annotations

import argparse
import sys

from rich.console import Console

from host_tools.flash.flasher import FlashOptions, flash
from host_tools.flash.report import print_problems, summary_lines


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--board", required=True, metavar="FILE", help="board config (board_configs/*.json)")
    p.add_argument("--port", required=True, help="serial device, mpremote connect string, or dir:PATH")
    p.add_argument("--secrets", help="secrets folder or file (default: secrets/ or $ROADEDGE_SECRETS)")
    p.add_argument("--broker", metavar="URL", help="override broker.url (mqtt://host:port or mqtts://host:port)")
    p.add_argument("--source", action="store_true",
                   help="ship .py sources instead of .mpy (for booting a dir: folder under CPython)")
    w = p.add_mutually_exclusive_group()
    w.add_argument("--wait-online", dest="wait", action="store_true", default=None,
                   help="wait for the device to report online (default for serial ports)")
    w.add_argument("--no-wait", dest="wait", action="store_false", help="do not start it / wait for online")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for online (default 60)")
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--firmware", metavar="DIR", help="firmware tree to flash (main.py + lib/), e.g. an unpacked "
                                                     "release; default: this checkout's firmware/")
    p.add_argument("--deploy", choices=("auto", "romfs", "mpy"),
                   help="ROMFS image or .mpy files (default: the board config's \"deploy\", else auto = ROMFS "
                        "when the board has a partition)")
    p.add_argument("--force", action="store_true",
                   help="flash even when the role does not fit the board's heap (warned)")
    p.add_argument("--ca", help="CA (PEM) to check an mqtts:// broker (default: secrets/tls/ca.pem)")
    p.add_argument("--user", help="MQTT user for watching (default: the provisioned technician)")
    p.add_argument("--password", help="MQTT password for --user")


def options(args) -> FlashOptions:
    return FlashOptions(secrets=args.secrets, broker_url=args.broker, source=args.source, wait_online=args.wait,
                        timeout_s=args.timeout, baud=args.baud, ca=args.ca, user=args.user,
                        password=args.password, firmware=args.firmware,
                        deploy=args.deploy, force=args.force)


def run(args) -> int:
    err = Console(stderr=True)
    res = flash(args.board, args.port, options(args), err)
    print_problems(res, err)
    Console().print(summary_lines(res), highlight=False)
    if res.ok and res.online is None and args.port.startswith("dir:"):
        print(f"device filesystem in {args.port[4:]}: boot it with `roadedge sim boot {args.port[4:]}`")
    return 0 if res.ok else 1


if __name__ == "__main__":
    from host_tools.cli import main

    sys.exit(main(["flash", *sys.argv[1:]]))
