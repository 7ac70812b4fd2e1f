"""The console's operations: what a logged-in user may see and do, each action audited.

The HTTP layer (web.py) only parses requests and calls these methods; permission checks,
command signing and the audit record all happen here, so they are tested without a browser.
"""
from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable

from . import words
from .bus import Bus
from .fog_extent import fog_segments
from .incidents import DIRECTIONS, LANES, TYPES, IncidentDesk
from host_tools.deployment.roadnet import RoadNetwork
from .sanitize import PageFilter
from .store import Store
from roadedge import wire
from roadedge.sign.policy import DEFAULTS as _SIGN_DEFAULTS

# what the page offers for a manual limit: the signs' own range and step, capped by Art. 81 for the
# visibility (the controller checks again and has the last word)
SIGN_RULES = {"art81": wire.ART81, "min": _SIGN_DEFAULTS["limit_min"], "max": _SIGN_DEFAULTS["limit_max"],
              "step": _SIGN_DEFAULTS["limit_step"]}

# action -> roles allowed. Sign changes are the supervisor's alone (the controller checks too).
PERMS = {
    "sos_ack": ("dispatcher", "supervisor"),
    "incident_create": ("dispatcher", "supervisor"),
    "incident_close": ("dispatcher", "supervisor"),
    "dispatch": ("dispatcher", "supervisor"),
    "sign_op": ("supervisor",),
    "accounts": ("supervisor",),  # accounts.py: list, add, disable / enable, role, password
}
SIGN_ACTIONS = ("approve", "veto", "manual", "mode")
# device command -> the device role that accepts it from the console: the only keys the console holds
COMMAND_ROLE = {"dispatch": "tracker", "sos_ack": "tracker"}
COMMAND_KEY_ROLE = "tracker"


