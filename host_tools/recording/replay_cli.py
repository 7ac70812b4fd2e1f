"""`roadedge replay FILE --broker URL --speed X`: publish a recording with its timing."""
from __future__ import annotations

import sys

from .fileformat import BadLine, read
from .mqttconn import broker_options
from .player import MQTTPublisher, replay


def add_arguments(p) -> None:
    p.add_argument("file", help="recording made by `roadedge record`")
    from host_tools.fleet.connect import add_broker_arguments

    add_broker_arguments(p)
    p.add_argument("--speed", type=float, default=1.0, help="time factor (2 = twice as fast; 0 = no waiting)")
    p.add_argument("--no-retain", action="store_true", help="publish every message without the retain flag")


def run(args) -> int:
    url, user, password, ca = broker_options(args)
    pub = MQTTPublisher(url, user=user, password=password, ca=ca)
    tty = sys.stderr.isatty()

    def progress(n, m):
        if tty and n % 50 == 0:
            print(f"\r{n} messages replayed", end="", file=sys.stderr, flush=True)

    def publish(m):
        if args.no_retain and m.retain:
            from dataclasses import replace

            m = replace(m, retain=False)
        pub(m)

    try:
        n = replay(read(args.file), publish, args.speed, progress=progress)
    except BadLine as e:
        print(f"\n{args.file}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pub.close()
        return 130
    pub.close()
    print(f"\nreplayed {n} messages from {args.file} to {url}", file=sys.stderr)
    return 0
