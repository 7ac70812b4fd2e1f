"""The incident lifecycle at the dispatch desk: an incident with its type, priority, lanes and direction;
the units sent to it (sent -> delivered -> accepted -> en route with a live ETA -> on scene -> cleared);
a timeline of everything done about it; closed with a summary.

What the trackers report drives a dispatch (firmware/lib/roadedge/tracker/duty.py: the command's ack,
the rider's `dispatch_accept`, the `duty` event `on_scene`; the store applies them while ingesting), the
dispatcher's actions drive the rest. Every action is checked against the session's role and audited;
every step lands in the incident's timeline (persisted in SQLite: who, when, what).
"""
from __future__ import annotations

import json
import math
import threading
import time

from roadedge import wire

# what the form offers (the page builds its lists from /api/snapshot "incident_form")
TYPES = ("collision", "breakdown", "debris", "fog", "pile_up", "fire", "rider_sos", "wrong_way", "other")
DIRECTIONS = ("both", "increasing_km", "decreasing_km")
LANES = ("shoulder", "lane_1", "lane_2", "lane_3", "lane_4", "all")
# dispatch statuses: a unit is busy in any of ACTIVE; the others end a dispatch
ACTIVE = ("sent", "delivered", "accepted", "en_route", "on_scene")
ENDED = ("declined", "failed", "cancelled", "cleared", "closed")
MAX_TEXT = 500
MAX_SUMMARY = 2000
MAX_SOURCE = 64

SCHEMA = """
CREATE TABLE IF NOT EXISTS incident_log(
  id INTEGER PRIMARY KEY, incident INTEGER NOT NULL, at REAL NOT NULL, who TEXT, what TEXT NOT NULL,
  unit TEXT, dispatch INTEGER, detail TEXT);
CREATE INDEX IF NOT EXISTS incident_log_of ON incident_log(incident, at);
CREATE UNIQUE INDEX IF NOT EXISTS incident_log_step ON incident_log(dispatch, what) WHERE dispatch IS NOT NULL;
"""
# columns added to the store's tables (databases from before issue 15 get them on start)
COLUMNS = {"incidents": (("type", "TEXT"), ("lanes", "TEXT"), ("direction", "TEXT"), ("source", "TEXT"),
                         ("closed_at", "REAL"), ("closed_by", "TEXT"), ("summary", "TEXT")),
           "dispatches": (("en_route", "REAL"), ("eta_s", "REAL"), ("eta_at", "REAL"), ("cleared", "REAL"))}


def migrate(store) -> None:
    with store.lock:
        store.db.executescript(SCHEMA)
        for table, cols in COLUMNS.items():
            have = {r[1] for r in store.db.execute(f"PRAGMA table_info({table})")}
            for name, kind in cols:
                if name not in have:
                    store.db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


def _choice(v, allowed, default):
    return v if isinstance(v, str) and v in allowed else default


