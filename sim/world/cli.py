"""`roadedge sim run SCENARIO`: the world engine on the CPython runtime, as fast as it goes (or paced).

    roadedge sim run sim/scenarios/demo.json --record run.jsonl --report report/
    roadedge sim run sim/scenarios/seed-city.json --until 3600 --report city/
"""
from __future__ import annotations

import argparse
import sys
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", help="scenario file (docs/scenarios.md)")
    p.add_argument("--seed", type=int, help="override the scenario's seed")
    p.add_argument("--until", type=float, help="simulated seconds (default: the scenario's duration_s)")
    p.add_argument("--record", help="write every device message to this file (`roadedge record` format)")
    p.add_argument("--report", help="write the report (PNG + index.html) into this folder")
    p.add_argument("--speed", type=float, help="pace at this multiple of real time (default: as fast as it goes)")
    p.add_argument("--no-traffic", action="store_true", help="no vehicles (fog, devices and patrols only)")
    p.add_argument("--faithful", metavar="WHICH",
                   help="run these devices as real firmware processes at real time: signs, trackers, beacons "
                        "and/or device ids, comma-separated (needs --broker)")
    p.add_argument("--runtime", choices=("micropython", "cpython"), default="micropython",
                   help="process runtime for --faithful devices")
    p.add_argument("--broker", help="broker URL the --faithful devices use")
    p.add_argument("--workdir", help="device folders for --faithful (default: a temporary folder)")


def run(args) -> int:
    from host_tools.deployment.scenario import ScenarioError, load
    from sim.world import World
    from sim.world.sinks import RecordingSink

    try:
        sc = load(args.scenario)
    except ScenarioError as e:
        print(e, file=sys.stderr)
        return 2
    faithful = None
    if args.faithful:
        if not args.broker:
            print("--faithful needs --broker (the firmware processes talk MQTT)", file=sys.stderr)
            return 2
        args.speed = 1.0  # device clocks are wall clocks
        w = World(sc, seed=args.seed, traffic=not args.no_traffic, epoch_unix=int(time.time()))
    else:
        w = World(sc, seed=args.seed, traffic=not args.no_traffic)
    rec = RecordingSink(args.record) if args.record else None
    if rec:
        w.sinks.append(rec)
    if args.faithful:
        import tempfile

        from sim.world.faithful import Faithful, select

        try:
            ids = select(w, args.faithful)
        except ValueError as e:
            print(e, file=sys.stderr)
            return 2
        work = args.workdir or tempfile.mkdtemp(prefix="roadedge-world-")
        print(f"booting {len(ids)} devices as {args.runtime} processes in {work} ...", file=sys.stderr)
        faithful = Faithful(w, ids, args.broker, work, args.runtime).start()
    until = args.until or sc.duration_s
    print(f"{sc.name}: {len(w.beacons)} beacons, {len(w.signs)} signs, {len(w.trackers)} trackers, "
          f"{len(w.zones)} zone controllers; {until:.0f} s simulated (seed {w.seed})", file=sys.stderr)
    t0 = time.monotonic()
    last = [0.0]
    tty = sys.stderr.isatty()

    def tick(world) -> None:
        if args.speed:
            ahead = world.t / args.speed - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
        now = time.monotonic()
        if tty and now - last[0] >= 0.5:
            last[0] = now
            print("\r" + status_line(world, now - t0, until), end="", file=sys.stderr, flush=True)

    try:
        w.run(until, tick)
    except KeyboardInterrupt:
        print("\nstopped", file=sys.stderr)
    finally:
        if faithful is not None:
            faithful.stop()
        if rec:
            rec.close()
    wall = time.monotonic() - t0
    print(("\r" if tty else "") + status_line(w, wall, until), file=sys.stderr)
    if args.record:
        print(f"recording: {args.record}", file=sys.stderr)
    if args.report:
        from sim import run_report

        print(f"report: {run_report.write(w, args.report)}", file=sys.stderr)
    return 0


def status_line(w, wall_s: float, until: float) -> str:
    """One line a person can follow: time, pace, fog, lamps, signs, traffic, patrols."""
    from sim.world.inprocess_devices import RED

    mono = int(w.t * 1000)
    modes = {}
    red = 0
    posts = w.all_beacons()
    for b in posts:
        m = b.mode(mono)
        modes[m] = modes.get(m, 0) + 1
        red += b.lamp(mono) == RED
    fogged = sum(1 for b in posts if (b.vis() or 1e9) < 200)
    signs = " ".join(f"{s.id}:{s.shown()[0] or '-'}" for s in w.signs[:6])
    cars = sum(1 for _ in w.traffic.all()) if w.traffic else 0
    pace = w.t / wall_s if wall_s > 0 else 0
    return (f"t={w.t:6.0f}/{until:.0f}s x{pace:5.1f} | fog<200m at {fogged} posts | "
            f"anti-rear-end {modes.get('anti_rear_end', 0)} (red {red}) guidance {modes.get('guidance', 0)} "
            f"alarm {modes.get('section_alarm', 0)} | signs {signs} | {cars} vehicles | "
            f"{sum(len(t.reports) for t in w.trackers)} patrol reports   ")
