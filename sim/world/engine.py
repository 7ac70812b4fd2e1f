"""The world engine on the CPython runtime: deterministic, seeded, faster than real time.

Each tick (`dt`, default 0.5 s of simulated time):
 1. traffic moves; a vehicle passing a beacon on its carriageway is a detection (radar speed included);
 2. due meters are polled: each beacon's virtual forward-scatter meter reads the fog field at its post
    (with the meter's scintillation), the beacon decides its mode; the zone controller hears the reading;
 3. signs run their timers (comms loss, autonomy); signs with their own meter read the fog;
 4. every whole second each patrol's virtual GNSS emits NMEA that the tracker firmware decodes and
    reports (smart reporting, OwnTracks);
 5. the zone controllers (the real `host_tools.controller` shell and policy, fed with what the devices
    publish) decide on every report and once a second, send heartbeats; their signed commands reach the signs;
 6. scripted incidents (section alarm upstream) and SOS presses happen on time;
 7. the report timeline samples lamps, vehicles, signs and patrols.
What devices publish goes to every sink `(t_unix, topic, payload_bytes, qos, retain)`.
"""
from __future__ import annotations

import bisect
import hashlib
import json
import math
from collections.abc import Callable

from host_tools.controller.audit import Audit
from host_tools.controller.cli import TICK_S, Controller
from host_tools.controller.zone import ZoneConfig
from host_tools.deployment.roadnet import RoadNetwork
from host_tools.keys import Keyring

from sim.fog_field import flicker
from sim.world.inprocess_devices import (
    RED, SimBeacon, SimSign, SimTracker, command_payload, lawful_limit,
)
from sim.world.weather import Weather
from sim.world.patrol import Patrol
from sim.world.traffic import Traffic
from roadedge import wire

EPOCH_UNIX = 1_795_000_000  # simulated wall clock at t = 0 (fixed: runs are reproducible)
FOG_M = 200.0  # a vehicle "drives in fog" below this visibility (Art. 81 first level)
TAIL_LOOK_M = 150.0  # a red post within this distance behind a vehicle protects it
ALARM_UPSTREAM_M = 600.0  # an incident's section alarm covers this much road before it
ALARM_S = 300
LAWFUL_WITHIN_S = 30.0  # a sign must show the Art. 81 limit this soon after the visibility requires it

Sink = Callable[[float, str, bytes, int, bool], None]


def _payload(obj) -> bytes:
    if isinstance(obj, bytes):
        return obj
    if isinstance(obj, str):
        return obj.encode()
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


class _ZoneClient:
    """The controller's MQTT client inside the world: what it publishes goes to the world (commands to the
    signs, its state to the sinks)."""

    def __init__(self, world: World, zone: Zone) -> None:
        self.world, self.zone = world, zone

    def publish(self, topic: str, payload, qos: int = 0, retain: bool = False):
        self.world._from_controller(self.zone, topic, payload, qos, retain)


class _WorldClockAudit(Audit):
    """The controller's audit log stamped with the world's clock (the shell leaves the time to the log,
    which reads the wall clock: in the field the two are the same)."""

    def __init__(self, path: str, zone: str, clock: Callable[[], float]) -> None:
        super().__init__(path, zone)
        self.clock = clock

    def write(self, action: str, why: str, **kw) -> None:
        if kw.get("ts") is None:
            kw["ts"] = self.clock()
        super().write(action, why, **kw)


