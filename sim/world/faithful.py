"""The faithful runtime: chosen devices of a World run as real firmware processes.

Each chosen device boots from its board's sim config (board_configs/sim-<role>.json) with the scenario's id,
as a `micropython` process (compiled .mpy, as a board gets it) or a CPython process, its hardware served by
a sim.hw HardwareServer. The world drives its peripherals instead of stepping its logic in-process:
- beacon: the virtual visibility meter answers the firmware's polls with the fog at the post; each simulated
  vehicle passing the post is a radar speed + detector pulse (BeaconIO);
- sign: the controller's signed commands reach it over MQTT with the sign's own key; what traffic obeys is
  what its LED matrix shows, decoded from the display's SPI traffic (SignIO);
- tracker: its GNSS UART receives the NMEA of the unit's patrol; the SOS button is held on time (TrackerIO).
What the processes publish comes back over MQTT into the world's sinks (recording, report) and, for
visibility, into the zone controllers. Runs at real time only (device clocks are wall clocks).
"""
from __future__ import annotations

import asyncio
import json
import queue
import secrets as pysecrets
import time
from pathlib import Path

from sim.world.inprocess_devices import MODE_CODE, RED, SAFE
from roadedge import wire

REPO = Path(__file__).resolve().parents[2]
HEAP = "256K"  # the platform plus a role on the 64-bit unix port (see docs/architecture.md, Memory)


def board_config(role: str) -> dict:
    return json.loads((REPO / "board_configs" / f"sim-{role}.json").read_text())


class _Proxy:
    inproc = False

    def __init__(self, fleet: Faithful, dev_id: str) -> None:
        self.f = fleet
        self.id = dev_id
        self.state: dict | None = None

    def _signed(self, cmd: str, args: dict, ttl: int = 30) -> None:
        self.f.client.publish(wire.cmd_topic(self.id, cmd), self.f.keyring.signer(self.id).sign(cmd, args, ttl), qos=1)


class ProcessBeacon(_Proxy):
    def __init__(self, fleet: Faithful, sim) -> None:
        super().__init__(fleet, sim.id)
        self.spec, self.s = sim.spec, sim.s
        from sim.peripherals.beacon_io import BeaconIO
        from sim.peripherals.vis_meter import VisibilityMeter

        w = fleet.world
        self.hw = fleet.hws.device(self.id)
        fleet.hws.call(lambda: VisibilityMeter(self.hw, lambda _t: w.weather.visibility(self.spec.road, self.s, w.t)))
        self.io = fleet.hws.call(lambda: BeaconIO(self.hw))

    def poll_due(self, _mono: int) -> bool:
        return False  # the firmware polls its own meter

    def detect(self, _mono: int, kmh: float) -> None:
        loop = self.f.hws.loop
        loop.call_soon_threadsafe(lambda: loop.create_task(self.io.vehicle(kmh)))

    def command(self, _mono: int, cmd: str, args: dict) -> None:
        self._signed(cmd, args)

    def publish(self, _mono: int) -> None:
        pass

    def mode(self, _mono: int) -> str:
        return (self.state or {}).get("mode") or "unknown"

    def vis(self):
        return (self.state or {}).get("vis_m")

    def lamp(self, _mono: int) -> int:
        if (self.hw.pwm("lamp_red") or 0) > 0 and self.mode(0) == "anti_rear_end":
            return RED
        return MODE_CODE.get(self.mode(0), SAFE)


class ProcessSign(_Proxy):
    local_meter = False

    def __init__(self, fleet: Faithful, sim) -> None:
        super().__init__(fleet, sim.id)
        self.spec = sim.spec
        from sim.peripherals.sign_io import SignIO

        self.hw = fleet.hws.device(self.id)
        self.io = fleet.hws.call(lambda: SignIO(self.hw))
        self.face: tuple[int | None, str] = (None, "")

        def seen(io) -> None:  # on the server's loop: remember what a driver reads off the face
            r = io.reading()
            if r is not None:
                self.face = r if io.lit() else (None, "")
        fleet.hws.call(lambda: self.io.on_change(seen))

    def shown(self):
        return self.face

    def source(self):
        return (self.state or {}).get("source")

    def command(self, _mono: int, cmd: str, args: dict):
        self._signed(cmd, args)
        return ("sent", None)

    def step(self, _mono: int, _unix: float) -> None:
        pass


