"""`roadedge demo` (what `make demo` runs): the demo deployment, live, with the dispatcher console.

On a fresh clone, with nothing else set up, it starts:
- a managed Mosquitto on a free port, with a password file, the device ACL and client ids bound to accounts;
- credentials for every demo device, provisioned into the work dir (`var/demo/secrets`), so the console
  signs its commands with the devices' own keys;
- the demo scenario (sim/scenarios/demo.json: a 2 km fog section with beacons both sides, 3 signs and
  their zone controller, 10 patrol motorcycles, an incident with a section alarm, an SOS) on the world
  engine, paced at --speed times real time: at real time the signs and trackers are the real firmware
  under the micropython unix port (sim.world.faithful), the 136 beacons run in-process (the firmware's
  beacon logic); faster than real time everything runs in-process;
- the dispatcher console, with a supervisor account whose generated password is printed once;
- each zone controller's audit log (who decided what and why) in `var/demo/controller/<zone>.db`.
The loops close as in the field: the console's signed commands reach the in-process trackers (a dispatched
rider accepts, rides to the scene by road and reports on scene) and its signed operator actions the zone's
real controller (mode, approve, veto, override), both verified; the scripted SOS comes from its tracker and
the scripted incident is entered at the dispatch desk (user "desk") when it is reported.
A live status line follows fog, lamps, signs, traffic and patrols. Ctrl-C stops everything cleanly.
"""
from __future__ import annotations

import argparse
import secrets as pysecrets
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

from roadedge import wire

REPO = Path(__file__).resolve().parent.parent
SCENARIO = REPO / "sim" / "scenarios" / "demo.json"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", default=str(SCENARIO), help="scenario file (default: the 2 km demo)")
    p.add_argument("--duration", type=float, help="stop after this many wall-clock seconds (default: the scenario's)")
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second (default 1)")
    p.add_argument("--http", default="127.0.0.1:8080", help="console HOST:PORT (port 0 = any free port)")
    p.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    p.add_argument("--tiles", help="tile server URL template for the console's map (default: the deployment's own "
                   "road drawing), e.g. http://tiles.local/{z}/{x}/{y}.png")
    p.add_argument("--workdir", default=str(REPO / "var" / "demo"), help="work dir (broker, credentials, databases)")
    p.add_argument("--quick", action="store_true",
                   help="shortened run for tests: fog and events compressed (10x speed), 60 s unless --duration")
    p.add_argument("--seed", type=int, help="override the scenario's seed")
    p.add_argument("--faithful", default=None, metavar="WHICH",
                   help="devices run as real firmware processes (micropython): signs, trackers, beacons or ids, "
                        "comma-separated; default signs,trackers at --speed 1, none when faster ('' = none)")


class _Broker:
    """A managed Mosquitto with the demo's own password file and ACL, the provisioned ones
    (devices write only their own subtree and read only their own commands, docs/topics.md;
    the console reads everything and writes only commands and operator actions) plus two
    accounts for the simulated world: its publisher (standing in for the in-process devices
    and the zone controller, so it may write everything) and the observer of the firmware
    processes. Client ids are bound to user names, as in a deployment."""

    WORLD, OBSERVER = "sim-world", "sim-observer"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.handle = None
        self.url = ""

    def start(self, users: dict[str, str]) -> str:
        from host_tools.broker import conf as broker_conf
        from host_tools.broker.mosquitto import Mosquitto
        from host_tools.provision import acl as acl_rules
        from host_tools.provision import dynsec

        d = self.workdir / "mosquitto"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        devices = [u for u in users if u not in acl_rules.SERVICE_ROLES and u not in (self.WORLD, self.OBSERVER)]
        services = [u for u in users if u in acl_rules.SERVICE_ROLES]
        rules = acl_rules.rules(devices, services)
        rules.update({self.WORLD: (("#",), ("#",)), self.OBSERVER: (("#",), ())})
        accounts = dynsec.write(d / dynsec.FILE_NAME, users, rules)
        self.handle = Mosquitto(d, extra_conf=broker_conf.auth_lines(accounts)).start()
        self.url = self.handle.url
        return self.url

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.stop()


