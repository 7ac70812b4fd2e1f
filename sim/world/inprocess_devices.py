"""Devices on the CPython runtime: each wraps the firmware's own decision modules and publishes what the
device's app shell publishes (same topics, same payload fields), stepped with synthetic time.

`out(topic, obj_or_text, qos, retain)` is the engine's publish; `mono_ms` is ms since the run started,
`unix_s` the simulated wall clock (set, as a device's clock is once it heard the broker or its GNSS).
"""
from __future__ import annotations

import hashlib


from roadedge import wire
from roadedge.beacon import app as beacon_app
from roadedge.beacon import modes as M
from roadedge.beacon.meter import MOR_MAX, MeterPoller, reply_line
from roadedge.beacon.model import BeaconModel
from roadedge.core.auth import sign_command  # noqa: E402
from roadedge.sign import app as sign_app
from roadedge.tracker import app as tracker_app
from roadedge.tracker import nmea, record, reporting
from roadedge.tracker.model import TrackerModel, pick

from sim.peripherals.gnss import GnssModule  # noqa: E402

# lamp codes in the report timeline
DARK, CONTOUR, GUIDANCE, YELLOW, RED, ALARM, SAFE = range(7)
MODE_CODE = {M.STANDBY: DARK, M.CONTOUR: CONTOUR, M.GUIDANCE: GUIDANCE, M.ANTI_REAR_END: YELLOW,
             M.SECTION_ALARM: ALARM}


def _phase(dev_id: str, period_ms: int) -> int:
    """A fixed per-device offset, so thousands of meters do not poll in the same millisecond."""
    return int.from_bytes(hashlib.sha256(dev_id.encode()).digest()[:4], "big") % max(1, period_ms)


class _Platform:
    """What the firmware platform (core.app) does around a role, for an in-process device: its topics
    (roadedge.wire), a seq per device that never repeats, and the event and ack envelopes."""

    def __init__(self, dev_id: str, out) -> None:
        self.id = dev_id
        self.out = out
        self.seq = 0

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def publish_state(self, st: dict) -> None:
        self.out(wire.topic(self.id, wire.STATE), st, 1, True)

    def event(self, unix_s: float, kind: str, fields: dict | None = None) -> None:
        self.out(wire.topic(self.id, wire.EVENT), wire.event(self.next_seq(), unix_s, kind, fields), 1, False)

    def ack(self, unix_s: float, cmd: str, ctr: int | None, code: str, detail) -> None:
        self.out(wire.topic(self.id, wire.ACK), wire.ack(self.next_seq(), unix_s, cmd, ctr, code, detail), 1, False)


class SimBeacon(_Platform):
    """A beacon post: the firmware's BeaconModel, its meter readings through the firmware's meter decoder."""

    def __init__(self, spec, s_m: float, params: dict | None, out) -> None:
        super().__init__(spec.id, out)
        self.spec = spec
        self.s = s_m  # chainage: metres from the road's first point
        p = dict(params or {})
        p["position_m"] = round(spec.km * 1000, 1)
        p = beacon_app.params({"beacon": p})
        self.counters: dict[str, int] = {}
        self._events: list = []
        self._now = 0
        self.poller = MeterPoller(None, p["meter"], self.counters, self._on_reading, self._on_meter)
        self.model = BeaconModel(p, self.poller.health)
        self.logic = self.model.logic
        self.poll_ms = self.poller.poll_ms
        self.next_poll = _phase(self.id, self.poll_ms)
        self.last = None
        self.detections = 0

    def _on_reading(self, mor, _flags) -> None:
        self._events += self.model.reading(self._now, mor)

    def _on_meter(self, _health) -> None:
        self._events += self.model.meter_changed()

    def poll_due(self, mono_ms: int) -> bool:
        return mono_ms >= self.next_poll

    def reading(self, mono_ms: int, vis_m: float, unix_s: float) -> tuple[int, int]:
        """One meter poll answered with vis_m, as the post's UART hears it."""
        self.next_poll = mono_ms + self.poll_ms
        self._now = mono_ms
        old = self.logic.modes.level.level
        self.poller.health.polled()
        self.poller.line(reply_line(self.poller.cfg["addr"], max(0, min(MOR_MAX, round(vis_m))), 0))
        for kind, fields in self._events:
            self.event(unix_s, kind, fields)
        self._events = []
        self.publish(mono_ms)
        return old, self.logic.modes.level.level

    def command(self, mono_ms: int, cmd: str, args: dict) -> tuple[str, object]:
        """A verified beacon command, as BeaconApp applies it."""
        r = self.model.command(mono_ms, cmd, args)
        self.publish(mono_ms)
        return r

    def detect(self, mono_ms: int, kmh: float) -> None:
        self.detections += 1
        self.logic.detect(mono_ms, kmh)

    def state(self, mono_ms: int) -> dict:
        return self.model.state(mono_ms)

    def publish(self, mono_ms: int) -> None:
        st = self.state(mono_ms)
        if st != self.last:
            self.last = st
            self.publish_state(st)

    def lamp(self, mono_ms: int) -> int:
        """What the post shows now, for the report: its mode, or red while a tail holds it."""
        if not self.poller.health.usable():
            return SAFE
        mode, _r = self.logic.modes.mode(mono_ms)
        if mode == M.ANTI_REAR_END and self.logic.tail.red(mono_ms):
            return RED
        return MODE_CODE.get(mode, DARK)

    def mode(self, mono_ms: int) -> str:
        return self.logic.modes.mode(mono_ms)[0]

    def vis(self) -> float | None:
        return self.logic.vis_m


