"""`roadedge logs DEVICE`: follow a device's log (and its status and events) over MQTT."""
from __future__ import annotations

import argparse
import json
import time

from rich.console import Console

from host_tools.config.secrets import Secrets
from host_tools.fleet import connect as broker
from roadedge import wire

LEVELS = "DIWE"
STYLE = {"D": "dim", "I": "", "W": "yellow", "E": "bold red"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("device", help="device id (or + for every device)")
    p.add_argument("--level", default="D", choices=list(LEVELS), help="lowest level shown (default D)")
    p.add_argument("--events", action="store_true", help="also show events and acks")
    p.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("--count", type=int, help="stop after this many log lines")
    broker.add_broker_arguments(p)


def format_line(topic: str, payload: bytes) -> tuple[str, str, str]:
    """(device, level, text) for one message on re/<id>/{log,status,event,ack}."""
    parts = topic.split("/")
    dev, kind = (parts[1], parts[2]) if len(parts) >= 3 else ("?", topic)
    text = payload.decode(errors="replace")
    if kind == "status":
        return dev, "W" if text != "online" else "I", f"** {text} **"
    try:
        obj = json.loads(text)
    except ValueError:
        return dev, "W", f"(not JSON) {text[:200]}"
    if kind == "log" and isinstance(obj, dict):
        ts = obj.get("ts")
        when = time.strftime("%H:%M:%S", time.gmtime(ts)) if isinstance(ts, (int, float)) and ts > 0 else "--:--:--"
        lvl = obj.get("lvl") if obj.get("lvl") in LEVELS else "I"
        return dev, lvl, f"{when} {lvl} {obj.get('msg', '')}"
    return dev, "I", f"{kind}: {text[:300]}"


def run(args) -> int:
    out, err = Console(highlight=False), Console(stderr=True)
    try:
        secrets = Secrets.load(args.secrets)
        c = broker.connect(broker.broker_url(args), args.user, args.password, args.ca, secrets, name="logs")
    except (broker.BrokerError, ValueError) as e:
        err.print(f"[red]{e}[/]")
        return 1
    kinds = [wire.LOG, wire.STATUS] + ([wire.EVENT, wire.ACK] if args.events else [])
    try:
        sub = broker.Subscription(c, [wire.topic(args.device, k) for k in kinds])
        err.print(f"[dim]following re/{args.device}/{{{','.join(kinds)}}} (Ctrl-C to stop)[/]")
        deadline = time.monotonic() + args.duration if args.duration else None
        shown = 0
        while deadline is None or time.monotonic() < deadline:
            m = sub.get(0.5 if deadline is None else min(0.5, deadline - time.monotonic()))
            if m is None:
                continue
            dev, lvl, text = format_line(m[0], m[1])
            if LEVELS.index(lvl) < LEVELS.index(args.level):
                continue
            prefix = f"{dev} " if args.device == "+" else ""
            out.print(f"{prefix}{text}", style=STYLE.get(lvl, ""), markup=False)
            if m[0].endswith("/log"):
                shown += 1
                if args.count and shown >= args.count:
                    break
    except KeyboardInterrupt:
        pass
    finally:
        broker.close(c)
    return 0
