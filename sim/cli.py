"""`roadedge sim`: run simulated boards.

    roadedge sim boot --broker mqtt://127.0.0.1:1883 board_configs/sim-*.json
    roadedge sim boot /tmp/dev            # a folder written by `roadedge flash --port dir:/tmp/dev`

Each device is a real firmware process (MicroPython unix port by default) in
its own folder under --workdir, its hardware served by one HardwareServer; a
live table shows each device's process, hardware link and MQTT status. Ctrl-C
stops everything cleanly.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import tempfile
import time
from pathlib import Path

from host_tools import fw
from roadedge import wire


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="sim_command", metavar="SUBCOMMAND")
    b = sub.add_parser("boot", help="boot sim devices from board configs or flashed device folders",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("configs", nargs="+", metavar="CONFIG",
                   help="board config JSON (board 'sim') or a device folder holding config.json")
    b.add_argument("--broker", help="broker URL for every device (default: each config's broker.url)")
    b.add_argument("--runtime", choices=fw.RUNTIMES, default="micropython")
    b.add_argument("--heap", help="MicroPython heap cap, e.g. 96wK (a 96 KiB board's heap in 32-bit words) or 256K "
                   "(bytes of this 64-bit build; default: the unix port's)")
    b.add_argument("--workdir", help="device folders go here (default: a temporary folder)")
    b.add_argument("--hw", default="127.0.0.1:0", help="hardware server address (default: a free local port)")
    b.add_argument("--secrets", help="secrets folder for !secret values (default: secrets/ or $ROADEDGE_SECRETS)")
    b.add_argument("--source", action="store_true",
                   help="run the firmware from source instead of compiled .mpy (micropython)")
    b.add_argument("--fresh", action="store_true", help="wipe each device's data/ first (a new board)")
    b.add_argument("--user", help="MQTT user for the status view (default: the provisioned technician)")
    b.add_argument("--password", help="MQTT password for the status view")
    b.add_argument("--for", dest="duration", type=float, help="stop after this many seconds")
    # the world engine, replay and hardware in the loop (sim.world.cli, sim.replay_diff, sim.hil)
    for name, mod, help_ in _MORE:
        m = __import__(mod, fromlist=["add_arguments"])
        m.add_arguments(sub.add_parser(name, help=help_, description=m.__doc__,
                                       formatter_class=argparse.RawDescriptionHelpFormatter))


_MORE = (("run", "sim.world.cli", "run a scenario on the CPython runtime (record, report)"),
         ("replay", "sim.replay_diff", "replay a recording through the firmware logic and list differences"),
         ("attach", "sim.hil", "a real board on a serial port in place of one simulated device"))


def run(args) -> int:
    for name, mod, _help in _MORE:
        if args.sim_command == name:
            return int(__import__(mod, fromlist=["run"]).run(args) or 0)
    if args.sim_command != "boot":
        print("usage: roadedge sim boot [--broker URL] CONFIG...  (see roadedge sim boot --help)")
        return 2
    try:
        return asyncio.run(_boot(args))
    except KeyboardInterrupt:
        return 130


class _Watch:
    """MQTT view of the devices (status, last telemetry), best effort."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self.status: dict[str, str] = {}
        self.tele: dict[str, dict] = {}
        self.seen: dict[str, float] = {}
        self.client = None
        self.error = ""

    def start(self, url: str, user, password, secrets) -> None:
        from host_tools.config.secrets import Secrets
        from host_tools.fleet import connect as broker

        try:
            sec = Secrets.load(secrets)
        except Exception:
            sec = None
        try:
            c = broker.connect(url, user, password, secrets=sec, name="sim-boot", timeout=5)
        except Exception as e:  # the fleet runs without the view
            self.error = str(e)
            return
        self.client = c

        def on_message(_c, _u, m):
            parsed = wire.parse(m.topic)
            if parsed is None:
                return
            kind, dev, _ = parsed
            self.seen[dev] = time.monotonic()
            if kind == "status":
                self.status[dev] = m.payload.decode(errors="replace")
            elif kind == "tele":
                try:
                    self.tele[dev] = json.loads(m.payload)
                except ValueError:
                    pass

        c.on_message = on_message
        for i in self.ids:
            c.subscribe(wire.topic(i, wire.STATUS), 1)
            c.subscribe(wire.topic(i, wire.TELE), 0)

    def close(self) -> None:
        if self.client is not None:
            from host_tools.fleet import connect as broker

            broker.close(self.client)