class ProcessTracker(_Proxy):
    def __init__(self, fleet: Faithful, sim) -> None:
        super().__init__(fleet, sim.id)
        from sim.peripherals.tracker_io import TrackerIO

        self.patrol, self.gnss = sim.patrol, sim.gnss
        self.reports: list[tuple[float, float, float]] = []
        self.hw = fleet.hws.device(self.id)
        self.io = fleet.hws.call(lambda: TrackerIO(self.hw))
        self.orders: dict[str, tuple[float, float]] = {}  # incident -> where, as the display showed it
        self.accept_at: float | None = None

    def second(self, t: float) -> None:
        data = "".join(line + "\r\n" for line in self.gnss.epoch(t)).encode()
        self.f.hws.loop.call_soon_threadsafe(self.hw.uart_send, "gnss", data)

    def press_sos(self, _t: float, _unix: float) -> None:
        loop = self.f.hws.loop
        loop.call_soon_threadsafe(lambda: loop.create_task(self.io.sos()))

    def heard(self, w, topic: str, obj: dict) -> None:
        """The rider around the firmware: reads a dispatch off the display (where the incident is), presses
        accept ACCEPT_S after it arrived, and once the tracker reports the accept rides to the scene by road
        (the firmware itself reports on scene)."""
        from sim.world.inprocess_devices import SimTracker

        parsed = wire.parse(topic)
        if parsed is None:
            return
        kind, _dev, name = parsed
        if kind == wire.COMMAND and name == "dispatch" and isinstance(obj.get("body"), str):
            try:
                args = json.loads(obj["body"]).get("args") or {}
            except (ValueError, AttributeError):
                return
            if isinstance(args.get("lat"), (int, float)) and isinstance(args.get("lon"), (int, float)):
                self.orders[str(args.get("incident"))] = (args["lat"], args["lon"])
        elif kind == wire.STATE and obj.get("incident") is not None and obj.get("duty") == "patrol":
            self.accept_at = self.accept_at or w.t + SimTracker.ACCEPT_S  # pending on the display
        elif kind == wire.EVENT and obj.get("type") == "dispatch_accept":
            where = self.orders.get(str(obj.get("incident")))
            if where is not None:
                self.patrol.ride_to(w.t, *where)

    def tick(self, w) -> None:
        if self.accept_at is not None and w.t >= self.accept_at:
            self.accept_at = None
            loop = self.f.hws.loop
            loop.call_soon_threadsafe(lambda: loop.create_task(self.io.accept()))


def select(world, spec: str) -> list[str]:
    """"signs,trackers,bcn-f1-r040" -> device ids: role names (plural) or single ids."""
    groups = {"signs": [s.id for s in world.signs], "trackers": [t.id for t in world.trackers],
              "beacons": [b.id for b in world.beacons]}
    known = set(groups["signs"]) | set(groups["trackers"]) | set(groups["beacons"])
    out: list[str] = []
    for part in filter(None, (x.strip() for x in spec.split(","))):
        if part in groups:
            out += groups[part]
        elif part in known:
            out.append(part)
        else:
            raise ValueError(f"--faithful: {part!r} is neither signs/trackers/beacons nor a device of the scenario")
    return list(dict.fromkeys(out))


