"""`roadedge devices`: every device the broker knows, from the retained re/<id>/status and info
(plus telemetry heard while listening): online/offline, role, board, firmware, last seen."""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass

from rich.console import Console
from rich.table import Table

from host_tools.config.secrets import Secrets
from host_tools.fleet import connect as broker
from roadedge import wire


@dataclass
class DeviceRow:
    id: str
    status: str = "?"
    role: str = ""
    board: str = ""
    fw: str = ""
    boot: str = ""
    last_seen: float | None = None  # unix s: newest device timestamp heard (info/tele/log), or when heard live


def collect(sub: broker.Subscription, listen_s: float) -> dict[str, DeviceRow]:
    """Fold the messages heard within listen_s into one row per device (pure: testable without a broker)."""
    rows: dict[str, DeviceRow] = {}
    deadline = time.monotonic() + listen_s
    while True:
        m = sub.get(deadline - time.monotonic())
        if m is None:
            return rows
        fold(rows, *m)


def fold(rows: dict[str, DeviceRow], topic: str, payload: bytes, retained: bool, now: float | None = None) -> None:
    parsed = wire.parse(topic)
    if parsed is None or parsed[0] not in wire.DEVICE_KINDS:
        return
    kind, dev, _ = parsed
    row = rows.setdefault(dev, DeviceRow(dev))
    if not retained:
        row.last_seen = now if now is not None else time.time()
    if kind == "status":
        row.status = payload.decode(errors="replace")[:20]
        return
    try:
        obj = json.loads(payload)
    except ValueError:
        return
    if not isinstance(obj, dict):
        return
    ts = obj.get("ts")
    if isinstance(ts, (int, float)) and ts > 0 and (row.last_seen is None or ts > row.last_seen):
        row.last_seen = float(ts)
    if kind == "info":
        row.role, row.board = str(obj.get("role", "")), str(obj.get("board", ""))
        row.fw, row.boot = str(obj.get("fw", "")), str(obj.get("boot", ""))


def ago(ts: float | None, now: float) -> str:
    if ts is None:
        return "-"
    s = max(0, now - ts)
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= n:
            return f"{s / n:.0f} {unit} ago"
    return f"{s:.0f} s ago"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--listen", type=float, default=3.0, help="seconds to listen for live telemetry (default 3)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--watch", action="store_true", help="keep the table live until Ctrl-C")
    broker.add_broker_arguments(p)


def run(args) -> int:
    err = Console(stderr=True)
    try:
        secrets = Secrets.load(args.secrets)
        c = broker.connect(broker.broker_url(args), args.user, args.password, args.ca, secrets, name="devices")
    except (broker.BrokerError, ValueError) as e:
        err.print(f"[red]{e}[/]")
        return 1
    try:
        sub = broker.Subscription(c, [wire.every(k) for k in (wire.STATUS, wire.INFO, wire.STATE, wire.TELE)])
        if args.watch:
            return _watch(sub)
        with err.status(f"listening {args.listen:.0f} s for devices"):
            rows = collect(sub, args.listen)
    finally:
        broker.close(c)
    if args.json:
        print(json.dumps([asdict(r) for r in sorted(rows.values(), key=lambda r: r.id)], indent=2))
        return 0
    Console().print(table(rows, time.time()))
    return 0


def table(rows: dict[str, DeviceRow], now: float) -> Table:
    t = Table(title=f"{len(rows)} devices, {sum(r.status == 'online' for r in rows.values())} online")
    for col in ("device", "status", "role", "board", "firmware", "boot", "last seen"):
        t.add_column(col)
    for r in sorted(rows.values(), key=lambda r: (r.status != "online", r.id)):
        st = "[green]online[/]" if r.status == "online" else f"[red]{r.status}[/]"
        t.add_row(r.id, st, r.role, r.board, r.fw, r.boot, ago(r.last_seen, now))
    return t


def _watch(sub: broker.Subscription) -> int:
    from rich.live import Live

    rows: dict[str, DeviceRow] = {}
    try:
        with Live(table(rows, time.time()), refresh_per_second=2) as live:
            while True:
                deadline = time.monotonic() + 0.5
                while (m := sub.get(deadline - time.monotonic())) is not None:
                    fold(rows, *m)
                live.update(table(rows, time.time()))
    except KeyboardInterrupt:
        return 0