def _table(fleet, watch: _Watch):
    from rich.table import Table

    t = Table(title=f"roadedge sim: {len(fleet.devices)} device(s), hardware server {fleet.hw.addr}",
              caption="Ctrl-C stops" + (f"  |  status view: {watch.error}" if watch.error else ""))
    for col in ("device", "role", "process", "pid", "hw link", "mqtt", "up", "heap free", "restarts", "note"):
        t.add_column(col)
    for s in fleet.status():
        st = watch.status.get(s["id"], "?")
        tele = watch.tele.get(s["id"], {})
        colour = {"running": "green", "booting": "yellow", "restarting": "yellow", "failed": "red"}.get(s["state"], "")
        mq = {"online": "[green]online[/]", "offline": "[red]offline[/]"}.get(st, st)
        heap = tele.get("heap_free")
        t.add_row(s["id"], str(s["role"]), f"[{colour}]{s['state']}[/]" if colour else s["state"],
                  str(s["pid"] or "-"), "up" if s["hw"] else "-", mq,
                  f"{tele['up_s']} s" if "up_s" in tele else "-",
                  f"{heap // 1024} KiB" if isinstance(heap, int) and heap >= 0 else "-",
                  str(s["restarts"]), s["reason"])
    return t


async def _boot(args) -> int:
    from rich.console import Console
    from rich.live import Live

    from sim.boot import BootError, boot_devices
    from sim.hw import HardwareServer

    console = Console()
    # First of all: from here on Ctrl-C (or SIGTERM) only asks for a stop, which the code below
    # honours at every step, so devices that came up fast, or a Ctrl-C in the middle of booting,
    # still get the clean stop (each says offline, the hardware server closes).
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    host, _, port = args.hw.rpartition(":")
    if not host or not port.isdigit():
        console.print(f"[red]--hw must be host:port, got {args.hw!r}[/]")
        return 2
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="roadedge-sim-"))
    hw = await HardwareServer(host, int(port)).start()
    try:
        fleet = await boot_devices(args.configs, args.broker, workdir, runtime=args.runtime, heap=args.heap,
                                   hw=hw, secrets=args.secrets, compiled=False if args.source else None,
                                   fresh=args.fresh)
    except BootError as e:
        await hw.close()
        console.print(f"[red]cannot boot:[/]\n{e}")
        return 2
    except BaseException:
        await hw.close()
        raise
    console.print(f"device folders in {workdir} (console output: <folder>/console.log)")
    watch = _Watch(list(fleet.devices))
    code = 0
    try:
        if not stop.is_set():
            url = args.broker or next(iter(fleet.devices.values())).cfg.get("broker", {}).get("url")
            await asyncio.to_thread(watch.start, url, args.user, args.password, args.secrets)
            console.print(f"status view: {watch.error or url}; Ctrl-C stops", highlight=False)
        deadline = time.monotonic() + args.duration if args.duration else None
        with Live(_table(fleet, watch), console=console, refresh_per_second=2,
                  transient=not os.isatty(1)) as live:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), 0.5)
                except TimeoutError:
                    pass
                live.update(_table(fleet, watch))
                if deadline and time.monotonic() > deadline:
                    break
                if all(d.state == "failed" for d in fleet.devices.values()):
                    code = 1
                    break
    finally:
        console.print("stopping devices ...")
        await fleet.stop()
        await hw.close()
        watch.close()
        console.print(_table(fleet, watch))
    return code
