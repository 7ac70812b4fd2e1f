"""Replay a recording through the devices' firmware logic and list where their outputs differ.

Inputs re-injected from a `roadedge record` file (or the simulator's own recording, same format):
- each beacon's meter: polled on its own schedule (every `meter.poll_s`), reading the visibility the
  beacon last reported (`re/<id>/state` `vis_m`: the app publishes its state on every change, so
  between two publications the reading did not change);
- every command a beacon or sign received (`re/<id>/cmd/<name>`: signed body decoded, applied at its
  recorded time): the controller's set_limit/clear/heartbeat, section alarms, mode overrides;
- each tracker's positions (`owntracks/roadedge/<id>`) as the GNSS track its virtual receiver emits.
Outputs compared: every beacon's and sign's `re/<id>/state` publication (time, mode/level/alarm for a
beacon; limit/legend/source for a sign) against the recorded ones.

A field recording knows neither the meters' poll phases nor the vehicles (detections are not
published): red tails are not replayed, and level changes may land one poll apart.
"""
from __future__ import annotations

import argparse
import bisect
import json
from dataclasses import dataclass
from pathlib import Path

from host_tools.recording.fileformat import read

from host_tools.deployment.scenario import BeaconSpec, SignSpec
from sim.world.inprocess_devices import SimBeacon, SimSign
from roadedge import wire

BEACON_FIELDS = ("mode", "reason", "level", "vis_m", "alarm", "override")
SIGN_FIELDS = ("limit", "legend", "source")


@dataclass
class Difference:
    t: float
    device: str
    what: str
    recorded: object
    replayed: object

    def __str__(self) -> str:
        return f"t={self.t:.3f} {self.device} {self.what}: recorded {self.recorded!r}, replayed {self.replayed!r}"


def _role(dev: str, st: dict) -> str | None:
    if "pos_m" in st or "levels_m" in st:
        return "beacon"
    if "source" in st and "commanded" in st:
        return "sign"
    return None


def _body(payload: bytes) -> tuple[str, dict] | None:
    try:
        outer = json.loads(payload)
        body = json.loads(outer["body"]) if isinstance(outer, dict) and "body" in outer else outer
        return body.get("cmd"), body.get("args") or {}
    except (ValueError, TypeError, AttributeError, KeyError):
        return None


