"""A road section in synthetic time (1 s ticks) for scenario and property tests: the real zone
controller (its pure policy, or the whole I/O shell with a recording client) and one real
SignPolicy per sign, beacons polling their meter every 5 s, a command round trip and a link that can
be cut. The tests state what each sign must display; this file only moves messages."""
from __future__ import annotations

import json

from host_tools.controller.audit import Audit
from host_tools.controller.cli import Controller, operator_auth, set_limit_args
from host_tools.controller.policy import ZonePolicy
from host_tools.controller.zone import ZoneConfig
from host_tools.keys import Keyring
from roadedge.sign.policy import SignPolicy

METER_S = 5  # the beacons' meter poll (roadedge.beacon.meter DEFAULTS)
RTT_S = 1  # command round trip: controller -> broker -> sign
NORMAL = 100
OP_KEY = "5a" * 32


def zone_cfg(n: int, own_meter: tuple[int, ...] = (), **params) -> ZoneConfig:
    """n signs 500 m apart, upstream first; sign i is fed by beacon bcn-i (and its own meter if listed)."""
    return ZoneConfig.from_dict({"zone": "z", "signs": [
        {"id": f"vsl-{i}", "km": 10 + 0.5 * i, "sources": [f"bcn-{i}"] + ([f"vsl-{i}"] if i in own_meter else [])}
        for i in range(n)], **params})


class _Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def publish(self, topic, payload, qos=0, retain=False):
        self.sent.append((topic, payload if isinstance(payload, bytes) else str(payload).encode()))


class Section:
    def __init__(self, n: int = 5, mode: str = "automatic", shell: bool = False, own_meter: tuple[int, ...] = (),
                 sign_cfg: dict | None = None, tmp_path=None, **params) -> None:
        self.cfg = zone_cfg(n, own_meter, **params)
        self.n = n
        self.ids = [s.id for s in self.cfg.signs]
        self.own_meter = set(own_meter)
        self.shell = shell
        self.t = 0
        if shell:
            self.client = _Recorder()
            self.audit = Audit(":memory:" if tmp_path is None else tmp_path / "audit.sqlite", "z")
            keys = {sid: {"command_key": f"{i + 1:02x}" * 32, "mqtt_password": "x"} for i, sid in enumerate(self.ids)}
            # the console signs on the section's clock: the controller judges expiry and the
            # counter window (roadedge.core.auth) on it too
            self.keyring = Keyring(keys, operator_key=OP_KEY, clock=lambda: self.t)
            op_auth = operator_auth(self.keyring, "z", str((tmp_path or _tmp()) / "op-ctr.json"))
            self.ctl = Controller(self.cfg, self.client, self.keyring, self.audit, mode, time_beacon=False,
                                  now=lambda: self.t, op_auth=op_auth)
            self.policy = self.ctl.policy
        else:
            self.policy = ZonePolicy(self.cfg, mode)
        self.signs = {sid: SignPolicy(sign_cfg) for sid in self.ids}
        for sp in self.signs.values():
            sp.boot(0, "power_on", None)
        self.link = True  # controller <-> signs
        self.meters = {i: True for i in range(n)}  # beacon meters working
        self.flight: list[tuple[int, str, dict]] = []  # (deliver at, sign, args)
        self.log: list[tuple[int, tuple, tuple]] = []  # (t, shown per sign, beacon reading per sign)
        self.last_reading: dict[int, float] = {}
        self.decisions = []

    # --- controller side ---------------------------------------------------------------
    def _take(self, decisions) -> None:
        self.decisions += [(self.t, d) for d in decisions]
        for d in decisions:
            if d.command and d.limit is not None:
                self.flight.append((self.t + RTT_S, d.sign, set_limit_args(self.cfg, d.limit, d.legend, d.hold)))

    def _sent_commands(self) -> None:
        for topic, payload in self.client.sent:
            parts = topic.split("/")
            if len(parts) == 4 and parts[2] == "cmd":
                body = json.loads(json.loads(payload)["body"])
                if parts[3] in ("set_limit", "heartbeat"):
                    self.flight.append((self.t + RTT_S, parts[1], dict(body["args"], _cmd=parts[3])))
        self.client.sent.clear()

    def reading(self, src: str, vis) -> None:
        if not self.link and self.shell:
            return
        if self.shell:
            self.ctl.on_message(f"re/{src}/tele", json.dumps({"vis_m": vis, "ts": self.t}).encode())
            self._sent_commands()
        else:
            if self.policy.visibility(src, vis, self.t):
                self._take(self.policy.update(self.t))

    def op(self, **op) -> list:
        """An operator action as the console sends it (signed, role from the session); the decisions."""
        op.setdefault("user", "wang")
        op.setdefault("role", "supervisor")
        if self.shell:  # the audit rows the action produced
            last = max((r["id"] for r in self.audit.rows()), default=0)
            self.ctl.operator(self.keyring.operator_signer("z").sign("op", op, 30))
            self._sent_commands()
            return self.audit.rows("id > ?", (last,))
        ds = self.policy.operator(op)
        self._take(ds)
        return ds

    # --- the world ------------------------------------------------------------------------
    def run(self, until: int, vis) -> None:
        """Advance to `until` s; vis(i, t) is the visibility at sign i (its beacon reads it)."""
        while self.t < until:
            self.t += 1
            t, ms = self.t, self.t * 1000
            if self.link:
                due = [f for f in self.flight if f[0] <= t]
                self.flight = [f for f in self.flight if f[0] > t]
                for _at, sid, args in due:
                    sp = self.signs[sid]
                    if args.get("_cmd") == "heartbeat":
                        sp.heartbeat(ms)
                    else:
                        sp.set_limit(ms, {k: v for k, v in args.items() if k != "_cmd"})
            else:
                self.flight = []  # lost with the link
            for i in range(self.n):
                v = vis(i, t)
                if i in self.own_meter and t % METER_S == 2:
                    self.signs[self.ids[i]].set_visibility(ms, v)
                    if self.shell:
                        self.reading(self.ids[i], v)
                if self.meters[i] and (t + i) % METER_S == 0:
                    self.last_reading[i] = v
                    self.reading(f"bcn-{i}", v)
            if self.shell:
                if self.link and t % self.cfg.heartbeat_s == 0:
                    self.ctl.heartbeats()
                self.ctl.update()
                self._sent_commands()
            else:
                self._take(self.policy.update(t))
                if self.link and t % self.cfg.heartbeat_s == 0:
                    for sp in self.signs.values():
                        sp.heartbeat(ms)
            for sid, sp in self.signs.items():
                sp.tick(ms)
                if self.link:
                    st = sp.state(ms)
                    if self.shell:
                        if sp.changed or t % 10 == 0:
                            self.ctl.on_message(f"re/{sid}/state", json.dumps(st).encode())
                            self._sent_commands()
                    else:
                        self.policy.sign_state(sid, st)
                sp.changed = False
            self.log.append((t, self.shown(), tuple(vis(i, t) for i in range(self.n))))

    def shown(self) -> tuple:
        return tuple(sp.shown()[0] for sp in self.signs.values())

    def at(self, t: int) -> tuple:
        """What the signs displayed at second t."""
        return next(s for tt, s, _v in self.log if tt == t)

    def first(self, pred, since: int = 0) -> int | None:
        """The first second at or after `since` whose displayed tuple satisfies pred (blank counts as
        no limit shown: above any limit)."""
        return next((t for t, s, _v in self.log if t >= since and pred(tuple(999 if x is None else x for x in s))),
                    None)


def _tmp():
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp(prefix="fogsection-"))


def const(v):
    return lambda _i, _t: v