class Faithful:
    """Boot `ids` of a World as firmware processes and wire them in; `stop()` ends them."""

    def __init__(self, world, ids: list[str], broker_url: str, workdir: str | Path, runtime: str = "micropython",
                 keyring=None, heap: str | None = HEAP, observer: tuple[str, str] | None = None) -> None:
        from host_tools.keys import Keyring

        self.world, self.ids, self.broker_url = world, list(ids), broker_url
        self.workdir = Path(workdir)
        self.runtime, self.heap = runtime, heap
        self.observer = observer  # broker account of the world's own client (None: anonymous broker)
        self.keyring = keyring or Keyring({i: {"command_key": pysecrets.token_hex(32),
                                               "mqtt_password": pysecrets.token_urlsafe(12)} for i in self.ids})
        self.inbox: queue.Queue = queue.Queue()
        self.proxies: dict[str, _Proxy] = {}
        self.hws = None
        self.fleet = None
        self.client = None
        self.next_time = 0.0

    def _cfg(self, dev_id: str, role: str) -> dict:
        from sim.device_process import device_config

        c = board_config(role)
        c.pop("$schema", None)
        c.pop("description", None)
        c["id"] = dev_id
        c["broker"] = dict(c["broker"], user=dev_id, password=self.keyring.mqtt_password(dev_id), keepalive=15)
        c["command_key"] = self.keyring.command_key(dev_id).hex()
        w = self.world
        if role == "beacon":
            b = w.by_id[dev_id]
            c["uarts"] = {"vis_meter": c["uarts"]["vis_meter"], "radar": c["uarts"]["radar"]}
            c["beacon"] = dict(c.get("beacon") or {}, position_m=round(b.spec.km * 1000, 1))
        elif role == "tracker":
            c["tracker"] = dict(c.get("tracker") or {}, tid=dev_id[-2:])
        return device_config(c, self.broker_url, self.hws.addr)

    def start(self, timeout: float = 60.0) -> Faithful:

        from sim.boot import SimFleet
        from sim.device_process import compiled_lib
        from sim.hw import HardwareServerThread

        w = self.world
        self.hws = HardwareServerThread().start()
        lib = compiled_lib(self.workdir / ".lib") if self.runtime == "micropython" else None
        self.fleet = SimFleet(self.hws.server, self.workdir, self.runtime, self.heap, lib)
        from host_tools.recording.mqttconn import make_client

        user, password = self.observer or (None, None)
        self.client, b = make_client(self.broker_url, "roadedge-world", user=user, password=password)
        self.client.on_connect = lambda c, *_a: [c.subscribe(wire.device_filter(i), 1) for i in self.ids] + \
            [c.subscribe(wire.location_topic(i), 1) for i in self.ids if i in w.tracker_by_id]
        self.client.on_message = lambda _c, _u, m: self.inbox.put((time.time(), m.topic, m.payload, m.qos, m.retain))
        self.client.connect(b.host, b.port, 30)
        self.client.loop_start()
        for i in self.ids:
            if i in w.tracker_by_id:
                role, proxy = "tracker", ProcessTracker(self, w.tracker_by_id[i])
            elif i in w.sign_by_id:
                role, proxy = "sign", ProcessSign(self, w.sign_by_id[i])
            elif i in w.by_id:
                role, proxy = "beacon", ProcessBeacon(self, w.by_id[i])
            else:
                raise ValueError(f"{i}: no such device in the scenario")
            self.hws.call(self.fleet.add, self._cfg(i, role), True)
            self.proxies[i] = proxy
            w.replace(i, proxy)
        self.hws.call(self.fleet.start)
        for i in self.ids:
            self.hws.wait_connected(i, timeout)
        w.hooks.append(self._drain)
        return self

    def _drain(self, w) -> None:
        """Before each tick: the broker time beacon; the processes' messages into the world."""
        if w.t >= self.next_time:
            self.next_time = w.t + 1.0
            self.client.publish(wire.TIME_TOPIC, json.dumps({"t": int(w.unix() * 1000)}), 0)
        for p in self.proxies.values():
            if isinstance(p, ProcessTracker):
                p.tick(w)
        while True:
            try:
                at, topic, payload, qos, retain = self.inbox.get_nowait()
            except queue.Empty:
                return
            for s in w.sinks:
                if getattr(s, "echo", True):
                    s(round(at, 3), topic, payload, qos, retain)
            parts = topic.split("/")
            dev = parts[2] if parts[0] == "owntracks" else parts[1]
            p = self.proxies.get(dev)
            try:
                obj = json.loads(payload)
            except ValueError:
                continue
            if not isinstance(obj, dict) or p is None:
                continue
            if isinstance(p, ProcessTracker):
                p.heard(w, topic, obj)
            if parts[0] == "owntracks" and isinstance(p, ProcessTracker) and obj.get("live", True):
                p.reports.append((obj["tst"] - w.epoch, obj["lat"], obj["lon"]))
            elif parts[-1] == "state":
                p.state = obj
                vis = obj.get("vis_m")
                if isinstance(vis, (int, float)):
                    for z in w.feeds.get(dev, ()):
                        z.policy.visibility(dev, vis, w.unix())

    def stop(self) -> None:
        if self.fleet is not None and self.hws is not None:
            asyncio.run_coroutine_threadsafe(self.fleet.stop(), self.hws.loop).result(60)
        if self.hws is not None:
            self.hws.stop()
        if self.client is not None:
            self.client.loop_stop()
            self.client.disconnect()
