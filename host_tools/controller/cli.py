"""`roadedge controller`: run the fog-zone variable speed-limit controller for one zone.

It listens to the visibility the beacons (and signs with their own meter) report, runs the pure
decision core (`controller.policy`) on every report and once a second, sends signed `set_limit`
commands and periodic signed heartbeats to the signs, takes signed operator actions on
`re/ctl/<zone>/op` (the device command scheme with the console's operator key: forged, replayed,
expired or malformed ones are refused and counted), publishes its view retained on
`re/ctl/<zone>/state`, publishes the broker time beacon on `re/sys/time`, and writes every decision
and human action to the SQLite audit log. It logs in as its zone's own account `controller-<zone>`
(`roadedge provision --zone`; see `account`), allowed its own signs and zone only. A supervisor restarts the MQTT network thread if it dies,
and says so in the state.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time

from host_tools.controller.audit import Audit
from host_tools.controller.policy import MODES, Decision, ZonePolicy
from host_tools.controller.zone import ZoneConfig, ZoneConfigError
from roadedge import wire, wire_access

RESEND_MIN_S = 5.0  # at most one re-send of the commanded limit per sign this often
TIME_BEACON_S = 10.0
TICK_S = 1.0  # timers (confirmation, release, approve timeout, staleness) are judged this often
OP_MAX_BYTES = 2048  # the signed-command size limit of roadedge.core.auth
VIS_KEYS = ("vis_m",)  # the beacons' (and signs') visibility field in state / tele / event


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--zone", required=True, help="zone config JSON (signs in road order, upstream first)")
    p.add_argument("--db", required=True, help="SQLite audit log")
    p.add_argument("--mode", choices=MODES,
                   help="automatic, approve (a supervisor approves each change) or manual (default: the mode a "
                        "supervisor last set for the zone, else automatic)")
    p.add_argument("--no-time-beacon", action="store_true", help="do not publish re/sys/time")
    p.add_argument("--quiet", action="store_true", help="no live table on the terminal")
    from host_tools.fleet import connect as broker

    broker.add_broker_arguments(p)


def account(secrets, cfg: ZoneConfig) -> tuple[str | None, str | None]:
    """(user, password) the controller of cfg's zone logs in with: its own account `controller-<zone>`
    when provisioned (`roadedge provision --zone`); the single `controller` account of a single-zone
    set-up when no zone has an account of its own; (None, None) without secrets (a test broker).
    Raises when other zones have accounts but this one has none: under `controller` it would still
    command every sign, and two such processes would displace each other at the broker."""
    own = secrets.services.get(wire_access.zone_account(cfg.zone))
    if isinstance(own, dict) and own.get("mqtt_password"):
        return wire_access.zone_account(cfg.zone), own["mqtt_password"]
    others = sorted(n for n, e in secrets.services.items()
                    if isinstance(e, dict) and e.get("role") == wire_access.ZONE_CONTROLLER)
    if others:
        raise ValueError(f"no account {wire_access.zone_account(cfg.zone)} in the secrets (zone controllers provisioned: "
                         f"{', '.join(others)}): run `roadedge provision --zone <this zone's config>` and restart "
                         "the broker")
    svc = secrets.services.get("controller")
    if isinstance(svc, dict) and svc.get("mqtt_password"):
        return "controller", svc["mqtt_password"]
    return None, None


def account_drift(secrets, cfg: ZoneConfig) -> str | None:
    """A warning when the zone's account was provisioned for other signs or sources than cfg has (the
    broker refuses commands to a sign the account does not list)."""
    e = secrets.services.get(wire_access.zone_account(cfg.zone))
    if not isinstance(e, dict) or e.get("role") != wire_access.ZONE_CONTROLLER:
        return None
    signs = sorted({s.id for s in cfg.signs})
    sources = sorted({src for s in cfg.signs for src in s.sources} - set(signs))
    if e.get("signs") == signs and e.get("sources", []) == sources:
        return None
    return (f"{wire_access.zone_account(cfg.zone)} was provisioned for other signs/sources than {cfg.zone}'s config lists: "
            "re-run `roadedge provision --zone` with it and restart the broker")


class _Nowhere:
    """A bus and a lamp that go nowhere: drivers used only to compute check values."""

    def write(self, _b) -> None:
        pass

    def value(self, v=None) -> int:
        return 0


def face_check(face: dict, limit: int | None, legend: str) -> int:
    """The check value a sign with this face computes for the message (the firmware's own drivers)."""
    if face["display"] == "7seg":
        from roadedge.sign.display_7seg import SevenSegDisplay

        d = SevenSegDisplay(_Nowhere(), face.get("digits", 3), _Nowhere() if face.get("lamp", True) else None)
    else:
        from roadedge.sign.display_max7219 import MatrixDisplay

        d = MatrixDisplay(_Nowhere(), face.get("cols", 4), face.get("rows", 3))
    return d.preview_check(limit, legend)


def sign_payload(keyring, sign: str, cmd: str, args: dict, ttl_s: int) -> bytes:
    """The one place commands get signed (host_tools.keys, the firmware's own auth)."""
    return keyring.signer(sign).sign(cmd, args, ttl_s)


def set_limit_args(cfg: ZoneConfig, limit: int, legend: str, hold: bool) -> dict:
    """The set_limit arguments for a decision (shared with the simulator, which runs this controller)."""
    args = {"limit": limit, "legend": legend, "priority": cfg.priority, "duration_s": cfg.duration_s}
    if hold:
        args["hold"] = True  # a supervisor's hold: the sign's own fallback never shows more
    return args


def operator_auth(keyring, zone: str, state_path: str):
    """The verifier of signed operator actions (the firmware's CommandAuth, replay counter persisted),
    or None when no operator key is configured: then every action is refused (fail closed)."""
    from roadedge.core.auth import CommandAuth

    from host_tools.keys import operator_id

    key = getattr(keyring, "operator_key", None)
    return CommandAuth(key, operator_id(zone), state_path) if key else None


class Controller:
    """The I/O shell around ZonePolicy: MQTT in/out, signing, audit, timers.

    `client` is a connected paho client (network loop running); `now` is injectable for tests."""

    def __init__(self, cfg: ZoneConfig, client, keyring, audit: Audit, mode: str = "automatic",
                 time_beacon: bool = True, now=time.time, out=None, op_auth=None) -> None:
        self.cfg = cfg
        self.client = client
        self.keyring = keyring
        self.audit = audit
        self.policy = ZonePolicy(cfg, mode)
        self.time_beacon = time_beacon
        self.now = now
        self.out = out
        self.lock = threading.RLock()
        self.sign_ids = {s.id for s in cfg.signs}
        self.faces = {s.id: s.face for s in cfg.signs if s.face}
        self.sources = {src for s in cfg.signs for src in s.sources}
        self.last_resend: dict[str, float] = {}
        self.sent: dict[str, dict] = {}  # sign -> {ctr-less record of the last command}
        self.op_auth = op_auth
        self.stats = {"commands": 0, "heartbeats": 0, "resends": 0, "acks_bad": 0, "vis": 0, "ops": 0,
                      "ops_accepted": 0, "ops_rejected": {}, "vis_rejected": 0, "msg_errors": 0,
                      "thread_restarts": 0}
        self.stop_ev = threading.Event()
        self.subscribed = threading.Event()  # the broker confirmed the subscriptions (attach)
        self.saved: dict[str, tuple] = {}
        self.saved_mode = audit.saved_mode() or mode
        for sid, (commanded, hold) in audit.standing().items():
            s = self.policy.by_id.get(sid)
            if s is not None:
                s.commanded, s.hold = commanded, hold
                self.saved[sid] = (commanded, hold)
        self.state_topic = wire.ctl_topic(cfg.zone, "state")
        self.op_topic = wire.ctl_topic(cfg.zone, "op")

    # ---- MQTT
    def topics(self) -> list[str]:
        topics = [self.op_topic]
        for dev in sorted(self.sources | self.sign_ids):
            topics += [wire.topic(dev, k) for k in (wire.STATE, wire.TELE, wire.EVENT)]
        return topics + [wire.topic(s, wire.ACK) for s in sorted(self.sign_ids)]

    def subscribe(self) -> None:
        """Subscribe on an already connected client (tests; `attach` is what the service uses)."""
        from host_tools.fleet.connect import Subscription

        Subscription(self.client, self.topics(), qos=1)
        self.client.on_message = self._mqtt_message
        self._note_network_thread()

    def attach(self, client) -> None:
        """Before CONNECT (persistent session): every QoS 1 message is acknowledged by hand once it is
        handled and what it decided is in the audit database (SQLite, committed per write), so nothing
        the broker handed over is lost if the controller dies; the backlog of a session kept while it
        was down flows from the CONNACK on, into these callbacks. Subscribes on every (re)connect."""
        self.client = client  # the backlog's decisions publish through it before connect() returns
        client.manual_ack_set(True)
        client.on_connect = self._mqtt_connect
        client.on_subscribe = lambda *_a: self.subscribed.set()
        client.on_message = self._mqtt_message

    def _mqtt_connect(self, client, _u, flags, rc, _p=None) -> None:
        if not rc.is_failure:
            client.subscribe([(t, 1) for t in self.topics()])  # again: retained state and any new topic
            if getattr(flags, "session_present", False):
                self.subscribed.set()  # the session kept the subscriptions: its backlog is already flowing

    def _mqtt_message(self, client, _u, m) -> None:
        self.on_message(m.topic, bytes(m.payload), bool(m.retain))  # never raises
        if m.qos:
            client.ack(m.mid, m.qos)  # a no-op unless attach() turned manual acknowledgement on

    def on_message(self, topic: str, payload: bytes, retained: bool = False) -> None:
        """Never raises: a message the code did not foresee is counted and audited, and the network
        thread that called us keeps running."""
        try:
            self._on_message(topic, payload, retained)
        except Exception as e:  # noqa: BLE001 - nothing a message contains may stop the controller
            self.stats["msg_errors"] += 1
            try:
                self.audit.write("error", f"message on {topic[:100]} not handled: {type(e).__name__}: {e}"[:500],
                                 mode=self.policy.mode)
            except Exception:  # noqa: BLE001 - the audit itself failing must not kill the thread either
                pass

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        if topic == self.op_topic:
            with self.lock:
                self.operator(payload, retained)
            return
        try:
            obj = json.loads(payload.decode())
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            obj = None
        with self.lock:
            parsed = wire.parse(topic)
            if parsed is None or parsed[0] not in wire.DEVICE_KINDS or not isinstance(obj, dict):
                return
            kind, dev, _ = parsed
            now = self.now()
            if dev in self.sources and kind in ("state", "tele", "event") and self._visibility(dev, obj, retained, now):
                ds = self.policy.update(now)  # decide on every report: tightening is never kept waiting
                self.apply(ds)
                if ds:  # otherwise the once-a-second tick publishes the view (hundreds of beacons report)
                    self.publish_state()
            if dev in self.sign_ids and kind == "state":
                self.policy.sign_state(dev, obj)
                self._maybe_resend(dev, now)
                self.publish_state()
            elif dev in self.sign_ids and kind == "ack":
                if not obj.get("ok") and obj.get("cmd") in ("set_limit", "clear"):
                    self.stats["acks_bad"] += 1
                    self.audit.write("ack", f"sign rejected {obj.get('cmd')}: {obj.get('code')} {obj.get('detail')}",
                                     sign=dev, mode=self.policy.mode, inputs=obj)

    def _visibility(self, dev: str, obj: dict, retained: bool, now: float) -> bool:
        v = next((obj[k] for k in VIS_KEYS if k in obj), None)
        if v is None:
            return False
        ts = obj.get("ts")
        at = now
        if retained:
            # a retained report may be old: trust it only with a plausible timestamp
            if not isinstance(ts, (int, float)) or isinstance(ts, bool) or ts <= 0 or ts > now + 5:
                return False
            at = float(ts)
        if self.policy.visibility(dev, v, at):
            self.stats["vis"] += 1
            return True
        self.stats["vis_rejected"] += 1
        return False

    # ---- actions
    def _send(self, sign: str, limit: int | None, legend: str, why: str, action: str = "send") -> None:
        cfg = self.cfg
        if limit is None:
            cmd, args = "clear", {}
        else:
            s = self.policy.by_id.get(sign)
            cmd, args = "set_limit", set_limit_args(cfg, limit, legend, s is not None and s.hold == limit)
            face = self.faces.get(sign)
            if face:
                args["check"] = face_check(face, limit, legend)
        try:
            payload = sign_payload(self.keyring, sign, cmd, args, cfg.command_ttl_s)
        except LookupError as e:
            self.audit.write("refused", f"cannot sign for {sign}: {e}", sign=sign, limit=limit, mode=self.policy.mode)
            return
        self.client.publish(wire.cmd_topic(sign, cmd), payload, qos=1)
        self.stats["commands"] += 1
        self.sent[sign] = {"cmd": cmd, "args": args, "at": self.now()}
        self.audit.write(action, why, sign=sign, limit=limit, mode=self.policy.mode, inputs={"cmd": cmd, "args": args})

    def _maybe_resend(self, sign: str, now: float) -> None:
        """The sign shows something other than the standing decision (after a power-up, reset, comms loss
        or a lost command): send the decision again, audited; never more often than RESEND_MIN_S."""
        s = self.policy.by_id[sign]
        if s.commanded is None and sign not in self.sent:
            return
        if s.source == "central" and s.displayed == s.commanded:
            return
        if s.source == "local":
            return  # a technician has it: the sign refuses us anyway
        if s.source is None:
            return  # not heard from yet
        last = max(self.last_resend.get(sign, 0.0), self.sent.get(sign, {}).get("at", 0.0))
        if now - last < RESEND_MIN_S:
            return  # just sent: its state may not reflect it yet
        self.last_resend[sign] = now
        self.stats["resends"] += 1
        self._send(sign, s.commanded, self.policy.legend_for(s.commanded),
                   f"sign shows {s.displayed} ({s.source}); standing decision {s.commanded}", "resend")

    def apply(self, decisions: list[Decision]) -> None:
        for d in decisions:
            self.audit.write(d.kind, d.why, who=d.who, sign=d.sign, limit=d.limit, mode=self.policy.mode,
                             inputs=d.inputs or None)
            if d.command and d.sign:
                self._send(d.sign, d.limit, d.legend, d.why)

    def _reject_op(self, code: str, why: str, raw: bytes) -> None:
        r = self.stats["ops_rejected"]
        r[code] = r.get(code, 0) + 1
        self.audit.write("refused", f"operator action rejected ({code}): {why}", who="?", mode=self.policy.mode,
                         inputs={"code": code, "bytes": len(raw), "head": raw[:120].decode("utf-8", "replace")})
        self.publish_state()

    def operator(self, payload: bytes, retained: bool = False) -> None:
        """A signed operator action. Accepted only with the console's signature (which carries the user
        and the role of its verified session), a fresh counter and expiry; everything else is counted."""
        try:
            self._operator(payload, retained)
        finally:
            self.stats["ops"] += 1  # handled (after its outcome is counted)

    def _operator(self, payload: bytes, retained: bool) -> None:
        if retained:
            return self._reject_op("retained", "an old action left on the broker is not a person acting now",
                                   payload)
        if len(payload) > OP_MAX_BYTES:
            return self._reject_op("too_big", f"{len(payload)} bytes", payload)
        if self.op_auth is None:
            return self._reject_op("no_key", "no operator key configured: operator actions are refused", payload)
        code, body = self.op_auth.check("op", payload, self.now())
        if code != "ok":
            return self._reject_op(code, "signature, counter, expiry or zone do not verify", payload)
        op = body["args"]
        user, role = op.get("user"), op.get("role")
        self.audit.write("op", f"operator action {json.dumps(op, default=str)[:500]}", who=str(user or "?")[:64],
                         role=role[:32] if isinstance(role, str) else None, mode=self.policy.mode,
                         inputs={"op": op, "ctr": body["ctr"]})
        ds = self.policy.operator(op)
        if ds and all(d.kind == "refused" for d in ds):  # verified, but not allowed (role, limit, types)
            r = self.stats["ops_rejected"]
            r["refused"] = r.get("refused", 0) + 1
        else:
            self.stats["ops_accepted"] += 1
        self.apply(ds)
        self.publish_state()

    def update(self) -> None:
        with self.lock:
            now = self.now()
            self.apply(self.policy.update(now))
            for s in self.policy.signs:
                self._maybe_resend(s.id, now)
            self.publish_state()

    def heartbeats(self) -> None:
        with self.lock:
            for sid in sorted(self.sign_ids):
                try:
                    payload = sign_payload(self.keyring, sid, "heartbeat", {"zone": self.cfg.zone}, self.cfg.command_ttl_s)
                except LookupError:
                    continue
                # QoS 1 like the commands: one ordered stream per sign, so a later counter never overtakes
                self.client.publish(wire.cmd_topic(sid, "heartbeat"), payload, qos=1)
                self.stats["heartbeats"] += 1

    def _persist(self) -> None:
        if self.saved_mode != self.policy.mode:
            self.audit.save_mode(self.policy.mode)
            self.saved_mode = self.policy.mode
        for s in self.policy.signs:
            cur = (s.commanded, s.hold)
            if self.saved.get(s.id) != cur:
                self.audit.save_standing(s.id, *cur)
                self.saved[s.id] = cur

    def publish_state(self) -> None:
        self._persist()
        snap = self.policy.snapshot(self.now())
        snap["closure"] = [s["id"] for s in snap["signs"] if s["closure"]]
        snap["stats"] = json.loads(json.dumps(self.stats))
        self.client.publish(self.state_topic, json.dumps(snap), qos=1, retain=True)
        if self.out is not None:
            self.out(snap)

    def time_tick(self) -> None:
        if self.time_beacon:
            self.client.publish(wire.TIME_TOPIC, json.dumps({"t": int(self.now() * 1000)}), qos=0)

    def _note_network_thread(self) -> None:
        """A threaded network loop is running now: from here on the supervisor looks after it (even if it
        dies before the main loop first looks)."""
        t = getattr(self.client, "_thread", None)
        if t is not None and t.is_alive():
            self._net_seen = True

    def supervise(self) -> None:
        """Restart the MQTT network thread if it died (it should not: on_message never raises), audited
        and counted in the state, so a zone never goes deaf while its heartbeats still go out."""
        t = getattr(self.client, "_thread", None)  # paho sets it to None when its loop thread ends
        if t is not None and t.is_alive():
            self._net_seen = True
            return
        if not getattr(self, "_net_seen", False) or self.stop_ev.is_set():
            return  # no threaded loop to look after (tests), or we are stopping it
        self.stats["thread_restarts"] += 1
        self.audit.write("restart", "MQTT network thread had died: restarted", mode=self.policy.mode,
                         inputs={"restarts": self.stats["thread_restarts"]})
        self.client._thread = None
        self.client.loop_start()
        self.publish_state()

    # ---- main loop (wall clock)
    def audit_start(self) -> None:
        """The audit's first row of this run: before subscribing, since decisions follow every report."""
        if getattr(self, "_started", False):
            return
        self._started = True
        cfg = self.cfg
        self.audit.write("start", f"controller started in {self.policy.mode} mode", mode=self.policy.mode,
                         inputs={"zone": cfg.zone, "signs": [s.id for s in cfg.signs], "params": cfg.params,
                                 "standing": {k: list(v) for k, v in self.saved.items()}})

    def run(self) -> None:
        cfg = self.cfg
        self.audit_start()
        self.time_tick()
        next_upd = time.monotonic() + 2.0  # first decision once retained state is in
        next_hb = time.monotonic()
        next_time = time.monotonic() + TIME_BEACON_S
        while not self.stop_ev.is_set():
            t = time.monotonic()
            self.supervise()
            if t >= next_hb:
                self.heartbeats()
                next_hb = t + cfg.heartbeat_s
            if t >= next_upd:
                self.update()
                next_upd = t + TICK_S
            if t >= next_time:
                self.time_tick()
                next_time = t + TIME_BEACON_S
            self.stop_ev.wait(max(0.05, min(next_hb, next_upd, next_time) - time.monotonic()))
        self.audit.write("stop", "controller stopped", mode=self.policy.mode)


def _live(console):
    """A compact live table of the zone on the terminal."""
    from rich.table import Table

    def show(snap: dict) -> None:
        t = Table(title=f"zone {snap['zone']} - {snap['mode']} - update {snap['updates']}", expand=False)
        for col in ("sign", "km", "vis m", "level", "recommended", "pending", "commanded", "hold", "shows",
                    "source", "closure"):
            t.add_column(col)
        for s in snap["signs"]:
            t.add_row(s["id"], f"{s['km']:g}", "-" if s["vis_m"] is None else f"{s['vis_m']:g}", str(s["level"]),
                      str(s["recommended"]), str(s["pending"] or ""), str(s["commanded"]), str(s["hold"] or ""),
                      f"{s['displayed']} {s['legend']}".strip(), str(s["source"]), "CLOSE" if s["closure"] else "")
        console.clear()
        console.print(t)

    return show


def run(args) -> int:
    from rich.console import Console

    from host_tools.config.secrets import Secrets
    from host_tools.fleet import connect as broker
    from host_tools.keys import Keyring

    err = Console(stderr=True)
    try:
        cfg = ZoneConfig.load(args.zone)
    except ZoneConfigError as e:
        err.print(f"[red]zone config: {e}[/]")
        return 2
    try:
        secrets = Secrets.load(args.secrets)
        keyring = Keyring.load(args.secrets)
    except ValueError as e:
        err.print(f"[red]{e}[/]")
        return 1
    user, password = args.user, args.password
    if not user:
        try:
            user, password = account(secrets, cfg)
        except ValueError as e:
            err.print(f"[red]{e}[/]")
            return 1
        drift = account_drift(secrets, cfg)
        if drift:
            err.print(f"[yellow]{drift}[/]")
    keyring = keyring.only(s.id for s in cfg.signs)  # least privilege: its own signs' keys (and the operator key)
    audit = Audit(args.db, cfg.zone)
    out = None if args.quiet or not sys.stdout.isatty() else _live(Console())
    op_auth = operator_auth(keyring, cfg.zone, str(args.db) + ".op-counter.json")
    if op_auth is None:
        err.print("[yellow]no controller operator_key in the secrets: operator actions will be refused[/]")
    # an operator's mode change outlives a restart unless --mode says otherwise
    mode = args.mode or audit.saved_mode() or "automatic"
    ctl = Controller(cfg, None, keyring, audit, mode, time_beacon=not args.no_time_beacon, out=out,
                     op_auth=op_auth)
    ctl.audit_start()
    # a persistent session under a stable id (the account's name, the one id the broker accepts for
    # it): operator actions and reports sent while the controller is down wait at the broker
    try:
        client = broker.connect(broker.broker_url(args), user, password, args.ca, secrets, name="controller",
                                session=user or f"roadedge-controller-{cfg.zone}", prepare=ctl.attach)
    except broker.BrokerError as e:
        err.print(f"[red]{e}[/]")
        audit.close()
        return 1
    signal.signal(signal.SIGTERM, lambda *_: ctl.stop_ev.set())
    try:
        if not ctl.subscribed.wait(30):
            err.print("[red]the broker did not confirm the controller's subscriptions[/]")
            return 1
        ctl._note_network_thread()
        if out is None:
            print(f"controller: zone {cfg.zone}, {len(cfg.signs)} signs, mode {mode}, audit {args.db}, "
                  f"MQTT user {user or 'anonymous'}", flush=True)
        ctl.run()
    except KeyboardInterrupt:
        pass
    finally:
        audit.close()
        broker.close(client)
    return 0
