"""`roadedge record --broker URL --out FILE`: record every MQTT message, one JSON line each."""
from __future__ import annotations

import signal
import sys
import threading
import time

from .mqttconn import broker_options
from .recorder import Recorder


def add_arguments(p) -> None:
    from host_tools.fleet.connect import add_broker_arguments

    add_broker_arguments(p)
    p.add_argument("--out", required=True, help="recording file (JSON lines; '-' = stdout)")
    p.add_argument("--topic", action="append", help="topic filter (repeatable; default '#')")
    p.add_argument("--duration", type=float, default=0, help="stop after this many seconds (0 = until Ctrl-C)")
    p.add_argument("--append", action="store_true", help="append to FILE instead of replacing it")


def run(args) -> int:
    out = sys.stdout if args.out == "-" else open(args.out, "a" if args.append else "w", encoding="utf-8")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    url, user, password, ca = broker_options(args)
    rec = Recorder(url, out, tuple(args.topic or ["#"]), user=user, password=password, ca=ca).start()
    status = sys.stderr
    print(f"recording {url} -> {args.out} (Ctrl-C to stop)", file=status)
    deadline = time.monotonic() + args.duration if args.duration > 0 else None
    try:
        while not stop.wait(1.0):
            rec.flush()
            if status.isatty():
                print(f"\r{rec.count} messages", end="", file=status, flush=True)
            if deadline and time.monotonic() >= deadline:
                break
    except KeyboardInterrupt:
        pass
    finally:
        rec.stop()
        if out is not sys.stdout:
            out.close()
    print(f"\nrecorded {rec.count} messages to {args.out}", file=status)
    return 0