class Zone:
    """One fog section's controller: the real `roadedge controller` shell (host_tools.controller.cli
    Controller: signing, re-sends, audit) around the real ZonePolicy, on the simulated clock."""

    def __init__(self, world: World, section: dict, signs: list[SimSign], beacons: list[SimBeacon], key: bytes,
                 params: dict | None = None, audit_dir=None) -> None:
        self.id = section["id"]
        self.signs = sorted(signs, key=lambda s: s.spec.km)  # upstream first (traffic rides up the km)
        specs = []
        r_beacons = sorted((b for b in beacons if b.spec.side == "R"), key=lambda b: b.spec.km)
        for i, sg in enumerate(self.signs):
            lo = max(sg.spec.km, section["from_km"])
            hi = self.signs[i + 1].spec.km if i + 1 < len(self.signs) else section["to_km"] + 1e-6
            src = [b.id for b in r_beacons if lo <= b.spec.km < hi] if lo < hi else []
            if not src:  # a sign ahead of the section answers for the section's first half kilometre
                src = [b.id for b in r_beacons if b.spec.km <= section["from_km"] + 0.5]
            if sg.local_meter:
                src.append(sg.id)
            specs.append({"id": sg.id, "km": sg.spec.km, "sources": src})
        self.cfg = ZoneConfig.from_dict({"zone": self.id, "signs": specs, **(params or {})})
        self.feeds = {s for sp in specs for s in sp["sources"]}
        self.key = key
        keyring = Keyring({sp["id"]: {"command_key": key.hex(), "mqtt_password": ""} for sp in specs},
                          clock=world.unix)
        # the audit in memory, or (audit_dir) in `<zone>.db` as `roadedge controller --db` keeps it
        audit = _WorldClockAudit(f"{audit_dir}/{self.id}.db" if audit_dir else ":memory:", self.id, world.unix)
        self.ctl = Controller(self.cfg, _ZoneClient(world, self), keyring, audit, time_beacon=False, now=world.unix)
        self.policy = self.ctl.policy
        self.topics = {wire.topic(d, k) for d in self.feeds | {sp["id"] for sp in specs}
                       for k in (wire.STATE, wire.TELE, wire.EVENT)}
        self.next_update = 2.0  # as the CLI: first decision once retained state is in
        self.next_hb = 0.0


class _ClockedAuth:
    """A verifier that judges expiry by the signer's clock, not the caller's (the world's clock runs faster
    than the console's wall clock that signed the action)."""

    def __init__(self, auth, clock: Callable[[], float]) -> None:
        self.auth, self.clock = auth, clock

    def check(self, cmd: str, payload, _now_s):
        return self.auth.check(cmd, payload, self.clock())