class Replay:
    def __init__(self, recording: str | Path, scenario=None, dt: float = 0.5) -> None:
        self.msgs = list(read(recording))
        if not self.msgs:
            raise ValueError(f"{recording}: empty recording")
        self.t0 = self.msgs[0].t
        self.dt = dt
        self.recorded: dict[str, list[tuple[float, dict]]] = {}
        self.roles: dict[str, str] = {}
        self.vis: dict[str, tuple[list[float], list[float]]] = {}
        self.commands: list[tuple[float, str, str, dict]] = []
        for m in self.msgs:
            parts = m.topic.split("/")
            if len(parts) >= 3 and parts[0] == "re" and parts[2] == "state" and parts[1] != "ctl":
                try:
                    st = json.loads(m.payload)
                except ValueError:
                    continue
                if not isinstance(st, dict):
                    continue
                role = _role(parts[1], st)
                if role is None:
                    continue
                self.roles[parts[1]] = role
                self.recorded.setdefault(parts[1], []).append((m.t, st))
                if role == "beacon" and isinstance(st.get("vis_m"), (int, float)):
                    ts, vs = self.vis.setdefault(parts[1], ([], []))
                    ts.append(m.t)
                    vs.append(st["vis_m"])
            elif len(parts) == 4 and parts[0] == "re" and parts[2] == "cmd":
                c = _body(m.payload)
                if c:
                    self.commands.append((m.t, parts[1], c[0], c[1]))
        self.replayed: dict[str, list[tuple[float, dict]]] = {d: [] for d in self.recorded}
        self.scenario = scenario
        self.devices: dict[str, object] = {}
        self._make_devices()

    def _out_for(self, dev: str):
        def out(topic: str, obj, qos=0, retain=False) -> None:
            if topic == wire.topic(dev, wire.STATE) and isinstance(obj, dict):
                self.replayed[dev].append((round(self.t0 + self._now_ms / 1000, 3), dict(obj)))
        return out

    def _make_devices(self) -> None:
        sc = self.scenario
        bspecs = {b.id: b for b in sc.beacons} if sc else {}
        sspecs = {s.id: s for s in sc.signs} if sc else {}
        raw = sc.raw.get("devices", {}) if sc else {}
        bparams = (raw.get("beacons") or {}).get("params")
        for dev, role in self.roles.items():
            first = self.recorded[dev][0][1]
            if role == "beacon":
                spec = bspecs.get(dev) or BeaconSpec(dev, "?", float(first.get("pos_m", 0)) / 1000, "R", "?", 0, 0)
                self.devices[dev] = SimBeacon(spec, 0.0, bparams, self._out_for(dev))
            else:
                spec = sspecs.get(dev) or SignSpec(dev, "?", 0.0, None, 0, 0)
                self.devices[dev] = SimSign(spec, None, False, self._out_for(dev))

    def run(self) -> list[Difference]:
        end = self.msgs[-1].t
        cmds = sorted(self.commands, key=lambda c: c[0])
        ci = 0
        t = self.t0
        self._now_ms = 0
        signs = [d for d in self.devices.values() if isinstance(d, SimSign)]
        beacons = [d for d in self.devices.values() if isinstance(d, SimBeacon)]
        while t <= end + 1e-9:
            while ci < len(cmds) and cmds[ci][0] <= t + 1e-9:
                ct, dev, name, args = cmds[ci]
                ci += 1
                d = self.devices.get(dev)
                if d is None:
                    continue
                self._now_ms = mono = int(round((ct - self.t0) * 1000))
                if isinstance(d, SimSign):
                    d.command(mono, name, args)
                    d.step(mono, ct)
                else:
                    d.command(mono, name, args)
            t = round(t + self.dt, 6)
            self._now_ms = mono = int(round((t - self.t0) * 1000))
            for b in beacons:
                if b.poll_due(mono):
                    ts, vs = self.vis.get(b.id, ([], []))
                    i = bisect.bisect_right(ts, t + 1e-6) - 1
                    if i >= 0:
                        b.reading(mono, vs[i], t)
                    else:
                        b.next_poll = mono + b.poll_ms
            for s in signs:
                s.step(mono, t)
        return self.compare()

    def compare(self, limit: int = 200) -> list[Difference]:
        diffs: list[Difference] = []
        for dev, rec in sorted(self.recorded.items()):
            fields = BEACON_FIELDS if self.roles[dev] == "beacon" else SIGN_FIELDS
            rep = self.replayed.get(dev, [])
            a = _changes(rec, fields)
            b = _changes(rep, fields)
            for k in range(max(len(a), len(b))):
                ra = a[k] if k < len(a) else None
                rb = b[k] if k < len(b) else None
                if ra is None or rb is None:
                    t = (ra or rb)[0]
                    diffs.append(Difference(t, dev, "state", None if ra is None else ra[1],
                                            None if rb is None else rb[1]))
                    break
                if ra[1] != rb[1] or abs(ra[0] - rb[0]) > 1e-3:
                    diffs.append(Difference(ra[0], dev, f"state at replayed t={rb[0]:.3f}", ra[1], rb[1]))
                    break
        return diffs[:limit]


def _changes(seq: list[tuple[float, dict]], fields) -> list[tuple[float, dict]]:
    out: list[tuple[float, dict]] = []
    for t, st in seq:
        v = {f: st.get(f) for f in fields}
        if not out or out[-1][1] != v:
            out.append((t, v))
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recording", help="a `roadedge record` file (or `roadedge sim run --record`)")
    p.add_argument("--scenario", help="the deployment's scenario file (device parameters and positions)")
    p.add_argument("--max", type=int, default=30, help="differences to list")


def run(args) -> int:
    from host_tools.deployment.scenario import ScenarioError, load

    try:
        sc = load(args.scenario) if args.scenario else None
        rp = Replay(args.recording, sc)
    except (ScenarioError, ValueError, OSError) as e:
        print(f"replay: {e}")
        return 2
    diffs = rp.run()
    nb = sum(1 for r in rp.roles.values() if r == "beacon")
    ns = len(rp.roles) - nb
    print(f"replayed {len(rp.msgs)} messages: {nb} beacons, {ns} signs, {len(rp.commands)} commands re-applied")
    if not diffs:
        print("outputs reproduced: every beacon and sign state matches the recording")
        return 0
    print(f"{len(diffs)} devices differ (first difference of each):")
    for d in diffs[: args.max]:
        print("  " + str(d))
    return 1