class IncidentDesk:
    def __init__(self, console) -> None:
        self.c = console
        self.store = console.store
        migrate(self.store)
        self._sending = threading.Lock()

    # -- reads ----------------------------------------------------------------
    def _q(self, sql: str, args=()) -> list[dict]:
        return self.store._q(sql, args)

    def _exec(self, sql: str, args=()) -> int:
        return self.store._exec(sql, args)

    def incident(self, iid: int) -> dict | None:
        rows = self._q("SELECT * FROM incidents WHERE id=?", (iid,))
        if not rows:
            return None
        return self._shaped(rows[0])

    @staticmethod
    def _shaped(i: dict) -> dict:
        try:
            lanes = json.loads(i.get("lanes") or "[]")
        except ValueError:
            lanes = []
        return {**i, "lanes": lanes if isinstance(lanes, list) else []}

    def incidents(self) -> list[dict]:
        return [self._shaped(i) for i in self.store.incidents()]

    def timeline(self, iid: int) -> list[dict]:
        rows = self._q("SELECT * FROM incident_log WHERE incident=? ORDER BY at, id LIMIT 1000", (iid,))
        for r in rows:
            try:
                r["detail"] = json.loads(r["detail"]) if r["detail"] else {}
            except ValueError:
                r["detail"] = {}
        return rows

    def detail(self, sess: dict, iid: int) -> dict:
        inc = self.incident(iid)
        if not inc:
            raise self.c.Refused(404, "no such incident")
        units = self._q("SELECT * FROM dispatches WHERE incident=? ORDER BY id", (iid,))
        return {"incident": self.c.page.with_position(inc, ("incident",)), "timeline": self.c.page.json(
            self.timeline(iid), ("timeline",)), "dispatches": self.c.page.json(units, ("dispatch",))}

    def busy_units(self) -> dict[str, dict]:
        """unit -> its dispatch under way (the newest)."""
        out: dict[str, dict] = {}
        for d in self._q(f"SELECT * FROM dispatches WHERE status IN ({','.join('?' * len(ACTIVE))}) ORDER BY id",
                         ACTIVE):
            out[d["unit"]] = d
        return out

    def unit_status(self, d: dict, busy: dict[str, dict], sos: set[str]) -> str:
        """One word for a unit, shown the same everywhere: sos, offline, a dispatch step, else the tracker's duty."""
        if d["id"] in sos:
            return "sos"
        if d.get("status") == "offline":
            return "offline"
        if d["id"] in busy:
            return busy[d["id"]]["status"]
        duty = d["state"].get(wire.F_DUTY) if isinstance(d.get("state"), dict) else None
        # what the tracker itself says when no dispatch of ours is under way (off duty, or a job not yet released)
        return duty if duty in wire.DUTIES else "patrol"

    # -- timeline ---------------------------------------------------------------
    def log(self, iid: int, who: str | None, what: str, unit: str | None = None, dispatch: int | None = None,
            detail: dict | None = None, at: float | None = None) -> dict | None:
        """One timeline entry; a dispatch's step is logged once (a redelivered report is not a new step)."""
        with self.store.lock:
            cur = self.store.db.execute(
                "INSERT OR IGNORE INTO incident_log(incident,at,who,what,unit,dispatch,detail) VALUES(?,?,?,?,?,?,?)",
                (iid, at or time.time(), who, what, unit, dispatch, json.dumps(detail or {}, sort_keys=True)))
            if not cur.rowcount:
                return None
            lid = cur.lastrowid
        row = self._q("SELECT * FROM incident_log WHERE id=?", (lid,))[0]
        row["detail"] = detail or {}
        self.c.bus.publish("timeline", self.c.page.json(row, ("timeline",)))
        return row

    # -- actions ------------------------------------------------------------------
    def create(self, sess: dict, lat, lon, priority=3, text="", type=None, lanes=None, direction=None,
               source=None) -> dict:
        detail = {"lat": lat, "lon": lon, "priority": priority, "text": text, "type": type, "lanes": lanes,
                  "direction": direction, "source": source}
        self.c._check(sess, "incident_create", "incident", detail)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (lat, lon)) \
                or not (-90 <= lat <= 90 and -180 <= lon <= 180):
            self.c.audit(sess, "incident_create", "incident", detail, "refused: bad position")
            raise self.c.Refused(400, "lat/lon must be numbers in range")
        if type is not None and type not in TYPES:
            self.c.audit(sess, "incident_create", "incident", detail, "refused: bad type")
            raise self.c.Refused(400, f"type must be one of {', '.join(TYPES)}")
        if lanes is not None and (not isinstance(lanes, list) or any(x not in LANES for x in lanes)):
            self.c.audit(sess, "incident_create", "incident", detail, "refused: bad lanes")
            raise self.c.Refused(400, f"lanes: a list of {', '.join(LANES)}")
        if source is not None and (not isinstance(source, str) or len(source) > MAX_SOURCE):
            self.c.audit(sess, "incident_create", "incident", detail, "refused: bad source")
            raise self.c.Refused(400, "source: what the incident was raised from (map, sos:<unit>, alarm:<id>)")
        priority = int(priority) if isinstance(priority, (int, float)) and not isinstance(priority, bool) and \
            1 <= priority <= 5 else 3
        text = str(text or "")[:MAX_TEXT]
        lanes_j = json.dumps(sorted(set(lanes or []), key=LANES.index))
        iid = self._exec("INSERT INTO incidents(created,by,lat,lon,priority,text,type,lanes,direction,source) "
                         "VALUES(?,?,?,?,?,?,?,?,?,?)",
                         (time.time(), sess["user"], float(lat), float(lon), priority, text, type or "other",
                          lanes_j, _choice(direction, DIRECTIONS, "both"), source or "map"))
        inc = self.incident(iid) or {}
        self.c.audit(sess, "incident_create", f"incident {iid}", detail, "ok")
        self.log(iid, sess["user"], "created", detail={k: inc.get(k) for k in (
            "type", "priority", "lanes", "direction", "text", "source", "lat", "lon")})
        self.c.bus.publish("incident", inc)
        return inc

    def _open(self, sess: dict, action: str, iid: int, detail: dict) -> dict:
        inc = self.incident(iid)
        if not inc:
            self.c.audit(sess, action, f"incident {iid}", detail, "refused: no such incident")
            raise self.c.Refused(404, "no such incident")
        if inc["status"] == "closed":
            self.c.audit(sess, action, f"incident {iid}", detail, "refused: incident closed")
            raise self.c.Refused(409, f"incident {iid} is closed")
        return inc

    def dispatch(self, sess: dict, iid: int, unit: str) -> dict:
        detail = {"incident": iid, "unit": unit}
        self.c._check(sess, "dispatch", unit, detail)
        self.c._audited_target(sess, "dispatch", unit, detail)  # a dispatch goes to trackers only
        inc = self._open(sess, "dispatch", iid, detail)
        with self._sending:  # two desks sending the same unit at once: the second finds it busy
            return self._dispatch(sess, inc, unit, detail)

    def _dispatch(self, sess: dict, inc: dict, unit: str, detail: dict) -> dict:
        iid = inc["id"]
        # a busy, SOS or offline unit is neither offered nor sent (a stale page may still ask)
        avail = {u for u, _la, _lo in self.c.available_units()}
        if unit not in avail:
            why = self.unavailable_reason(unit)
            self.c.audit(sess, "dispatch", unit, detail, f"refused: {why}")
            raise self.c.Refused(409, f"{unit} is not available: {why}")
        # args as the tracker's Duty.dispatch takes them (firmware/lib/roadedge/tracker/duty.py)
        kind = (inc.get("type") or "other").replace("_", " ")
        text = inc["text"] or ""
        if kind != "other":  # the rider reads the type first
            text = f"{kind}: {text}" if text else kind
        args = {"incident": str(iid), "lat": inc["lat"], "lon": inc["lon"], "prio": inc["priority"],
                "text": text[:120]}
        sent_at = time.time()  # the step's time is when the command goes out: a quick tracker acks before we log it
        try:
            ctr = self.c._send(unit, "dispatch", args, ttl_s=120)
        except self.c.Refused as e:
            self.c.audit(sess, "dispatch", unit, detail, f"failed: {e}")
            raise
        did = self.store.add_dispatch(iid, unit, sess["user"], ctr, "sent")
        self.c.audit(sess, "dispatch", unit, {**detail, "ctr": ctr}, "sent")
        eta = self._eta(inc, unit)
        if eta is not None:
            self._exec("UPDATE dispatches SET eta_s=?, eta_at=? WHERE id=?", (eta, time.time(), did))
        self.log(iid, sess["user"], "sent", unit, did, {"eta_s": eta, "ctr": ctr}, at=sent_at)
        d = self.store.dispatches([did])[0]
        self.c.bus.publish("dispatch", d)
        self.c.publish_units([unit])
        return d

    def unavailable_reason(self, unit: str) -> str:
        devs = self.store.devices([unit])
        if not devs:
            return "unknown unit"
        d = devs[0]
        st = self.unit_status(d, self.busy_units(), self.c.open_sos_units())
        if st in ACTIVE:
            return f"busy ({st.replace('_', ' ')})"
        if d["lat"] is None:
            return "no position"
        return {"sos": "in SOS", "offline": "offline", "off_duty": "off duty"}.get(st, "not on patrol")

    def _dispatch_row(self, sess: dict, action: str, did: int) -> dict:
        rows = self.store.dispatches([did])
        if not rows:
            self.c.audit(sess, action, f"dispatch {did}", {}, "refused: no such dispatch")
            raise self.c.Refused(404, "no such dispatch")
        return rows[0]

    def end_dispatch(self, sess: dict, did: int, action: str) -> dict:
        """`clear` (the unit's work at the scene is done) or `cancel` (recalled before it got there): the
        tracker is told (close / cancel: it returns to patrol) and the unit is free again."""
        d = self._dispatch_row(sess, f"dispatch_{action}", did)
        detail = {"incident": d["incident"], "unit": d["unit"], "dispatch": did}
        self.c._check(sess, "dispatch", d["unit"], detail)
        if d["status"] not in ACTIVE:
            self.c.audit(sess, f"dispatch_{action}", d["unit"], detail, f"refused: dispatch is {d['status']}")
            raise self.c.Refused(409, f"that dispatch is {d['status']} already")
        status = "cleared" if action == "clear" else "cancelled"
        result = self._release(sess, d, "close" if action == "clear" else "cancel", status)
        return {**self.store.dispatches([did])[0], "result": result}

    def _release(self, sess: dict, d: dict, tracker_action: str, status: str) -> str:
        try:
            self.c._send(d["unit"], "dispatch", {"incident": str(d["incident"]), "action": tracker_action})
            result = "sent"
        except self.c.Refused as e:  # the unit is released here all the same; the tracker is told on retry
            result = f"failed: {e}"
        now = time.time()
        self._exec("UPDATE dispatches SET status=?, cleared=? WHERE id=?", (status, now, d["id"]))
        detail = {"incident": d["incident"], "unit": d["unit"], "dispatch": d["id"]}
        self.c.audit(sess, "dispatch_" + ("clear" if status in ("cleared", "closed") else "cancel"), d["unit"],
                     detail, result)
        self.log(d["incident"], sess["user"], status, d["unit"], d["id"], {"tracker": result})
        self.c.bus.publish("dispatch", self.store.dispatches([d["id"]])[0])
        self.c.publish_units([d["unit"]])
        return result

    def _text(self, sess: dict, perm: str, action: str, iid: int, value, limit: int, refusal: str) -> str:
        """The text an action on an open incident needs (a note, a summary): checked, audited when missing."""
        detail = {"incident": iid, "text": value}
        self.c._check(sess, perm, f"incident {iid}", detail)
        self._open(sess, action, iid, detail)
        text = str(value or "").strip()[:limit]
        if not text:
            self.c.audit(sess, action, f"incident {iid}", detail, "refused: no text")
            raise self.c.Refused(400, refusal)
        return text

    def note(self, sess: dict, iid: int, text) -> dict:
        text = self._text(sess, "incident_create", "incident_note", iid, text, MAX_TEXT, "a note needs text")
        self.c.audit(sess, "incident_note", f"incident {iid}", {"text": text}, "ok")
        return self.log(iid, sess["user"], "note", detail={"text": text}) or {}

    def close(self, sess: dict, iid: int, summary=None) -> dict:
        summary = self._text(sess, "incident_close", "incident_close", iid, summary, MAX_SUMMARY,
                             "closing an incident needs a summary of what happened")
        released = []
        for d in self._q(f"SELECT * FROM dispatches WHERE incident=? AND status IN ({','.join('?' * len(ACTIVE))})",
                         (iid, *ACTIVE)):
            self._release(sess, d, "close", "cleared")
            released.append(d["unit"])
        now = time.time()
        self._exec("UPDATE incidents SET status='closed', closed_at=?, closed_by=?, summary=? WHERE id=?",
                   (now, sess["user"], summary, iid))
        self.c.audit(sess, "incident_close", f"incident {iid}", {"released": released, "summary": summary}, "ok")
        self.log(iid, sess["user"], "closed", detail={"summary": summary, "released": released})
        inc = self.incident(iid)
        self.c.bus.publish("incident", inc)
        return {"ok": True, "incident": inc, "released": released}

    def on_sos_ack(self, sess: dict, unit: str) -> None:
        """An SOS acknowledged: into the timeline of an open incident raised from it."""
        for i in self._q("SELECT id FROM incidents WHERE source=? AND status='open'", (f"sos:{unit}",)):
            self.log(i["id"], sess["user"], "sos_acknowledged", unit)

    # -- what the trackers report ------------------------------------------------------
    def _eta(self, inc: dict, unit: str) -> float | None:
        if self.c.net is None:
            return None
        devs = self.store.devices([unit])
        if not devs or devs[0]["lat"] is None:
            return None
        eta, _road = self.c.net.eta(inc["lat"], inc["lon"], devs[0]["lat"], devs[0]["lon"])
        return round(eta, 1) if math.isfinite(eta) else None

    def on_dispatches(self, ids) -> None:
        """Dispatches the ingest changed (ack, accept, on scene, declined): each new step into the timeline
        (once: the step's unique index), the unit's status to every page."""
        for d in self.store.dispatches(ids):
            at = {"delivered": d["delivered"], "accepted": d["accepted"], "on_scene": d["on_scene"]}
            for step in ("delivered", "accepted", "on_scene"):
                if at[step]:
                    self.log(d["incident"], d["unit"], step, d["unit"], d["id"], at=at[step])
            if d["status"] in ("declined", "failed"):
                self.log(d["incident"], d["unit"], d["status"], d["unit"], d["id"], {"reason": d["detail"]})
        self.c.publish_units({d["unit"] for d in self.store.dispatches(ids)})

    def on_positions(self, units) -> None:
        """A unit under way reported a fix: accepted becomes en route, and its ETA (with a road network) is kept
        live."""
        now = time.time()
        busy = self.busy_units()
        for unit in units:
            d = busy.get(unit)
            if d is None or d["status"] not in ("accepted", "en_route", "sent", "delivered"):
                continue
            inc = self.incident(d["incident"])
            dev = self.store.devices([unit])
            if not inc or not dev or dev[0]["tst"] is None:
                continue
            if d["status"] == "accepted" and not dev[0]["tst"] > (d["accepted"] or now):
                continue  # en route: a fix taken after the rider accepted (not the accept itself)
            eta = self._eta(inc, unit)
            if d["status"] == "accepted":
                n = self._exec_count("UPDATE dispatches SET status='en_route', en_route=?, eta_s=?, eta_at=? "
                                     "WHERE id=? AND status='accepted'", (now, eta, now, d["id"]))
                if n:
                    self.log(d["incident"], unit, "en_route", unit, d["id"], {"eta_s": eta}, at=now)
            elif eta != d["eta_s"]:  # one snap on the incident's remembered search: cheap on every fix
                self._exec("UPDATE dispatches SET eta_s=?, eta_at=? WHERE id=?", (eta, now, d["id"]))
            else:
                continue
            self.c.bus.publish("dispatch", self.store.dispatches([d["id"]])[0])

    def _exec_count(self, sql: str, args=()) -> int:
        with self.store.lock:
            return self.store.db.execute(sql, args).rowcount