class World:
    def __init__(self, sc, seed: int | None = None, dt: float = 0.5, sample_s: float = 1.0,
                 zone_params: dict | None = None, traffic: bool = True, epoch_unix: float = EPOCH_UNIX,
                 audit_dir=None) -> None:
        self.sc = sc
        self.epoch = epoch_unix
        self.seed = sc.seed if seed is None else seed
        self.dt = dt
        self.t = 0.0
        self.sinks: list[Sink] = []
        self.weather = Weather(sc)
        self.key = hashlib.sha256(f"roadedge-sim-{self.seed}".encode()).digest()
        dev = sc.raw.get("devices", {})
        bparams = (dev.get("beacons") or {}).get("params")
        self.beacons = [SimBeacon(b, (b.km - sc.roads[b.road].km0) * 1000, bparams, self._out) for b in sc.beacons]
        self.by_id = {b.id: b for b in self.beacons}
        # beacons per carriageway, sorted by chainage: R rides with the km markers (+1), L against (-1)
        self.posts: dict[tuple[str, int], tuple[list[float], list[SimBeacon]]] = {}
        for b in sorted(self.beacons, key=lambda b: b.s):
            key = (b.spec.road, 1 if b.spec.side == "R" else -1)
            self.posts.setdefault(key, ([], []))
            self.posts[key][0].append(b.s)
            self.posts[key][1].append(b)
        raw_signs = {s["id"]: s for s in dev.get("signs", [])}
        self.signs = [SimSign(s, raw_signs[s.id].get("params"), bool(raw_signs[s.id].get("local_meter")), self._out)
                      for s in sc.signs]
        self.sign_by_id = {s.id: s for s in self.signs}
        self.sign_posts: dict[str, tuple[list[float], list[SimSign]]] = {}
        for s in sorted(self.signs, key=lambda s: s.spec.km):
            r = self.sign_posts.setdefault(s.spec.road, ([], []))
            r[0].append((s.spec.km - sc.roads[s.spec.road].km0) * 1000)
            r[1].append(s)
        self.zones = []
        for sec in sc.sections:
            zs = [s for s in self.signs if s.spec.section == sec["id"]]
            if zs:
                self.zones.append(Zone(self, sec, zs, [b for b in self.beacons if b.spec.section == sec["id"]],
                                       self.key, zone_params, audit_dir))
        self.feeds: dict[str, list[Zone]] = {}
        for z in self.zones:
            for src in z.feeds:
                self.feeds.setdefault(src, []).append(z)
        self.listeners: dict[str, list[Zone]] = {}  # topic -> the controllers subscribed to it
        for z in self.zones:
            for tp in z.topics:
                self.listeners.setdefault(tp, []).append(z)
        self.to_controllers: list[tuple[Zone, str, bytes, bool]] = []
        net = RoadNetwork.from_scenario(sc)  # the way a dispatched rider takes
        self.patrols = {t.id: Patrol(t, sc, net) for t in sc.trackers}
        self.trackers = [SimTracker(t, self.patrols[t.id], sc.roads, epoch_unix, self.seed * 1000 + i, self._out)
                         for i, t in enumerate(sc.trackers)]
        self.tracker_by_id = {t.id: t for t in self.trackers}
        self.traffic = Traffic(sc, self.seed, self.weather.visibility, self._sign_limit) if traffic else None
        self.events = sorted([(float(i["t_s"]), "incident", i) for i in sc.incidents]
                             + [(float(s["t_s"]), "sos", s) for s in sc.sos], key=lambda e: (e[0], e[1]))
        self.next_second = 0.0
        self.next_sample = 0.0
        self.sample_s = sample_s
        self.timeline = Timeline(self)
        self.metrics = {"fog_vehicle_s": 0.0, "fog_unprotected_s": 0.0, "detections": 0, "messages": 0,
                        "commands": 0}
        # per sign: fog onset, when it first showed the lawful limit, seconds above it (all, and those
        # later than LAWFUL_WITHIN_S after the visibility required the limit); `since`: limit -> required since
        self.sign_lawful: dict[str, dict] = {s.id: {"onset": None, "lawful_at": None, "unlawful_s": 0.0,
                                                    "late_s": 0.0, "since": {}} for s in self.signs}
        self.started = False
        self.hooks: list[Callable[[World], None]] = []  # run before each tick (e.g. messages from processes)
        self.command_auth: dict = {}  # in-process device -> its verifier (roadedge.core.auth.CommandAuth)
        self.verify_clock: Callable[[], float] = self.unix  # the clock signed commands' expiry is judged by
        self.on_incident: Callable[[dict], None] | None = None  # a scripted incident is reported (the demo)

    # --- output ---------------------------------------------------------------
    def unix(self, t: float | None = None) -> float:
        return self.epoch + (self.t if t is None else t)

    def _out(self, topic: str, obj, qos: int = 0, retain: bool = False) -> None:
        data = _payload(obj)
        self.metrics["messages"] += 1
        t = round(self.unix(), 3)
        for s in self.sinks:
            s(t, topic, data, qos, retain)
        for z in self.listeners.get(topic, ()):
            self.to_controllers.append((z, topic, data, False))  # a live delivery, never "retained"

    def _deliver_to_controllers(self) -> None:
        """What the devices published reaches the controllers subscribed to it (in order; what the
        controllers do in turn may make devices publish more)."""
        while self.to_controllers:
            batch, self.to_controllers = self.to_controllers, []
            for z, topic, data, retain in batch:
                z.ctl.on_message(topic, data, retain)

    def _announced(self) -> None:
        roles = [(d, "beacon") for d in self.beacons] + [(d, "sign") for d in self.signs] + \
            [(d, "tracker") for d in self.trackers]
        for d, role in roles:
            if getattr(d, "inproc", True):  # firmware processes announce themselves
                self._out(wire.topic(d.id, wire.STATUS), "online", 1, True)
                # as the platform's info: the role model runs in the world's process
                self._out(wire.topic(d.id, wire.INFO), {"role": role, "board": "sim", "fw": "world",
                                                        "boot": "power_on", "cfg": "", "ts": self.unix()}, 1, True)

    def all_beacons(self) -> list:
        return self.beacons

    def replace(self, dev_id: str, new) -> None:
        """Put `new` (same interface, e.g. a firmware process's proxy) in place of a simulated device."""
        for lst in (self.beacons, self.signs, self.trackers):
            for i, d in enumerate(lst):
                if d.id == dev_id:
                    lst[i] = new
        for m in (self.by_id, self.sign_by_id, self.tracker_by_id):
            if dev_id in m:
                m[dev_id] = new
        for _xs, ds in [*self.posts.values(), *self.sign_posts.values()]:
            for i, d in enumerate(ds):
                if d.id == dev_id:
                    ds[i] = new
        for z in self.zones:
            z.signs = [new if s.id == dev_id else s for s in z.signs]

    # --- from the bus: console commands and operator actions --------------------
    def command_filters(self) -> list[str]:
        """What the world subscribes to on a broker: the commands for its in-process trackers and the
        operator actions for its zone controllers."""
        return [wire.cmd_topic(t.id, "#") for t in self.trackers if getattr(t, "inproc", True)] + \
            [wire.ctl_topic(z.id, "op") for z in self.zones]

    def verify_with(self, keyring, state_dir, clock: Callable[[], float] | None = None) -> None:
        """Verify what arrives from the bus as in the field: each in-process tracker with the firmware's
        CommandAuth and its own command key, each zone controller with the operator key. `clock` judges
        expiry (the signers' wall clock, when the world runs faster than real time)."""
        from host_tools.controller.cli import operator_auth
        from host_tools.keys import UnknownDevice
        from roadedge.core.auth import CommandAuth

        if clock is not None:
            self.verify_clock = clock
        for tr in self.trackers:
            if getattr(tr, "inproc", True):
                try:
                    key = keyring.command_key(tr.id)
                except UnknownDevice:
                    continue  # no key: its commands are refused (fail closed)
                self.command_auth[tr.id] = CommandAuth(key, tr.id, f"{state_dir}/{tr.id}.cmd-counter.json")
        for z in self.zones:
            auth = operator_auth(keyring, z.id, f"{state_dir}/{z.id}.op-counter.json")
            z.ctl.op_auth = _ClockedAuth(auth, self.verify_clock) if auth is not None else None

    def receive(self, topic: str, payload: bytes) -> None:
        """A message from the bus (call between ticks, from the thread that steps the world): an operator
        action goes to its zone's real Controller, a command to its in-process tracker, verified first."""
        parsed = wire.parse(topic)
        if parsed is None:
            return
        kind, ident, name = parsed
        if kind == wire.CTL_OP:
            for z in self.zones:
                if z.id == ident:
                    z.ctl.on_message(topic, payload, False)
            self._deliver_to_controllers()
            return
        tr = self.tracker_by_id.get(ident) if kind == wire.COMMAND else None
        if tr is None or not getattr(tr, "inproc", True):
            return
        mono, unix_s = int(self.t * 1000), self.unix()
        auth = self.command_auth.get(ident)
        if auth is None:  # acked as the firmware platform (core.app) acks them
            tr.ack(unix_s, name, None, "refused", "no command_key configured")
            return
        code, body = auth.check(name, payload, self.verify_clock())
        if code != "ok" or body is None:
            tr.ack(unix_s, name, None, code, None)
            return
        tr.command(mono, name, body["args"], unix_s, body["ctr"])

    # --- world queries ---------------------------------------------------------
    def _sign_limit(self, road: str, s0: float, s1: float):
        sp = self.sign_posts.get(road)
        if not sp or s1 <= s0:
            return None
        i = bisect.bisect_right(sp[0], s0)
        if i < len(sp[0]) and sp[0][i] <= s1:
            lim, _leg = sp[1][i].shown()
            return lim or 0
        return None

    def _passed(self, car, s0: float, s1: float, t: float) -> None:
        posts = self.posts.get((car.road, car.dir))
        if not posts:
            return
        xs, bs = posts
        lo, hi = (s0, s1) if s1 >= s0 else (s1, s0)
        i, j = bisect.bisect_right(xs, lo), bisect.bisect_right(xs, hi)
        if i >= j:
            return
        kmh = car.v * 3.6
        for k in range(i, j):
            f = abs(xs[k] - s0) / (abs(s1 - s0) or 1.0)
            bs[k].detect(int((t + f * self.dt) * 1000), kmh)
            self.metrics["detections"] += 1

    # --- the tick -------------------------------------------------------------
    def step(self) -> None:
        if not self.started:  # birth messages once the sinks are attached
            self.started = True
            self._announced()
        for hook in self.hooks:
            hook(self)
        t, dt = self.t, self.dt
        while self.events and self.events[0][0] <= t:
            _at, kind, ev = self.events.pop(0)
            self._event(kind, ev)
        if self.traffic is not None:
            self.traffic.step(t, dt, self._passed)
        self.t = t = t + dt
        mono = int(t * 1000)
        unix_s = self.unix()
        for b in self.beacons:
            if b.poll_due(mono):
                vis = round(flicker(self.weather.visibility(b.spec.road, b.s, t), t, b.s))
                b.reading(mono, vis, unix_s)  # its state (vis_m) reaches the controllers
        for s in self.signs:
            if s.local_meter and mono >= s.next_vis:
                s.next_vis = mono + 5000
                road = s.spec.road
                vis = round(flicker(self.weather.visibility(road, (s.spec.km - self.sc.roads[road].km0) * 1000, t), t, 0))
                s.policy.set_visibility(mono, vis)
                tele = json.dumps({wire.F_VIS: vis, "ts": unix_s}).encode()  # its telemetry's reading (not recorded)
                for z in self.feeds.get(s.id, ()):
                    self.to_controllers.append((z, wire.topic(s.id, wire.TELE), tele, False))
            s.step(mono, unix_s)
        if t >= self.next_second:
            self.next_second = math.floor(t) + 1.0
            for tr in self.trackers:
                tr.second(t)
        self._deliver_to_controllers()
        for z in self.zones:
            self._zone(z, t)
        self._deliver_to_controllers()
        if t >= self.next_sample:
            self.next_sample += self.sample_s
            self.timeline.sample(t, mono)
        self._safety(t, mono)

    def run(self, until_s: float, on_tick: Callable[[World], None] | None = None) -> None:
        while self.t < until_s - 1e-9:
            self.step()
            if on_tick is not None:
                on_tick(self)

    # --- controller, events, metrics --------------------------------------------
    def _from_controller(self, z: Zone, topic: str, payload, qos: int, retain: bool) -> None:
        """A zone controller published: its state goes to the sinks; a signed command is applied to the
        sign the way its firmware would (verification aside), with the sign's ack."""
        parsed = wire.parse(topic)
        if parsed is None or parsed[0] != wire.COMMAND or parsed[1] not in self.sign_by_id:
            self._out(topic, payload, qos, retain)
            return
        sign, cmd = self.sign_by_id[parsed[1]], parsed[2]
        mono, unix_s = int(self.t * 1000), self.unix()
        body = json.loads(json.loads(payload)["body"])
        args = body["args"]
        self.metrics["commands"] += 1
        if not getattr(sign, "inproc", True):  # a firmware process: signed with its own key, over MQTT
            sign.command(mono, cmd, args)
            return
        self._out(topic, payload, qos, retain)
        code, detail = sign.command(mono, cmd, args)
        sign.ack(unix_s, cmd, body["ctr"], code, detail)  # the ack names the command's counter
        if cmd != "heartbeat":
            sign.step(mono, unix_s)

    def _zone(self, z: Zone, t: float) -> None:
        """The controller's own timers (as Controller.run): decisions once a second, heartbeats."""
        if t >= z.next_update:
            z.next_update += TICK_S
            z.ctl.update()
        if t >= z.next_hb:
            z.next_hb += z.cfg.heartbeat_s
            z.ctl.heartbeats()

    def _event(self, kind: str, ev: dict) -> None:
        mono, unix_s = int(self.t * 1000), self.unix()
        if kind == "sos":
            tr = self.tracker_by_id.get(ev["unit"])
            if tr is not None:
                tr.press_sos(self.t, unix_s)
            return
        if self.on_incident is not None:  # reported to the dispatch desk (a call, a camera operator)
            self.on_incident(ev)
        # an incident: the beacons upstream of it (same road, both carriageways' approach) go to section alarm
        if ev.get("section_alarm"):
            km = ev["km"]
            for b in self.beacons:
                if b.spec.road != ev["road"]:
                    continue
                ahead = (km - b.spec.km) if b.spec.side == "R" else (b.spec.km - km)
                if 0 <= ahead * 1000 <= ALARM_UPSTREAM_M:
                    args = {"on": True, "ttl_s": ALARM_S}
                    if getattr(b, "inproc", True):
                        self._out(wire.cmd_topic(b.id, "section_alarm"),
                                  command_payload(self.key, b.id, "section_alarm", mono + 1, int(unix_s) + 30, args), 1,
                                  False)
                    code, detail = b.command(mono, "section_alarm", args)
                    if getattr(b, "inproc", True):
                        b.ack(unix_s, "section_alarm", mono + 1, code, detail)

    def _safety(self, t: float, mono: int) -> None:
        dt = self.dt
        if self.traffic is not None:
            for car in self.traffic.all():
                posts = self.posts.get((car.road, car.dir))
                if not posts:
                    continue
                xs, bs = posts
                if not (xs[0] <= car.s <= xs[-1]):
                    continue  # outside the beaconed section
                if self.weather.visibility(car.road, car.s, t) >= FOG_M:
                    continue
                self.metrics["fog_vehicle_s"] += dt
                # posts behind the vehicle within TAIL_LOOK_M
                if car.dir > 0:
                    i, j = bisect.bisect_left(xs, car.s - TAIL_LOOK_M), bisect.bisect_right(xs, car.s)
                else:
                    i, j = bisect.bisect_left(xs, car.s), bisect.bisect_right(xs, car.s + TAIL_LOOK_M)
                if not any(bs[k].lamp(mono) == RED for k in range(i, j)):
                    self.metrics["fog_unprotected_s"] += dt
        for s in self.signs:
            need = self.required_limit(s, t)
            st = self.sign_lawful[s.id]
            normal = 100
            if need < normal and st["onset"] is None:
                st["onset"] = t
            shown = s.shown()[0]
            ok = shown is not None and shown <= need
            if need < normal and not ok:
                st["unlawful_s"] += dt
            since = st["since"]
            for lim in (60, 40, 20):
                if need <= lim:
                    since.setdefault(lim, t)
                else:
                    since.pop(lim, None)
            if any(t - t0 > LAWFUL_WITHIN_S and (shown is None or shown > lim) for lim, t0 in since.items()):
                st["late_s"] += dt
            if st["onset"] is not None and st["lawful_at"] is None and ok:
                st["lawful_at"] = t

    def required_limit(self, s: SimSign, t: float) -> int:
        """Art. 81 limit for the worst visibility on the road the sign governs (to the next sign, <= 1 km)."""
        road = s.spec.road
        pl = self.sc.roads[road]
        xs, signs = self.sign_posts[road]
        i = signs.index(s)
        a = xs[i]
        b = min(xs[i + 1] if i + 1 < len(xs) else a + 1000, a + 1000, pl.length_m)
        n = max(2, int((b - a) / 50) + 1)
        worst = min(self.weather.visibility(road, a + (b - a) * k / (n - 1), t) for k in range(n))
        return lawful_limit(worst, 100)


class Timeline:
    """What the report draws: lamp codes per post per sample, vehicles, signs against the lawful limit,
    patrols' true positions."""

    def __init__(self, w: World) -> None:
        self.w = w
        self.t: list[float] = []
        self.lamps: dict[tuple[str, int], list[bytes]] = {k: [] for k in w.posts}
        self.cars: list[list[tuple[str, int, float, float]]] = []
        self.signs: dict[str, list[tuple[int | None, int]]] = {s.id: [] for s in w.signs}
        self.truth: dict[str, list[tuple[float, float]]] = {tr.id: [] for tr in w.trackers}

    def sample(self, t: float, mono: int) -> None:
        w = self.w
        self.t.append(t)
        for k, (_xs, bs) in w.posts.items():
            self.lamps[k].append(bytes(b.lamp(mono) for b in bs))
        self.cars.append([(c.road, c.dir, round(c.s, 1), round(c.v, 2)) for c in w.traffic.all()]
                         if w.traffic is not None else [])
        for s in w.signs:
            self.signs[s.id].append((s.shown()[0], w.required_limit(s, t)))
        for tr in w.trackers:
            tt = tr.patrol.truth(t, w.sc.roads)
            self.truth[tr.id].append((tt.lat, tt.lon))