class _NullBus:
    """The display's SPI bus: the driver computes its bytes (and check value), nothing is wired."""

    def write(self, _data) -> None:
        pass


class SimSign(_Platform):
    """A speed-limit sign: the firmware's SignPolicy, command handling and display driver (for what the
    face actually shows and its check value)."""

    def __init__(self, spec, params: dict | None, local_meter: bool, out) -> None:
        super().__init__(spec.id, out)
        self.spec = spec
        p = sign_app.params({"sign": dict(params or {})})
        self.policy = sign_app.make_policy(p)
        self.policy.boot(0, "power_on", 0)
        self.display = sign_app.make_display(p, _NullBus())
        self._shown = self.display.show(*self.policy.shown())
        self.local_meter = local_meter
        self.next_vis = _phase(self.id, 5000)

    def shown(self):
        """(limit, legend) the face shows now."""
        return self._shown if not self.policy.hot else (None, "")

    def source(self) -> str | None:
        return self.policy.source

    def command(self, mono_ms: int, cmd: str, args: dict) -> tuple[str, str | None]:
        return sign_app.command(self.policy, self.display, mono_ms, cmd, args)

    def step(self, mono_ms: int, unix_s: float) -> None:
        pol = self.policy
        pol.tick(mono_ms)
        if pol.changed:
            pol.changed = False
            self._shown = self.display.show(*pol.shown())
            self.display.power(not pol.hot)
            self.publish_state(sign_app.state_payload(pol, mono_ms, self._shown, self.display.check(), unix_s))


class SimTracker(_Platform):
    """A patrol unit: virtual GNSS -> the firmware's NMEA decoder -> the firmware's TrackerModel (smart
    reporting, SOS, dispatch and duty) -> OwnTracks reports and the tracker's events and state. The rider
    accepts a dispatch ACCEPT_S after it arrived (the accept button)."""

    ACCEPT_S = 8.0

    def __init__(self, spec, patrol, roads, epoch_unix: float, seed: int, out, params: dict | None = None) -> None:
        super().__init__(spec.id, out)
        self.patrol = patrol
        self.roads = roads
        self.gnss = GnssModule(lambda t: patrol.truth(t, roads), style="sirf", start_unix=epoch_unix,
                               noise_m=2.0, seed=seed)
        p = dict(tracker_app.DEFAULTS)
        p.update(params or {})
        self.dec = nmea.Decoder(pick(p, nmea.DEFAULTS))
        self.tid = self.id[-2:]
        self.model = TrackerModel(p, self.tid)
        self.model.batt = 95
        self.model.ign.on = True
        self.sos = self.model.sos
        self.reports: list[tuple[float, float, float]] = []  # (t, lat, lon) reported
        self._dispatched_at: float | None = None
        self._t = 0.0

    @property
    def last_fix(self):
        return self.model.last_fix

    def state(self, unix_s: float) -> dict:
        return self.model.state(0, 0, unix_s)

    def _events(self, unix_s: float, evs) -> None:
        for kind, fields in evs:
            self.event(unix_s, kind, fields)

    def _report(self, fix, reason: int, t: float) -> None:
        r = self.model.record(fix, self.next_seq(), reason)
        self.out(wire.location_topic(self.id), record.owntracks_json(r, self.tid, True), 1, False)
        self.reports.append((t, fix.lat / 1e7, fix.lon / 1e7))

    def second(self, t: float) -> None:
        """One GNSS epoch (1 Hz)."""
        self._t = t
        for line in self.gnss.epoch(t):
            self.dec.feed((line + "\r\n").encode())
        fix = self.dec.take_fix()
        if fix is None:
            return
        why, evs, changed = self.model.fix(fix)
        if why:
            self._report(fix, why, t)
        self._events(fix.unix, evs)
        if self._dispatched_at is not None and t - self._dispatched_at >= self.ACCEPT_S:
            self._dispatched_at = None
            evs = self.model.accept(int(t * 1000))
            self._events(fix.unix, evs)
            changed = changed or bool(evs)
            inc = self.model.duty.incident
            if evs and inc is not None:  # the rider heads for the scene by road
                self.patrol.ride_to(t, inc["lat"] / 1e7, inc["lon"] / 1e7)
        if changed:
            self.publish_state(self.state(fix.unix))

    def command(self, mono_ms: int, cmd: str, args: dict, unix_s: float, ctr: int | None = None) -> tuple[str, object]:
        """A verified command, as TrackerApp applies it (acked like the platform does, naming its counter)."""
        code, detail, evs = self.model.command(mono_ms, cmd, args)
        self.ack(unix_s, cmd, ctr, code, detail)
        if code == "ok":
            self._events(unix_s, evs)
            if self.model.duty.pending():
                self._dispatched_at = self._t
            self.publish_state(self.state(unix_s))
        return code, detail

    def press_sos(self, t: float, unix_s: float) -> None:
        evs, report = self.model.raise_sos(int(unix_s))
        self._events(unix_s, evs)
        if report:
            self._report(self.model.last_fix, reporting.SOS, t)
        self.publish_state(self.state(unix_s))


def lawful_limit(vis_m: float | None, normal: int) -> int:
    """Art. 81: the highest limit a sign may show at this visibility."""
    lim = wire.art81_limit(vis_m)
    return normal if lim is None else min(lim, normal)


def command_payload(key: bytes, dev: str, cmd: str, ctr: int, exp: int, args: dict) -> bytes:
    """A signed command exactly as the controller sends it (the firmware's own signer)."""
    p = sign_command(key, dev, cmd, ctr, exp, args)
    return p if isinstance(p, bytes) else p.encode()
