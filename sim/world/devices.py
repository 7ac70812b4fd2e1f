"""Devices on the CPython runtime: each wraps the firmware's own decision modules and publishes what the
device's app shell publishes (same topics, same payload fields), stepped with synthetic time.

`out(topic, obj_or_text, qos, retain)` is the engine's publish; `mono_ms` is ms since the run started,
`unix_s` the simulated wall clock (set, as a device's clock is once it heard the broker or its GNSS).
"""
from __future__ import annotations

import hashlib


from roadedge.beacon import modes as M  # noqa: E402
from roadedge.beacon.logic import BeaconLogic  # noqa: E402
from roadedge.core.auth import sign_command  # noqa: E402
from roadedge.sign.policy import SignPolicy, art81_level  # noqa: E402
from roadedge.tracker import nmea, record, reporting  # noqa: E402
from roadedge.tracker import sos as sos_mod  # noqa: E402

from sim.peripherals.gnss import GnssModule  # noqa: E402

# lamp codes in the report timeline
DARK, CONTOUR, GUIDANCE, YELLOW, RED, ALARM, SAFE = range(7)
MODE_CODE = {M.STANDBY: DARK, M.CONTOUR: CONTOUR, M.GUIDANCE: GUIDANCE, M.ANTI_REAR_END: YELLOW,
             M.SECTION_ALARM: ALARM}


def _phase(dev_id: str, period_ms: int) -> int:
    """A fixed per-device offset, so thousands of meters do not poll in the same millisecond."""
    return int.from_bytes(hashlib.sha256(dev_id.encode()).digest()[:4], "big") % max(1, period_ms)


class SimBeacon:
    def __init__(self, spec, s_m: float, params: dict | None, out) -> None:
        self.spec = spec
        self.id = spec.id
        self.s = s_m  # chainage: metres from the road's first point
        p = dict(params or {})
        p["position_m"] = round(spec.km * 1000, 1)
        self.logic = BeaconLogic(p)
        self.logic.meter_usable(False)  # safe mode until the meter first answers, as on the post
        self.poll_ms = int(self.logic.cfg["meter"]["poll_s"] * 1000)
        self.next_poll = _phase(self.id, self.poll_ms)
        self.out = out
        self.topic = f"re/{self.id}/state"
        self.last = None
        self.meter_ok = False
        self.detections = 0

    def poll_due(self, mono_ms: int) -> bool:
        return mono_ms >= self.next_poll

    def reading(self, mono_ms: int, vis_m: float, unix_s: float) -> tuple[int, int]:
        self.next_poll = mono_ms + self.poll_ms
        if not self.meter_ok:
            self.meter_ok = True
            self.logic.meter_usable(True)
        old, new = self.logic.visibility(mono_ms, vis_m)
        if new != old:
            self.out(f"re/{self.id}/event", {"seq": 0, "ts": unix_s, "type": "vis_level", "from": old, "to": new,
                                             "vis_m": vis_m, "mode": self.logic.modes.level_modes[new]}, 1, False)
        self.publish(mono_ms)
        return old, new

    def command(self, mono_ms: int, cmd: str, args: dict) -> None:
        """A verified beacon command, as BeaconApp applies it."""
        ttl = args.get("ttl_s")
        until = None if ttl is None else mono_ms + int(ttl * 1000)
        if cmd == "section_alarm":
            self.logic.modes.set_alarm(bool(args.get("on")), until)
        elif cmd == "mode":
            mode = args.get("mode")
            self.logic.modes.set_override(None if mode == "auto" else mode, until)
        self.publish(mono_ms)

    def detect(self, mono_ms: int, kmh: float) -> None:
        self.detections += 1
        self.logic.detect(mono_ms, kmh)

    def state(self, mono_ms: int) -> dict:
        m = self.logic.modes
        mode, reason = m.mode(mono_ms)
        o = m.override
        return {"mode": mode, "reason": reason, "level": m.level.level, "vis_m": self.logic.vis_m,
                "meter": "ok" if self.meter_ok else "unknown", "meter_reason": None,
                "override": o[0] if o is not None else None, "alarm": m.alarm is not None,
                "levels_m": m.level.levels, "battery": self.logic.energy.state, "lamps": "ok",
                "pos_m": self.logic.cfg["position_m"]}

    def publish(self, mono_ms: int) -> None:
        st = self.state(mono_ms)
        if st != self.last:
            self.last = st
            self.out(self.topic, st, 1, True)

    def lamp(self, mono_ms: int) -> int:
        """What the post shows now, for the report: its mode, or red while a tail holds it."""
        if not self.meter_ok:
            return SAFE
        mode, _r = self.logic.modes.mode(mono_ms)
        if mode == M.ANTI_REAR_END and self.logic.tail.red(mono_ms):
            return RED
        return MODE_CODE.get(mode, DARK)

    def mode(self, mono_ms: int) -> str:
        return self.logic.modes.mode(mono_ms)[0]

    def vis(self) -> float | None:
        return self.logic.vis_m