def _provision(workdir: Path, ids: list[str]) -> Path:
    from host_tools.config.secrets import Secrets
    from host_tools.provision.core import provision

    sdir = workdir / "secrets"
    sdir.mkdir(parents=True, exist_ok=True)
    sec = Secrets.load(sdir)
    provision(sec, devices=[i for i in ids if i not in sec.devices], out=workdir / "broker")
    return sdir


def _start_clock(w) -> None:
    """The world's wall clock starts now that the devices are up (booting took seconds of real time), so
    fixes are fresh from the first one."""
    w.epoch = time.time() - w.t
    for tr in w.trackers:
        tr.gnss.start_unix = w.epoch


DESK = {"user": "desk", "role": "dispatcher"}  # who enters a reported incident in the console (audited)


def _close_loops(w, client, svc, sdir: Path, work: Path) -> None:
    """The console acts on the world as on the field: its signed commands reach the in-process trackers
    and its signed operator actions the zones' real controllers (both verified, over the demo's broker);
    a scripted incident is reported to the dispatch desk and entered in the console."""
    from host_tools.fleet.connect import Subscription
    from host_tools.keys import Keyring

    state = work / "world"
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    w.verify_with(Keyring.load(sdir), state, clock=time.time)  # the console signs by the wall clock
    sub = Subscription(client, w.command_filters(), qos=1)

    def from_bus(world) -> None:
        while (m := sub.get(0)) is not None:
            topic, payload, retained = m
            if not retained:  # a command left on the broker is nobody acting now
                world.receive(topic, payload)

    def reported(ev: dict) -> None:
        lat, lon = w.sc.roads[ev["road"]].latlon_at_km(float(ev["km"]))
        text = f"{ev.get('id', '')} {ev.get('kind', '')}: {ev.get('text', '')} ({ev['road']} km {ev['km']})"
        svc.console.create_incident(DESK, lat, lon, int(ev.get("priority", 3)), text.strip())

    w.hooks.append(from_bus)
    w.on_incident = reported