class Refused(Exception):
    def __init__(self, status: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status


class Console:
    Refused = Refused  # the incident desk answers with the console's refusal

    def __init__(self, store: Store, bus: Bus, publish: Callable[[str, bytes, int], None],
                 keyring=None, scenario=None, tile_url: str | None = None, stats: Callable[[], dict] | None = None):
        self.store, self.bus, self.publish = store, bus, publish
        self.sc = scenario
        self.tracker_ids = {t.id for t in scenario.trackers} if scenario else set()
        # least privilege: only the trackers' command keys (provisioned as trackers, or deployed as
        # trackers when provisioned without a role); the operator key stays, for the controllers
        self.keyring = keyring.of_role(COMMAND_KEY_ROLE, self.tracker_ids) if keyring is not None else None
        self.provisioned_as = {d: keyring.role(d) for d in keyring.devices} if keyring is not None else {}
        self.net = RoadNetwork.from_scenario(scenario) if scenario else None
        self.tile_url = tile_url
        self._ingest_stats = stats or (lambda: {})
        self.page = PageFilter()  # every device-supplied value passes it on the way to a page
        self.beacon_pos = {b.id: b for b in scenario.beacons} if scenario else {}
        self.sign_pos = {s.id: s for s in scenario.signs} if scenario else {}
        # stats and fog are summaries: sent at most twice a second, not once per ingest batch
        self._dirty: set[str] = set()
        self._dirty_lock = threading.Lock()
        self._closed = threading.Event()
        self.desk = IncidentDesk(self)  # the incident lifecycle (incidents.py)
        threading.Thread(target=self._flush_loop, name="dispatch-summaries", daemon=True).start()

    def close(self) -> None:
        self._closed.set()

    def _flush_loop(self) -> None:
        while not self._closed.wait(0.5):
            with self._dirty_lock:
                dirty, self._dirty = self._dirty, set()
            try:
                if "fog" in dirty:
                    self.bus.publish("fog", self.fog())
                if "stats" in dirty:
                    self.bus.publish("stats", self.stats())
            except Exception:  # a closed store at shutdown; the next round retries
                pass

    def _mark(self, *what: str) -> None:
        with self._dirty_lock:
            self._dirty.update(what)

    # -- permissions + audit --------------------------------------------------------
    def _check(self, sess: dict, action: str, target: str, detail: dict) -> None:
        if sess["role"] not in PERMS[action]:
            self.audit(sess, action, target, detail, f"refused: role {sess['role']} may not {action}")
            raise Refused(403, f"a {sess['role']} may not {action.replace('_', ' ')}")

    def _audited_target(self, sess: dict, cmd: str, dev: str, detail: dict) -> None:
        try:
            self._target(dev, cmd)
        except Refused as e:
            self.audit(sess, cmd, dev, detail, f"refused: {e}")
            raise

    def audit(self, sess: dict | None, action: str, target: str, detail, result: str) -> None:
        self.store.add_audit(sess and sess["user"], sess and sess["role"], action, target, detail, result)
        self.bus.publish("audit", self.store.audit(1)[0])

    def _device_kind(self, dev: str) -> str | None:
        """What provisioning or the deployment says dev is; never what the device claims of itself."""
        if self.provisioned_as.get(dev):
            return self.provisioned_as[dev]
        if dev in self.sign_pos:
            return "sign"
        if dev in self.beacon_pos:
            return "beacon"
        if dev in self.tracker_ids:
            return "tracker"
        return None

    def _target(self, dev: str, cmd: str) -> None:
        """Refused unless the console may send cmd to dev: it holds a key only for devices of the role
        that accepts the command (COMMAND_ROLE)."""
        if self.keyring is None:
            raise Refused(503, "no command keys loaded (--keys): cannot sign commands")
        role = COMMAND_ROLE[cmd]
        if dev in self.keyring.devices:
            return
        kind = self._device_kind(dev)
        if kind is not None and kind != role:
            raise Refused(409, f"{dev} is a {kind}: the console sends {cmd.replace('_', ' ')} only to patrol "
                               f"{role}s")
        raise Refused(409, f"{dev} is not a patrol {role} this console may command (neither a {role} of the "
                           "deployment nor provisioned as one)")

    def _send(self, dev: str, cmd: str, args: dict, ttl_s: int = 60) -> int:
        """Sign and publish a device command; returns its counter. Raises Refused without a key, and for
        a device that does not take this command from the console (it holds the trackers' keys only)."""
        self._target(dev, cmd)
        from host_tools.keys import UnknownDevice

        try:
            payload = self.keyring.signer(dev).sign(cmd, args, ttl_s)
        except UnknownDevice as e:
            raise Refused(409, str(e)) from None
        ctr = json.loads(json.loads(payload)["body"])["ctr"]
        self.publish(wire.cmd_topic(dev, cmd), payload, 1)
        return ctr

    # -- reads -------------------------------------------------------------------
    def stats(self) -> dict:
        return {**self._ingest_stats(), "cleaned": self.page.summary()}

    def _kept(self, items, check, what: str) -> list:
        """check(item) for each item; one that fails is left out and counted, never fails the rest."""
        out = []
        for it in items:
            try:
                out.append(check(it))
            except Exception:
                who = it.get("id", it.get("device")) if isinstance(it, dict) else None
                self.page.count("dropped", what, str(who)[:64])
        return out

    def _devices(self, ids=None) -> list[dict]:
        return self._kept(self.store.devices(ids), self.page.device, "device")

    def _sos(self) -> list[dict]:
        return self._kept(self.store.sos(), lambda s: self.page.with_position(s, ("sos", s["device"])), "sos")

    def _ctl(self) -> dict[str, dict]:
        out = {}
        for zone, z in self.store.ctl().items():
            z = self.page.obj(z, ("ctl", zone))
            if z is not None:
                out[str(zone)[:64]] = z
        return out

    def _dispatches(self, ids=None) -> list[dict]:
        return self._kept(self.store.dispatches(ids), lambda d: self.page.json(d, ("dispatch", d["unit"])), "dispatch")

    def snapshot(self) -> dict:
        """Everything the page starts from. One bad record is left out (and counted), never the lot."""
        devs = self._devices()
        return {
            "now": time.time(),
            "units": self._with_unit_status([d for d in devs if self._is_unit(d)]),
            "signs": self._guard(lambda: self.signs(devs), [], "signs"),
            "beacons": self._guard(lambda: self.beacons(devs), [], "beacons"),
            "fog": self._guard(lambda: self.fog(devs), [], "fog"),
            "ctl": self._guard(self._ctl, {}, "ctl"),
            "sos": self._guard(self._sos, [], "sos"),
            "incidents": self._kept(self.desk.incidents(), lambda i: self.page.with_position(i, ("incident",)),
                                    "incident"),
            "incident_form": {"types": TYPES, "directions": DIRECTIONS, "lanes": LANES},
            "dispatches": self._guard(self._dispatches, [], "dispatches"),
            "rejects": self._guard(lambda: self.page.json(self.store.rejects(), ("rejects",)), {}, "rejects"),
            "stats": self.stats(),
            "audit": self.store.audit(50),
            "roads": self.roads(),
            "tile_url": self.tile_url,
            "words": words.for_page(),
            "sign_rules": SIGN_RULES,
        }

    def _guard(self, part, default, what: str):
        try:
            return part()
        except Exception:
            self.page.count("dropped", what)
            return default

    def _is_unit(self, d: dict) -> bool:
        return d["role"] == "tracker" or d["id"] in self.tracker_ids or d["lat"] is not None

    def roads(self) -> dict | None:
        if not self.sc:
            return None
        g = self.sc.geojson()
        return {"type": "FeatureCollection",
                "features": [f for f in g["features"] if f["properties"]["kind"] not in ("beacon", "sign")]}

    def signs(self, devs: list[dict]) -> list[dict]:
        out, seen = [], set()
        for d in devs:
            sp = self.sign_pos.get(d["id"])
            if d["role"] == "sign" or sp:
                seen.add(d["id"])
                out.append(self._placed(d, sp))
        for sid, sp in self.sign_pos.items():
            if sid not in seen:
                out.append(self._placed({"id": sid, "status": None, "state": None}, sp))
        return out

    def beacons(self, devs: list[dict]) -> list[dict]:
        out = []
        for d in devs:
            bp = self.beacon_pos.get(d["id"])
            if d["role"] == "beacon" or bp:
                out.append(self._placed({"id": d["id"], "status": d["status"], "state": d["state"]}, bp))
        return out

    def _placed(self, d: dict, spec) -> dict:
        st = d.get("state") or {}
        # a device without a place in the deployment is shown where its own state says, if that is a position
        lat, lon = (spec.lat, spec.lon) if spec else self.page.latlon(st.get("lat"), st.get("lon"), d["id"], "state")
        return {**d, "lat": lat, "lon": lon, "road": spec and spec.road, "km": spec and spec.km}

    def fog(self, devs: list[dict] | None = None) -> list[dict]:
        if not self.sc:
            return []
        devs = devs if devs is not None else self._devices(self.beacon_pos.keys())
        return fog_segments(self.sc, [(self.beacon_pos[d["id"]], d.get("state") or {}) for d in devs
                                      if d["id"] in self.beacon_pos])

    def open_sos_units(self) -> set[str]:
        return {s["device"] for s in self.store.sos(open_only=True)}

    def available_units(self) -> list[tuple[str, float, float]]:
        """(id, lat, lon) of the units that may be sent: on patrol, online, not in SOS, no dispatch under way."""
        busy = set(self.desk.busy_units())
        busy |= self.open_sos_units()  # a rider in distress is not sent anywhere
        return [(d["id"], d["lat"], d["lon"]) for d in self._devices()
                if self._is_unit(d) and d["lat"] is not None and self._available(d) and d["id"] not in busy]

    def _with_unit_status(self, units: list[dict]) -> list[dict]:
        busy, sos = self.desk.busy_units(), self.open_sos_units()
        for u in units:
            u["unit_status"] = self.desk.unit_status(u, busy, sos)
            d = busy.get(u["id"])
            u["assignment"] = {"incident": d["incident"], "dispatch": d["id"], "eta_s": d.get("eta_s")} if d else None
        return units

    def publish_units(self, ids) -> None:
        """The units' rows again (their status follows a dispatch or an SOS) to every page."""
        devs = self._devices(list(ids))
        self._with_unit_status([d for d in devs if self._is_unit(d)])  # two queries for the lot
        if devs:
            self.bus.publish("devices", self._kept(devs, self._classify, "device"))

    def rank(self, sess: dict, incident_id: int, limit: int = 10) -> list[dict]:
        inc = self.store.incident(incident_id)
        if not inc:
            raise Refused(404, "no such incident")
        avail = self.available_units()
        if self.net is None:
            from host_tools.deployment.geo import haversine_m

            r = sorted((haversine_m(inc["lat"], inc["lon"], la, lo), u) for u, la, lo in avail)
            return [{"unit": u, "eta_s": None, "road_m": None, "straight_m": round(m)} for m, u in r[:limit]]
        ranked = self.net.rank(inc["lat"], inc["lon"], avail, limit=limit)
        return [{"unit": r.unit, "eta_s": round(r.eta_s, 1) if math.isfinite(r.eta_s) else None,
                 "road_m": round(r.road_m) if math.isfinite(r.road_m) else None, "straight_m": round(r.straight_m)}
                for r in ranked]

    @staticmethod
    def _available(d: dict) -> bool:
        st = d.get("state") or {}
        if d.get("status") == "offline":
            return False
        sos = st.get("sos")
        if isinstance(sos, dict) and sos.get("latched"):
            return False
        # tracker duty status (firmware/lib/roadedge/tracker/duty.py): only a unit on patrol is free
        return st.get(wire.F_DUTY) in (None, "patrol")

    def device_detail(self, dev: str) -> dict:
        """One sign, beacon or unit for the page's side panel: what it is now and its recent history
        (state changes: what a sign showed and why; events; telemetry: temperature, battery, ...)."""
        devs = self._devices([dev])
        if not devs and dev not in self.sign_pos and dev not in self.beacon_pos:
            raise Refused(404, "no such device")
        now = self._classify(devs[0]) if devs else self._classify({"id": dev, "role": None, "status": None,
                                                                   "state": None, "lat": None})
        hist = self.page.json(self.store.device_history(dev), ("history", dev[:64]))
        return {**now, **hist}

    def track(self, unit: str, t_from: float, t_to: float) -> list[dict]:
        return self.store.track(unit, t_from, t_to)

    # -- actions ------------------------------------------------------------------
    def ack_sos(self, sess: dict, unit: str) -> dict:
        detail = {"unit": unit}
        self._check(sess, "sos_ack", unit, detail)
        self._audited_target(sess, "sos_ack", unit, detail)
        open_ = [s for s in self.store.sos(open_only=True) if s["device"] == unit]
        if not open_:
            self.audit(sess, "sos_ack", unit, detail, "refused: no open SOS")
            raise Refused(409, f"no open SOS from {unit}")
        try:
            args = {"by": sess["user"][:32]}
            if open_[0]["sos_id"] is not None:
                args["id"] = open_[0]["sos_id"]
            ctr = self._send(unit, "sos_ack", args)
        except Refused as e:
            self.audit(sess, "sos_ack", unit, detail, f"failed: {e}")
            raise
        self.store.ack_sos(unit, sess["user"])
        self.audit(sess, "sos_ack", unit, {**detail, "sos": open_[0]["sos_id"], "ctr": ctr}, "sent")
        self.bus.publish("sos", self._sos())
        self.publish_units([unit])
        self.desk.on_sos_ack(sess, unit)
        return {"ok": True, "ctr": ctr}

    # the incident lifecycle lives in incidents.py (IncidentDesk); these keep the console's one entry point
    def create_incident(self, sess: dict, lat, lon, priority=3, text="", **form) -> dict:
        return self.desk.create(sess, lat, lon, priority, text, **form)

    def close_incident(self, sess: dict, iid: int, summary=None) -> dict:
        return self.desk.close(sess, iid, summary)

    def dispatch(self, sess: dict, incident_id: int, unit: str) -> dict:
        return self.desk.dispatch(sess, incident_id, unit)

    def sign_op(self, sess: dict, zone: str, action: str, sign: str | None, limit=None, reason: str = "") -> dict:
        detail = {"zone": zone, "action": action, "sign": sign, "limit": limit, "reason": reason}
        target = f"{zone}/{sign}" if sign else str(zone)
        self._check(sess, "sign_op", target, detail)
        if action not in SIGN_ACTIONS or not isinstance(zone, str) or not zone or "/" in zone or "+" in zone \
                or "#" in zone:
            self.audit(sess, "sign_op", target, detail, "refused: bad request")
            raise Refused(400, f"action must be one of {', '.join(SIGN_ACTIONS)} with a zone")
        if action == "manual" and (isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= 150):
            self.audit(sess, "sign_op", target, detail, "refused: bad limit")
            raise Refused(400, "manual needs an integer limit (the controller allows 20-120 step 10, at most the "
                               "Art. 81 limit for the visibility)")
        # the role comes from the verified session and travels signed: the controller trusts nothing else
        op = {"action": action, "sign": sign, "limit": limit, "user": sess["user"], "role": sess["role"],
              "reason": str(reason or "")[:200], "ts": time.time()}
        if action == "mode":
            op["mode"] = str(limit or "")
        if self.keyring is None:
            raise Refused(503, "no keys loaded (--keys): cannot sign operator actions")
        from host_tools.keys import UnknownDevice

        try:
            payload = self.keyring.operator_signer(zone).sign("op", op, 30)
        except UnknownDevice as e:
            self.audit(sess, "sign_op", target, detail, f"failed: {e}")
            raise Refused(409, str(e)) from None
        self.publish(wire.ctl_topic(zone, "op"), payload, 1)
        self.audit(sess, "sign_op", target, detail, "sent to controller")
        return {"ok": True}

    # -- ingest -> live updates ----------------------------------------------------------
    def on_change(self, ch: dict) -> None:
        if not ch:
            return
        if ch["devices"]:
            devs = self._devices(ch["devices"])
            self._with_unit_status([d for d in devs if self._is_unit(d)])  # two queries for the lot
            self.bus.publish("devices", self._kept(devs, self._classify, "device"))
            if self.sc and any(d["id"] in self.beacon_pos for d in devs):
                self._mark("fog")
        if ch["sos"]:
            self.bus.publish("sos", self._sos())
            self.publish_units({dev for dev, _seq in ch["sos"]})  # in SOS / back on patrol
        if ch["dispatches"]:
            for d in self._dispatches(ch["dispatches"]):
                self.bus.publish("dispatch", d)
            self.desk.on_dispatches(ch["dispatches"])
        if ch["devices"]:
            self.desk.on_positions(ch["devices"])
        if ch["ctl"]:
            self.bus.publish("ctl", self._ctl())
        if ch["rejects"]:
            self.bus.publish("rejects", self.page.json(self.store.rejects(), ("rejects",)))
        self._mark("stats")

    def _classify(self, d: dict) -> dict:
        if d["id"] in self.sign_pos or d["role"] == "sign":
            return {"kind": "sign", **self._placed(d, self.sign_pos.get(d["id"]))}
        if d["id"] in self.beacon_pos or d["role"] == "beacon":
            return {"kind": "beacon", **self._placed({"id": d["id"], "status": d["status"], "state": d["state"]},
                                                     self.beacon_pos.get(d["id"]))}
        if self._is_unit(d):
            return {"kind": "unit", **(d if "unit_status" in d else self._with_unit_status([d])[0])}
        return {"kind": "other", "id": d["id"], "status": d["status"]}
