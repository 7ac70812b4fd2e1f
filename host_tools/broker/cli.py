"""`roadedge broker`: the embedded amqtt broker, zero set-up.

    roadedge broker                                  # anonymous, 127.0.0.1:1883
    roadedge broker --listen 0.0.0.0:1883 --passwd users.json --acl acl.json
    roadedge broker --passwd users.json --add-user vsl-k012-n   # asks for the password
    roadedge broker --acl acl.json --write-default-acl ops      # the device ACL of docs/topics.md

Production deployments use Mosquitto with the config in host_tools/broker/conf.
"""
from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import signal
import sys
from pathlib import Path


def parse_listen(s: str) -> tuple[str, int]:
    host, sep, port = s.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {s!r}")
    return host or "127.0.0.1", int(port)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 1883), metavar="HOST:PORT",
                   help="address to listen on (default 127.0.0.1:1883; port 0 = any free port)")
    p.add_argument("--passwd", metavar="FILE", help="JSON password file; without it clients are anonymous")
    p.add_argument("--acl", metavar="FILE", help="JSON topic ACL file ({user} patterns)")
    p.add_argument("--add-user", metavar="NAME", help="add or update NAME in --passwd and exit")
    p.add_argument("--password", help="with --add-user: the password (default: ask)")
    p.add_argument("--write-default-acl", nargs="*", metavar="OPS_USER",
                   help="write the device ACL (devices: own subtree only; OPS_USERs: everything) to --acl and exit")


def run(args: argparse.Namespace) -> int:
    from host_tools.broker import amqtt_broker as ab

    if args.add_user:
        if not args.passwd:
            print("--add-user needs --passwd FILE", file=sys.stderr)
            return 2
        pw = args.password or getpass.getpass(f"password for {args.add_user}: ")
        if not pw:
            print("empty password refused", file=sys.stderr)
            return 2
        ab.add_user(args.passwd, args.add_user, pw)
        print(f"{args.add_user} written to {args.passwd}")
        return 0
    if args.write_default_acl is not None:
        if not args.acl:
            print("--write-default-acl needs --acl FILE", file=sys.stderr)
            return 2
        Path(args.acl).write_text(json.dumps(ab.default_acl(tuple(args.write_default_acl)), indent=1) + "\n")
        print(f"device ACL written to {args.acl}")
        return 0
    for what, f in (("password file", args.passwd), ("ACL file", args.acl)):
        if f and not Path(f).is_file():
            print(f"{what} not found: {f}", file=sys.stderr)
            return 2
    host, port = args.listen

    async def serve() -> None:
        try:
            broker = await ab.start_embedded_broker(host, port, args.passwd, args.acl)
        except (OSError, ValueError) as e:
            print(f"broker failed to start on {host}:{port}: {e}", file=sys.stderr)
            raise SystemExit(1) from e
        auth = f"users from {args.passwd}" if args.passwd else "anonymous clients allowed"
        acl = f", ACL {args.acl}" if args.acl else ""
        print(f"roadedge broker (amqtt) listening on {broker.roadedge_url}  [{auth}{acl}]  Ctrl-C stops",
              flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)  # clean shutdown, no KeyboardInterrupt mid-task
            except (NotImplementedError, RuntimeError):
                pass
        try:
            await stop.wait()
        finally:
            await broker.shutdown()
            print("broker stopped", flush=True)

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    return 0