def run(args) -> int:
    from host_tools.dispatch.service import DispatchService
    from host_tools.dispatch.users import Users
    from host_tools.deployment.scenario import ScenarioError, load
    from sim.world import World
    from sim.world.cli import status_line
    from sim.world.sinks import MqttSink

    speed = 10.0 if args.quick and args.speed == 1.0 else args.speed
    duration = args.duration or (60.0 if args.quick else None)
    try:
        sc = load(args.scenario)
    except ScenarioError as e:
        print(e, file=sys.stderr)
        return 2
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    out = sys.stdout
    audits = work / "controller"  # each zone controller's audit log, as `roadedge controller --db` keeps it
    shutil.rmtree(audits, ignore_errors=True)  # a fresh run: no standing decisions from the last one
    w = World(sc, seed=args.seed, epoch_unix=int(time.time()),  # the console judges fix ages by the wall clock
              audit_dir=audits)
    ids = [d.id for d in (*w.beacons, *w.signs, *w.trackers)]
    print(f"roadedge demo: {sc.name} ({len(w.beacons)} beacons, {len(w.signs)} signs + zone controller, "
          f"{len(w.trackers)} patrols) at {speed:g}x real time", file=out, flush=True)
    broker = _Broker(work)
    svc = None
    client = None
    faithful = None
    stop = threading.Event()
    which = args.faithful if args.faithful is not None else ("signs,trackers" if speed == 1.0 else "")
    if which and speed != 1.0:
        print("--faithful runs at real time only (--speed 1)", file=sys.stderr)
        return 2
    try:
        from host_tools.config.secrets import Secrets
        from host_tools.recording.mqttconn import connect_wait, make_client
        from sim.world.faithful import select

        sdir = _provision(work, ids)
        print(f"credentials: {len(ids)} devices provisioned in {sdir}", file=out, flush=True)
        sec = Secrets.load(sdir)
        firmware_ids = select(w, which) if which else []
        world_pw, observer_pw = pysecrets.token_urlsafe(16), pysecrets.token_urlsafe(16)
        dispatcher_pw = sec.services["dispatcher"]["mqtt_password"]
        technician_pw = sec.services["technician"]["mqtt_password"]
        url = broker.start({_Broker.WORLD: world_pw, _Broker.OBSERVER: observer_pw, "dispatcher": dispatcher_pw,
                            "technician": technician_pw,
                            **{i: sec.devices[i]["mqtt_password"] for i in firmware_ids}})
        print(f"broker: {url} (mosquitto; accounts in {work / 'mosquitto'})", file=out, flush=True)
        print(f"controller audit: {', '.join(str(audits / (z.id + '.db')) for z in w.zones)} (SQLite)", file=out,
              flush=True)
        users = work / "users.json"
        users.unlink(missing_ok=True)
        password = pysecrets.token_urlsafe(12)
        Users(users).add("supervisor", "supervisor", password)
        db = work / "dispatch.db"
        for p in work.glob("dispatch.db*"):
            p.unlink()
        host, _, port = args.http.rpartition(":")
        svc = DispatchService(url, db, users, (host or "127.0.0.1", int(port)), args.scenario, str(sdir),
                              tile_url=args.tiles, credentials=("dispatcher", dispatcher_pw))
        svc.start()
        print(f"console: {svc.url}  login: supervisor  password: {password}", file=out, flush=True)
        if not args.no_browser:
            import webbrowser

            threading.Thread(target=webbrowser.open, args=(svc.url,), daemon=True).start()

        client, b = make_client(url, "roadedge-demo-world", user=_Broker.WORLD, password=world_pw)
        client.max_queued_messages_set(0)
        connect_wait(client, b)
        w.sinks.append(MqttSink(client))
        if firmware_ids:
            from host_tools.keys import Keyring
            from sim.world.faithful import Faithful

            print(f"booting {len(firmware_ids)} devices as micropython firmware processes ...", file=out, flush=True)
            faithful = Faithful(w, firmware_ids, url, work / "devices", keyring=Keyring.load(sdir),
                                observer=(_Broker.OBSERVER, observer_pw)).start()
            print(f"firmware up: {', '.join(firmware_ids)}", file=out, flush=True)
        _close_loops(w, client, svc, sdir, work)  # for what still runs in-process (firmware listens itself)
        _start_clock(w)
        print(f"technician: roadedge devices --broker {url} --secrets {sdir}   (also logs DEVICE, selftest DEVICE; "
              f"user technician)", file=out, flush=True)
        try:
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
        except ValueError:
            pass
        t0 = time.monotonic()
        until = sc.duration_s if duration is not None else float("inf")  # runs until Ctrl-C
        tty = out.isatty()
        last = 0.0
        while w.t < until and not stop.is_set():
            w.step()
            if w.t % 1.0 < w.dt:  # the broker time beacon, as the controller publishes it
                client.publish(wire.TIME_TOPIC, f'{{"t":{int(w.unix() * 1000)}}}')
            now = time.monotonic()
            if duration is not None and now - t0 >= duration:
                break
            ahead = w.t / speed - (now - t0)
            if ahead > 0:
                stop.wait(ahead)
            if now - last >= (0.5 if tty else 5.0):
                last = now
                line = status_line(w, now - t0, until)
                print(("\r" + line) if tty else line, end="" if tty else "\n", file=out, flush=True)
        print(("\n" if tty else "") + "demo finished" + (" (time up)" if w.t < until else ""), file=out, flush=True)
    except KeyboardInterrupt:
        print("\nstopping", file=out, flush=True)
    finally:
        if faithful is not None:
            faithful.stop()
        if client is not None:
            client.loop_stop()
            client.disconnect()
        if svc is not None:
            svc.stop()
        broker.stop()
    print("demo stopped: broker, console and devices are down", file=out, flush=True)
    return 0
