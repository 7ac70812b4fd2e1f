"""The console's event and alarm service: the shell around events.py (the log) and alarms.py (the rules).

- Ingest: an IngestEvents observer on the store logs what device messages mean, in their transaction.
- Once a second (in the console process only): the alarm rules run on the console's view and their
  raises / clears are logged; dispatch state changes (whoever made them: an operator, a device, the
  on-scene proximity check) are logged; an SOS acknowledged from the banner acknowledges its alarm.
- Acknowledgements: permission check, the audit entry, and for an SOS the signed sos_ack to the rider.
- Every new or changed row goes to the page on the bus: kinds "eventlog" (a new row) and "alarm" (a changed
  one).
"""
from __future__ import annotations

import threading
import time

from .alarms import TYPES as RULE_TYPES
from .alarms import AlarmRules, Condition, Placed, View, cleared_text
from .console import Console, Refused
from .device_events import Entry, word
from .events import EventLog, IngestEvents
from .incidents import ACTIVE as DISPATCH_ACTIVE

ACK_ROLES = ("dispatcher", "supervisor")
MAX_ACK_BATCH = 1000  # alarms acknowledged in one request (a city's beacons are ~1,300 over 7 sections)
# dispatch statuses after which the unit is free again (store.py and the incident lifecycle)
DISPATCH_TEXT = {"sent": "sent", "delivered": "delivered to the unit", "accepted": "accepted by the rider",
                 "en_route": "en route", "on_scene": "on scene", "declined": "declined by the rider",
                 "failed": "could not be delivered", "closed": "closed (incident closed)", "cleared": "cleared",
                 "cancelled": "recalled by the dispatcher"}
TICK_S = 1.0


