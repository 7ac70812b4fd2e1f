"""`roadedge dispatch`: ingest every device topic into SQLite and serve the dispatcher console.

  roadedge dispatch --broker mqtt://127.0.0.1:1883 --http 127.0.0.1:8080 --db dispatch.db \\
      --deployment sim/scenarios/demo.json
  roadedge dispatch --db dispatch.db --add-user alice --role supervisor   (asks for the password)
  roadedge dispatch --db dispatch.db --disable-user alice | --enable-user alice | --set-role alice --role viewer
      | --list-users   (a running console follows at once)
  roadedge dispatch --broker ... --db dispatch.db --shared-group ingest --no-web --client-id ingest-2
      (an extra ingest worker; --client-id gives it a persistent session so nothing is lost while it restarts)
"""
from __future__ import annotations

import getpass
import os
import signal
import sys
import threading
from pathlib import Path

from .users import ROLES, Users


def add_arguments(p) -> None:
    p.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="broker URL (mqtt://user:pass@host:port)")
    p.add_argument("--http", default="127.0.0.1:8080", help="HOST:PORT for the web console")
    p.add_argument("--db", default="dispatch.db", help="SQLite database (live state + history)")
    p.add_argument("--users", help="accounts file (default: users.json beside the database)")
    p.add_argument("--deployment", help="scenario/deployment JSON (roads for the map and routing)")
    p.add_argument("--keys", "--secrets", dest="keys",
                   help="secrets folder from `roadedge provision`: device command keys, the `dispatcher` broker "
                        "account and tls/ca.pem (default: $ROADEDGE_SECRETS or secrets/)")
    p.add_argument("--shared-group", help="MQTT shared subscription group: run several ingest workers")
    p.add_argument("--client-id", help="fixed MQTT client id: a persistent session, so the broker keeps QoS 1 "
                   "messages while this worker is down (give each worker its own)")
    p.add_argument("--ca", help="CA certificate (PEM) for an mqtts:// broker")
    p.add_argument("--tls-cert", help="serve the console over HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", help="private key (PEM) for --tls-cert")
    p.add_argument("--tiles", help="optional tile server URL template, e.g. http://tiles.local/{z}/{x}/{y}.png")
    p.add_argument("--no-web", action="store_true", help="ingest only (an extra worker)")
    p.add_argument("--add-user", metavar="NAME", help="create or update an account and exit")
    p.add_argument("--role", choices=ROLES, help="role for --add-user or --set-role")
    p.add_argument("--password-stdin", action="store_true", help="read the --add-user password from stdin")
    # account changes count at once in a running console (it reads the accounts file, not a copy)
    p.add_argument("--set-role", metavar="NAME", help="give an account the --role and exit")
    p.add_argument("--disable-user", metavar="NAME", help="disable an account (its sessions end at once) and exit")
    p.add_argument("--enable-user", metavar="NAME", help="enable a disabled account and exit")
    p.add_argument("--list-users", action="store_true", help="list the accounts and exit")


def users_path(args) -> Path:
    return Path(args.users) if args.users else Path(args.db).resolve().parent / "users.json"


def service_account(args) -> tuple[tuple[str, str] | None, str | None]:
    """The provisioned `dispatcher` broker account (ACL: read re/# and owntracks/#, write commands and
    re/ctl/+/op) and the site CA, unless the URL / --ca say otherwise."""
    from host_tools.config.secrets import Secrets

    try:
        sec = Secrets.load(args.keys)
    except Exception:
        return None, args.ca
    e = sec.services.get("dispatcher")
    creds = ("dispatcher", e["mqtt_password"]) if isinstance(e, dict) and e.get("mqtt_password") else None
    ca = args.ca
    if ca is None and sec.root is not None and (sec.root / "tls" / "ca.pem").exists():
        ca = str(sec.root / "tls" / "ca.pem")
    return creds, ca


def accounts(args) -> int | None:
    """The account options: None when there is none (serve), else the exit status. Each change is
    also written to the console's audit trail, as the operating-system user who made it."""
    users = Users(users_path(args))
    if args.list_users:
        if users.unreadable:
            print(f"error: {users.unreadable}", file=sys.stderr)
            return 2
        for u in users.list():
            print(f"{u['name']:24} {u['role']:11} {'disabled' if u['disabled'] else 'enabled'}")
        return 0
    name = args.add_user or args.set_role or args.disable_user or args.enable_user
    if not name:
        return None
    if (args.add_user or args.set_role) and not args.role:
        print("--add-user and --set-role need --role (viewer, dispatcher or supervisor)", file=sys.stderr)
        return 2
    try:
        by = f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no name for this uid (a bare container)
        by = f"cli:uid {os.getuid()}"
    try:
        if args.add_user:
            pw = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass(f"password for {name}: ")
            users.add(name, args.role, pw, by)
            op, done = "add", f"user {name} ({args.role}) saved in {users_path(args)}"
        elif args.set_role:
            users.set_role(name, args.role, by)
            op, done = "role", f"user {name} is now a {args.role}"
        else:
            users.set_disabled(name, bool(args.disable_user), by)
            op, done = ("disable", f"user {name} disabled") if args.disable_user else ("enable", f"user {name} enabled")
    except (ValueError, LookupError) as e:
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    from .store import Store

    store = Store(args.db)
    try:
        store.add_audit(by, None, f"account_{op}", name, {"role": args.role} if args.role else {}, "ok")
    finally:
        store.close()
    print(done)
    return 0


def run(args) -> int:
    rc = accounts(args)
    if rc is not None:
        return rc
    from .service import DispatchService

    http = None
    if not args.no_web:
        host, _, port = args.http.rpartition(":")
        http = (host or "127.0.0.1", int(port))
    if http and http[0] not in ("127.0.0.1", "localhost", "::1") and not args.tls_cert:
        print("warning: serving the console beyond this machine without --tls-cert: passwords and session "
              "cookies cross the network in clear", file=sys.stderr)
    up = users_path(args)
    if http and not up.exists():
        print(f"no accounts yet: create one with `roadedge dispatch --db {args.db} --add-user NAME --role supervisor`",
              file=sys.stderr)
        return 2
    from .assets import installed

    if http and not installed():
        print("warning: map library not installed: run `python -m host_tools.dispatch.assets`", file=sys.stderr)
    creds, ca = service_account(args)
    svc = DispatchService(args.broker, args.db, up, http, args.deployment, args.keys, args.shared_group, args.tiles,
                          client_id=args.client_id, ca=ca, credentials=creds,
                          tls=(args.tls_cert, args.tls_key or args.tls_cert) if args.tls_cert else None)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    svc.start()
    print(f"dispatch: ingesting {args.broker} into {args.db}" + (f"; console at {svc.url}" if http else ""),
          file=sys.stderr)
    tty = sys.stderr.isatty()
    try:
        while not stop.wait(1.0):
            if tty:
                s = svc.ingest.stats
                print(f"\r{s['received']} received, {s['stored']} stored, {s['dupes']} duplicates, "
                      f"{s['rejected']} rejected   ", end="", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        svc.stop()
    print("\ndispatch stopped", file=sys.stderr)
    return 0
