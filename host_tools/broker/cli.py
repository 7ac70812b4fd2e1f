"""`roadedge broker`: a managed Mosquitto, zero set-up, with the files a deployment uses.

    roadedge broker                                  # 127.0.0.1:1883, secrets/ provisioned if new
    roadedge broker --listen 127.0.0.1:0 --tls-port 8883 --secrets var/secrets
    roadedge broker --zone zones/F1.json --zone zones/F2.json     # accounts controller-F1, controller-F2

It provisions the secrets folder (service accounts; devices given as arguments; one account per zone
controller for the zone configs given with --zone), writes the
accounts file (host_tools.provision: passwords, access rules, each account bound to the client id
of its name) and runs Mosquitto as a child process with it and no anonymous access. Ctrl-C stops it.
A deployment runs the same files with the rendered mosquitto.conf (`roadedge provision`).
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path


def parse_listen(s: str) -> tuple[str, int]:
    host, sep, port = s.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {s!r}")
    return host or "127.0.0.1", int(port)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("devices", nargs="*", metavar="DEVICE", help="device ids to provision (new ones get secrets)")
    p.add_argument("--zone", action="append", default=[], metavar="ZONE.json",
                   help="zone configs: each zone's controller gets its own account controller-<zone> (as with "
                        "`roadedge provision --zone`)")
    p.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 1883), metavar="HOST:PORT",
                   help="plain listener (default 127.0.0.1:1883; port 0 = any free port)")
    p.add_argument("--tls-port", type=int, help="also a TLS listener on this port (the provisioned CA)")
    p.add_argument("--secrets", help="secrets folder (default: secrets/ or $ROADEDGE_SECRETS)")
    p.add_argument("--workdir", type=Path, help="where passwd, acl, config and log go (default: <secrets>/broker)")


def run(args: argparse.Namespace) -> int:
    from host_tools.broker import conf as broker_conf
    from host_tools.broker.mosquitto import Mosquitto
    from host_tools.config.secrets import Secrets, SecretsError
    from host_tools.controller.zone import ZoneConfig
    from host_tools.provision.core import provision

    try:
        secrets = Secrets.load(args.secrets)
        if secrets.root is None:
            print("roadedge broker needs a secrets folder, not a single file", file=sys.stderr)
            return 2
        work = args.workdir or secrets.root / "broker"
        res = provision(secrets, list(args.devices), out=work,
                        tls_hosts=["localhost", "127.0.0.1"] if args.tls_port else None,
                        zones=[ZoneConfig.load(z) for z in args.zone])
    except (ValueError, SecretsError, OSError) as e:
        print(f"roadedge broker: provisioning failed: {e}", file=sys.stderr)
        return 1
    host, port = args.listen
    try:
        extra = broker_conf.auth_lines(res.files["dynsec_file"])
    except FileNotFoundError as e:
        print(f"roadedge broker: {e}", file=sys.stderr)
        return 1
    if args.tls_port:
        extra += broker_conf.tls_listener_lines(args.tls_port, work / "ca.pem", work / "server.pem",
                                                work / "server.key")
    # persistent like the shipped config: a restart (after provisioning a new device, say) keeps every
    # session's queued QoS 1 messages for the services that are down
    broker = Mosquitto(work / "run", port=port or None, extra_conf=extra, host=host, persist_dir=work / "data")
    try:
        broker.start()
    except (RuntimeError, FileNotFoundError) as e:
        print(f"broker failed to start on {host}:{port}: {e}", file=sys.stderr)
        return 1
    tls = f", TLS on {args.tls_port}" if args.tls_port else ""
    print(f"roadedge broker (mosquitto) listening on {broker.url}{tls}  [accounts {res.files['dynsec_file']}]  "
          "Ctrl-C stops", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            if broker.proc is None or broker.proc.poll() is not None:
                print(f"mosquitto exited: see {broker.log_path}", file=sys.stderr)
                return 1
    finally:
        broker.stop()
        print("broker stopped", flush=True)
    return 0