class SimSign:
    def __init__(self, spec, params: dict | None, local_meter: bool, out) -> None:
        self.spec = spec
        self.id = spec.id
        self.policy = SignPolicy(params or {})
        self.policy.boot(0, "power_on", 0)
        self.out = out
        self.local_meter = local_meter
        self.next_vis = _phase(self.id, 5000)

    def shown(self):
        return self.policy.shown()

    def source(self) -> str | None:
        return self.policy.source

    def command(self, mono_ms: int, cmd: str, args: dict) -> tuple[str, str | None]:
        if cmd == "set_limit":
            return self.policy.set_limit(mono_ms, args)
        if cmd == "clear":
            return self.policy.clear(mono_ms, args)
        if cmd == "heartbeat":
            return self.policy.heartbeat(mono_ms)
        return ("unknown_command", None)

    def step(self, mono_ms: int, unix_s: float) -> None:
        self.policy.tick(mono_ms)
        if self.policy.changed:
            self.policy.changed = False
            st = self.policy.state(mono_ms)
            st["ts"] = unix_s
            self.out(f"re/{self.id}/state", st, 1, True)


class SimTracker:
    """A patrol unit: virtual GNSS -> the firmware's NMEA decoder -> smart reporting -> OwnTracks."""

    def __init__(self, spec, patrol, roads, epoch_unix: float, seed: int, out, params: dict | None = None) -> None:
        self.id = spec.id
        self.patrol = patrol
        self.roads = roads
        self.gnss = GnssModule(lambda t: patrol.truth(t, roads), style="sirf", start_unix=epoch_unix,
                               noise_m=2.0, seed=seed)
        self.dec = nmea.Decoder()
        self.rep = reporting.Reporter(params)
        self.sos = sos_mod.SOS()
        self.tid = self.id[-2:]
        self.seq = 0
        self.out = out
        self.last_fix = None
        self.reports: list[tuple[float, float, float]] = []  # (t, lat, lon) reported

    def _seq(self) -> int:
        self.seq += 1
        return self.seq

    def state(self, unix_s: float) -> dict:
        s = self.sos
        return {"duty": "patrol", "incident": None, "sos": {"latched": s.latched, "id": s.id, "since": s.since},
                "ign": True, "batt": 95, "fix": self.last_fix is not None, "tid": self.tid, "backlog": 0,
                "dropped": 0, "ts": unix_s}

    def _report(self, fix, reason: int, t: float) -> None:
        r = record.from_fix(fix, self._seq(), 95, self.sos.latched, True, reason)
        self.out(f"owntracks/roadedge/{self.id}", record.owntracks_json(r, self.tid, True), 1, False)
        self.reports.append((t, fix.lat / 1e7, fix.lon / 1e7))
        self.rep.reported(fix.unix, fix.lat, fix.lon, fix.speed_kmh10(), fix.course)  # as tracker/app.py: 0.01 deg

    def second(self, t: float) -> None:
        """One GNSS epoch (1 Hz)."""
        for line in self.gnss.epoch(t):
            self.dec.feed((line + "\r\n").encode())
        fix = self.dec.take_fix()
        if fix is None:
            return
        if self.last_fix is None:
            self.last_fix = fix
            self.out(f"re/{self.id}/state", self.state(fix.unix), 1, True)
        self.last_fix = fix
        cog = -1 if fix.course < 0 else fix.course
        reason = self.rep.decide(fix.unix, fix.lat, fix.lon, fix.speed_kmh10(), cog, self.sos.latched)
        if reason:
            self._report(fix, reason, t)

    def press_sos(self, t: float, unix_s: float) -> None:
        self.sos.trigger(int(unix_s))
        ev = {"seq": self._seq(), "ts": unix_s, "type": "sos", "id": self.sos.id, "since": self.sos.since,
              "duty": "patrol"}
        f = self.last_fix
        if f is not None:
            ev["lat"] = float(record.e7_str(f.lat))
            ev["lon"] = float(record.e7_str(f.lon))
        self.out(f"re/{self.id}/event", ev, 1, False)
        if f is not None:
            self._report(f, reporting.SOS, t)
        self.out(f"re/{self.id}/state", self.state(unix_s), 1, True)


def lawful_limit(vis_m: float | None, normal: int) -> int:
    """Art. 81: the highest limit a sign may show at this visibility."""
    if vis_m is None:
        return normal
    return (normal, 60, 40, 20)[art81_level(vis_m, 0, 0)]


def command_payload(key: bytes, dev: str, cmd: str, ctr: int, exp: int, args: dict) -> bytes:
    """A signed command exactly as the controller sends it (the firmware's own signer)."""
    p = sign_command(key, dev, cmd, ctr, exp, args)
    return p if isinstance(p, bytes) else p.encode()