class EventService:
    def __init__(self, console: Console, rules: AlarmRules | None = None) -> None:
        self.console = console
        self.store = console.store
        self.log = EventLog(self.store)
        self.log.listeners.append(self._publish)
        roles = {**{i: "sign" for i in console.sign_pos}, **{i: "beacon" for i in console.beacon_pos},
                 **{i: "tracker" for i in console.tracker_ids}}
        self.ingest = IngestEvents(self.log, roles)
        self.store.observers.append(self.ingest)
        self.rules = rules or AlarmRules()
        self.errors = 0
        self.last_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _publish(self, kind: str, row: dict) -> None:
        self.console.bus.publish("eventlog" if kind == "event" else "alarm", self.console.page.json(row, ("event",)))

    # -- the once-a-second round -------------------------------------------------------------------
    def resume(self) -> None:
        """Take up the rule alarms still open in the log (after a restart): not raised twice, cleared when over."""
        self.rules.resume([Condition(k, r["type"], r["device"] or "", r["text"], r["detail"])
                           for k, r in self.log.open_keys(RULE_TYPES).items()])

    def start(self) -> EventService:
        self.resume()
        self._thread = threading.Thread(target=self._loop, name="dispatch-alarms", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.wait(TICK_S):
            try:
                self.tick(int(time.time() * 1000))
            except Exception as e:  # a closed store at shutdown, a bug: counted, the next round retries
                self.errors += 1
                self.last_error = f"{type(e).__name__}: {e}"

    def tick(self, now_ms: int) -> None:
        self._run_rules(now_ms)
        self._log_dispatches()
        self._sync_sos_acks()

    def view(self) -> View:
        con = self.console
        devs = con._devices()
        by_id = {d["id"]: d for d in devs}

        def placed(spec) -> Placed:
            d = by_id.get(spec.id, {})
            return Placed(spec.id, spec.road, spec.km, spec.lat, spec.lon, getattr(spec, "section", None),
                          d.get("status"), d.get("state") if isinstance(d.get("state"), dict) else None)

        def unplaced(role: str, known) -> list[Placed]:  # a device of that role the deployment does not list
            return [Placed(d["id"], None, None, status=d.get("status"), state=d.get("state"))
                    for d in devs if d.get("role") == role and d["id"] not in known]

        busy = {d["unit"] for d in self.store.dispatches() if d.get("status") in DISPATCH_ACTIVE}
        busy |= {s["device"] for s in self.store.sos(open_only=True)}
        return View(units=[d for d in devs if con._is_unit(d)],
                    signs=[placed(s) for s in con.sign_pos.values()] + unplaced("sign", con.sign_pos),
                    beacons=[placed(b) for b in con.beacon_pos.values()] + unplaced("beacon", con.beacon_pos),
                    ctl=con._ctl(), busy=busy, scenario=con.sc, net=con.net)

    def _run_rules(self, now_ms: int) -> None:
        changes = self.rules.evaluate(now_ms, self.view())
        if not changes:
            return
        at = now_ms / 1000

        def write(c, out):
            for what, cond in changes:
                text = cond.text if what == "raise" else cleared_text(cond)
                self.log.write(c, Entry(cond.type, what, text, cond.key, cond.detail), cond.device, at, out)

        self.log.txn(write)

    def _log_dispatches(self) -> None:
        logged = self.log.dispatch_statuses()
        rows = [d for d in self.store.dispatches() if logged.get(d["id"]) != d["status"]]
        if not rows:
            return  # the usual second: no write transaction at all

        def write(c, out):
            for d in rows:
                prev = c.execute("SELECT status FROM event_dispatch WHERE id=?", (d["id"],)).fetchone()
                if prev is not None and prev[0] == d["status"]:
                    continue
                c.execute("INSERT INTO event_dispatch(id,status) VALUES(?,?) ON CONFLICT(id) DO UPDATE SET "
                          "status=excluded.status", (d["id"], d["status"]))
                st = str(d["status"])
                was = f" (was {word(prev[0])})" if prev is not None else ""
                text = (f"dispatch #{d['id']}: {word(d['unit'])} to incident {d['incident']} "
                        f"{DISPATCH_TEXT.get(st, word(st))}{was}" + (f": {word(d['detail'])}" if d.get("detail")
                                                                     else ""))
                self.log.write(c, Entry("dispatch", "event", text, detail={"dispatch": d["id"], "status": st,
                                                                             "incident": d["incident"]}),
                               d["unit"], time.time(), out)

        self.log.txn(write)

    def _sync_sos_acks(self) -> None:
        """An SOS acknowledged from the banner (or any other way the sos table learns it) acknowledges its
        alarm, in the acknowledging dispatcher's name (console.ack_sos audited that action)."""
        for a in self.log.alarms():
            if a["type"] != "sos" or a["acked_at"] is not None or not a["device"]:
                continue
            s = [r for r in self.store.sos() if r["device"] == a["device"]]
            if s and s[0]["acked_at"] is not None and s[0]["acked_by"]:
                self.log.acknowledge(a["id"], s[0]["acked_by"], "acknowledged from the SOS banner")

    # -- acknowledgement -----------------------------------------------------------------------------
    def _may_ack(self, sess: dict, target: str, note) -> None:
        if sess["role"] not in ACK_ROLES:
            self.console.audit(sess, "alarm_ack", target, {"note": str(note or "")[:200]},
                               f"refused: role {sess['role']} may not alarm_ack")
            raise Refused(403, f"a {sess['role']} may not acknowledge alarms")

    def acknowledge_all(self, sess: dict, ids, note="") -> dict:
        """Acknowledge a burst of one kind (a section's beacons offline after a power cut) in one go, each
        alarm audited on its own. Never an SOS: acknowledging one tells that rider, one at a time."""
        self._may_ack(sess, f"{len(ids) if isinstance(ids, list) else '?'} alarms", note)
        if not isinstance(ids, list) or not 0 < len(ids) <= MAX_ACK_BATCH \
                or any(isinstance(i, bool) or not isinstance(i, int) for i in ids):
            raise Refused(400, f"ids must be a list of 1 to {MAX_ACK_BATCH} alarm numbers")
        if any(r["type"] == "sos" for r in self.log.rows(ids)):
            raise Refused(400, "an SOS is acknowledged on its own (it tells the rider)")
        return {"alarms": [self.acknowledge(sess, i, note) for i in dict.fromkeys(ids)]}

    def acknowledge(self, sess: dict, eid, note="") -> dict:
        con = self.console
        note = str(note or "")[:200]
        target = f"event {eid}"
        self._may_ack(sess, target, note)
        if isinstance(eid, bool) or not isinstance(eid, int):
            raise Refused(400, "id must be an alarm's number")
        rows = self.log.rows([eid])
        if not rows or not rows[0]["alarm"]:
            con.audit(sess, "alarm_ack", target, {"note": note}, "refused: no such alarm")
            raise Refused(404, f"no alarm {eid}")
        a = rows[0]
        if a["acked_at"] is not None:
            return a
        if a["type"] == "sos" and a["cleared_at"] is None and a["device"]:
            # acknowledging an SOS is telling the rider: the signed sos_ack goes out (and is audited) first
            open_ = [s for s in self.store.sos(open_only=True) if s["device"] == a["device"]]
            if open_:
                con.ack_sos(sess, a["device"])
        row = self.log.acknowledge(eid, sess["user"], note)
        con.audit(sess, "alarm_ack", target, {"type": a["type"], "device": a["device"], "note": note}, "ok")
        return row or a
