"""SQLite store: live state and full history, shared safely by several ingest workers.

Every message with a seq is inserted with INSERT OR IGNORE on (device, kind, seq): a
redelivery, or the same message reaching two workers, is stored once and its side effects
(live state, SOS alert, dispatch progress) run once. State changes without a seq go to a
change log only when they differ from the current live state, compared inside the same
IMMEDIATE transaction, so concurrent workers cannot both log one change.
"""
from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from pathlib import Path

from host_tools.deployment.geo import haversine_m

from .decode import Record
from .incidents import ACTIVE

_ACTIVE_SQL = "(" + ",".join(f"'{s}'" for s in ACTIVE) + ")"  # a dispatch under way (constants, no input)

ON_SCENE_M = 150.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS devices(
  id TEXT PRIMARY KEY, role TEXT, status TEXT, info TEXT, state TEXT, last_seen REAL,
  lat REAL, lon REAL, tst REAL, vel REAL, cog REAL, acc REAL, sat INTEGER, hdop REAL, fix INTEGER,
  live INTEGER, pos_seq INTEGER, tele TEXT);
CREATE TABLE IF NOT EXISTS positions(
  device TEXT NOT NULL, seq INTEGER NOT NULL, tst REAL NOT NULL, lat REAL NOT NULL, lon REAL NOT NULL,
  vel REAL, cog REAL, acc REAL, sat INTEGER, hdop REAL, live INTEGER, rx REAL NOT NULL,
  PRIMARY KEY(device, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS positions_time ON positions(device, tst);
CREATE TABLE IF NOT EXISTS history(
  device TEXT NOT NULL, kind TEXT NOT NULL, seq INTEGER NOT NULL, ts REAL, rx REAL NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY(device, kind, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state_log(id INTEGER PRIMARY KEY, device TEXT, kind TEXT, rx REAL, body TEXT);
CREATE INDEX IF NOT EXISTS state_log_device ON state_log(device, kind, rx);
CREATE TABLE IF NOT EXISTS ctl(zone TEXT PRIMARY KEY, state TEXT, rx REAL);
CREATE TABLE IF NOT EXISTS rejects(reason TEXT PRIMARY KEY, count INTEGER NOT NULL, last_topic TEXT, last_at REAL);
CREATE TABLE IF NOT EXISTS sos(
  device TEXT NOT NULL, seq INTEGER NOT NULL, sos_id INTEGER, ts REAL, rx REAL, lat REAL, lon REAL,
  acked_by TEXT, acked_at REAL, device_ack TEXT, PRIMARY KEY(device, seq));
CREATE TABLE IF NOT EXISTS incidents(
  id INTEGER PRIMARY KEY, created REAL, by TEXT, lat REAL, lon REAL, priority INTEGER, text TEXT,
  status TEXT DEFAULT 'open');
CREATE TABLE IF NOT EXISTS dispatches(
  id INTEGER PRIMARY KEY, incident INTEGER, unit TEXT, by TEXT, sent REAL, ctr INTEGER, status TEXT,
  delivered REAL, accepted REAL, on_scene REAL, detail TEXT);
CREATE TABLE IF NOT EXISTS audit(
  id INTEGER PRIMARY KEY, at REAL, user TEXT, role TEXT, action TEXT, target TEXT, detail TEXT, result TEXT);
"""

DEVICE_COLS = ("id", "role", "status", "info", "state", "last_seen", "lat", "lon", "tst", "vel", "cog", "acc",
               "sat", "hdop", "fix", "live", "pos_seq", "tele")


def _role_of(dev: str, body: dict) -> str | None:
    r = body.get("role")
    return r if isinstance(r, str) else None


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.lock = threading.RLock()
        self._known: set[str] = set()  # device rows known to exist (rows are never deleted)
        # see each record inside its transaction (events.IngestEvents: the event log is written atomically
        # with what it describes, once per stored message): before(c, rec) -> token, after(c, rec, rx,
        # token, stored), rejected(c, rejects), end(committed)
        self.observers: list = []
        with self.lock:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)

    def close(self) -> None:
        with self.lock:
            self.db.close()

    # -- ingest -------------------------------------------------------------
    def apply(self, batch: list[tuple[Record, float, str]], rejects: list[tuple[str, str, float]]) -> dict:
        """Store one batch in one transaction. Returns what changed (for live updates)."""
        ch: dict = {"devices": set(), "sos": [], "dispatches": set(), "ctl": set(), "rejects": bool(rejects),
                    "stored": 0, "dupes": 0, "acks": [], "_seen": {}, "_active": None}
        with self.lock:
            c = self.db
            c.execute("BEGIN IMMEDIATE")
            try:
                for reason, topic, rx in rejects:
                    c.execute("INSERT INTO rejects(reason,count,last_topic,last_at) VALUES(?,1,?,?) "
                              "ON CONFLICT(reason) DO UPDATE SET count=count+1, last_topic=excluded.last_topic, "
                              "last_at=excluded.last_at", (reason, topic[:200], rx))
                obs = self.observers
                for o in obs:
                    o.rejected(c, rejects)
                for rec, rx, _topic in batch:
                    tokens = [o.before(c, rec) for o in obs]
                    stored = ch["stored"]
                    self._apply_one(c, rec, rx, ch)
                    for o, tok in zip(obs, tokens, strict=True):
                        o.after(c, rec, rx, tok, ch["stored"] > stored)
                # last_seen once per device and batch
                c.executemany("UPDATE devices SET last_seen=max(coalesce(last_seen,0),?) WHERE id=?",
                              [(rx, dev) for dev, rx in ch["_seen"].items()])
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                self._known.clear()  # rows inserted in the rolled-back transaction are gone
                for o in self.observers:
                    o.end(False)
                raise
            for o in self.observers:
                o.end(True)
        del ch["_seen"], ch["_active"]
        return ch

    def _ensure_device(self, c, dev: str, rx: float, ch: dict) -> None:
        if dev not in self._known:
            c.execute("INSERT OR IGNORE INTO devices(id,last_seen) VALUES(?,?)", (dev, rx))
            self._known.add(dev)
        seen = ch["_seen"]
        if rx > seen.get(dev, 0):
            seen[dev] = rx

    def _apply_one(self, c, rec: Record, rx: float, ch: dict) -> None:
        k, dev, b = rec.kind, rec.device, rec.body
        if k == "ignore":
            return
        if k == "ctl":
            body = json.dumps(b, sort_keys=True)
            row = c.execute("SELECT state FROM ctl WHERE zone=?", (dev,)).fetchone()
            if row is None or row[0] != body:
                c.execute("INSERT INTO ctl(zone,state,rx) VALUES(?,?,?) ON CONFLICT(zone) DO UPDATE SET "
                          "state=excluded.state, rx=excluded.rx", (dev, body, rx))
                c.execute("INSERT INTO state_log(device,kind,rx,body) VALUES(?,?,?,?)", (dev, "ctl", rx, body))
                ch["ctl"].add(dev)
            return
        if k == "location":
            cur = c.execute(
                "INSERT OR IGNORE INTO positions(device,seq,tst,lat,lon,vel,cog,acc,sat,hdop,live,rx) "
                "VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
                (dev, rec.seq, b["tst"], b["lat"], b["lon"], b.get("vel"), b.get("cog"), b.get("acc"), b.get("sat"),
                 b.get("hdop"), 0 if b.get("live") is False or b.get("catchup") else 1, rx))
            if cur.rowcount == 0:
                ch["dupes"] += 1
                return
            ch["stored"] += 1
            self._ensure_device(c, dev, rx, ch)
            # catch-up (older) fixes go to history only; the live marker shows the newest fix
            c.execute("UPDATE devices SET role=coalesce(role,'tracker'), lat=?, lon=?, tst=?, vel=?, cog=?, acc=?, "
                      "sat=?, hdop=?, fix=?, live=?, pos_seq=? WHERE id=? AND coalesce(tst,0) <= ?",
                      (b["lat"], b["lon"], b["tst"], b.get("vel"), b.get("cog"), b.get("acc"), b.get("sat"),
                       b.get("hdop"), b.get("fix") if isinstance(b.get("fix"), int) else None,
                       0 if b.get("live") is False else 1, rec.seq, dev, b["tst"]))
            ch["devices"].add(dev)
            if ch["_active"] is None:  # units with a dispatch under way, once per batch
                ch["_active"] = {r[0] for r in c.execute(
                    f"SELECT unit FROM dispatches WHERE status IN {_ACTIVE_SQL} AND status != 'on_scene'")}
            if dev in ch["_active"]:
                self._check_on_scene(c, dev, b["lat"], b["lon"], rx, ch)
            return
        if k in ("tele", "event", "ack") or (rec.seq is not None and k in ("log",)):
            cur = c.execute("INSERT OR IGNORE INTO history(device,kind,seq,ts,rx,body) VALUES(?,?,?,?,?,?)",
                            (dev, k, rec.seq, rec.ts, rx, json.dumps(b)))
            if cur.rowcount == 0:
                ch["dupes"] += 1
                return
            ch["stored"] += 1
            self._ensure_device(c, dev, rx, ch)
            if k == "tele":
                c.execute("UPDATE devices SET tele=? WHERE id=?", (json.dumps(b), dev))
                ch["devices"].add(dev)
            elif k == "event":
                self._event(c, dev, rec, rx, ch)
            elif k == "ack":
                self._ack(c, dev, b, rx, ch)
            return
        if k == "log":
            return  # unsequenced logs are for `roadedge logs`, not history
        # status / info / state: live state + change log
        self._ensure_device(c, dev, rx, ch)
        col = {"status": "status", "info": "info", "state": "state"}[k]
        val = b["status"] if k == "status" else json.dumps(b, sort_keys=True)
        row = c.execute(f"SELECT {col} FROM devices WHERE id=?", (dev,)).fetchone()
        if row[0] != val:
            c.execute(f"UPDATE devices SET {col}=? WHERE id=?", (val, dev))
            c.execute("INSERT INTO state_log(device,kind,rx,body) VALUES(?,?,?,?)", (dev, k, rx, val))
            ch["stored"] += 1
            ch["devices"].add(dev)
        if k == "info" and _role_of(dev, b):
            c.execute("UPDATE devices SET role=? WHERE id=?", (b["role"], dev))

    def _event(self, c, dev: str, rec: Record, rx: float, ch: dict) -> None:
        b = rec.body
        t = b["type"]
        if t == "sos":
            lat, lon = b.get("lat"), b.get("lon")
            if not isinstance(lat, (int, float)) or not isinstance(lon, (int, float)):
                row = c.execute("SELECT lat, lon FROM devices WHERE id=?", (dev,)).fetchone()
                lat, lon = (row[0], row[1]) if row else (None, None)
            sid = b.get("id") if isinstance(b.get("id"), int) and not isinstance(b.get("id"), bool) else None
            row = c.execute("SELECT seq FROM sos WHERE device=? AND sos_id=?", (dev, sid)).fetchone() \
                if sid is not None else None
            if row:
                # the tracker re-sends a latched SOS on every reconnect until it receives the ack: one alert,
                # re-opened if our acknowledgement never reached it
                c.execute("UPDATE sos SET rx=?, lat=coalesce(?, lat), lon=coalesce(?, lon), acked_at=CASE WHEN "
                          "device_ack IS NULL THEN NULL ELSE acked_at END WHERE device=? AND seq=?",
                          (rx, lat, lon, dev, row[0]))
            else:
                c.execute("INSERT OR IGNORE INTO sos(device,seq,sos_id,ts,rx,lat,lon) VALUES(?,?,?,?,?,?,?)",
                          (dev, rec.seq, sid, rec.ts, rx, lat, lon))
            ch["sos"].append((dev, rec.seq))
        elif t == "sos_ack":  # the tracker confirms it received our acknowledgement
            c.execute("UPDATE sos SET device_ack='ok' WHERE device=? AND (sos_id=? OR ? IS NULL) AND "
                      "acked_at IS NOT NULL", (dev, b.get("id"), b.get("id")))
            ch["sos"].append((dev, None))
        elif t == "duty" and b.get("status") == "on_scene" or t in ("dispatch_accept", "dispatch_reject", "on_scene",
                                                                    "arrived"):
            inc = b.get("incident")
            row = c.execute("SELECT id FROM dispatches WHERE unit=? AND (? IS NULL OR incident=?) "
                            "ORDER BY id DESC LIMIT 1", (dev, inc, inc)).fetchone()
            if row:
                # a report about a dispatch already cleared, cancelled or closed changes nothing
                if t == "dispatch_accept":
                    c.execute("UPDATE dispatches SET status=CASE WHEN status IN ('en_route','on_scene') THEN status "
                              f"ELSE 'accepted' END, accepted=? WHERE id=? AND status IN {_ACTIVE_SQL}", (rx, row[0]))
                elif t == "dispatch_reject":
                    c.execute(f"UPDATE dispatches SET status='declined', detail=? WHERE id=? AND status IN {_ACTIVE_SQL}",
                              (str(b.get("reason", ""))[:200], row[0]))
                else:
                    c.execute("UPDATE dispatches SET status='on_scene', on_scene=coalesce(on_scene, ?) WHERE id=? AND "
                              f"status IN {_ACTIVE_SQL}", (rx, row[0]))
                ch["dispatches"].add(row[0])
        ch["devices"].add(dev)

    def _ack(self, c, dev: str, b: dict, rx: float, ch: dict) -> None:
        ctr = b.get("ctr")
        code = str(b.get("code", "ok" if b.get("ok") else "error"))
        ch["acks"].append((dev, b.get("cmd"), ctr, b.get("ok"), code))
        if b.get("cmd") == "dispatch":
            row = c.execute("SELECT id FROM dispatches WHERE unit=? AND ctr=?", (dev, ctr)).fetchone()
            if row:
                if b.get("ok"):
                    c.execute("UPDATE dispatches SET delivered=?, status=CASE WHEN status='sent' THEN 'delivered' "
                              "ELSE status END WHERE id=?", (rx, row[0]))
                else:
                    c.execute("UPDATE dispatches SET status='failed', detail=? WHERE id=?", (code, row[0]))
                ch["dispatches"].add(row[0])
        elif b.get("cmd") == "sos_ack":
            c.execute("UPDATE sos SET device_ack=? WHERE device=? AND acked_at IS NOT NULL AND (device_ack IS NULL "
                      "OR device_ack != 'ok')", (code, dev))
            ch["sos"].append((dev, None))

    def _check_on_scene(self, c, dev: str, lat: float, lon: float, rx: float, ch: dict) -> None:
        for did, ilat, ilon in c.execute(
                "SELECT d.id, i.lat, i.lon FROM dispatches d JOIN incidents i ON i.id=d.incident "
                f"WHERE d.unit=? AND d.status IN {_ACTIVE_SQL} AND d.status != 'on_scene'", (dev,)).fetchall():
            if haversine_m(lat, lon, ilat, ilon) <= ON_SCENE_M:
                c.execute("UPDATE dispatches SET status='on_scene', on_scene=? WHERE id=?", (rx, did))
                ch["dispatches"].add(did)

    # -- reads ----------------------------------------------------------------
    def _q(self, sql: str, args=()) -> list[dict]:
        with self.lock:
            return [dict(r) for r in self.db.execute(sql, args).fetchall()]

    def devices(self, ids=None) -> list[dict]:
        if ids is not None:
            ids = list(ids)
            if not ids:
                return []
            rows = self._q(f"SELECT * FROM devices WHERE id IN ({','.join('?' * len(ids))})", ids)
        else:
            rows = self._q("SELECT * FROM devices ORDER BY id")
        for r in rows:
            for k in ("info", "state", "tele"):
                r[k] = json.loads(r[k]) if r[k] else None
        return rows

    def ctl(self) -> dict[str, dict]:
        return {r["zone"]: {**json.loads(r["state"]), "_rx": r["rx"]} for r in self._q("SELECT * FROM ctl")}

    def rejects(self) -> dict[str, dict]:
        return {r["reason"]: {"count": r["count"], "last_topic": r["last_topic"], "last_at": r["last_at"]}
                for r in self._q("SELECT * FROM rejects ORDER BY reason")}

    def sos(self, open_only: bool = False) -> list[dict]:
        return self._q("SELECT * FROM sos" + (" WHERE acked_at IS NULL" if open_only else "") + " ORDER BY rx DESC LIMIT 100")

    def incidents(self) -> list[dict]:
        return self._q("SELECT * FROM incidents ORDER BY id DESC LIMIT 200")

    def incident(self, iid: int) -> dict | None:
        r = self._q("SELECT * FROM incidents WHERE id=?", (iid,))
        return r[0] if r else None

    def dispatches(self, ids=None) -> list[dict]:
        if ids:
            ids = list(ids)
            return self._q(f"SELECT * FROM dispatches WHERE id IN ({','.join('?' * len(ids))})", ids)
        return self._q("SELECT * FROM dispatches ORDER BY id DESC LIMIT 200")

    def audit(self, limit: int = 200) -> list[dict]:
        return self._q("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,))

    def track(self, dev: str, t_from: float, t_to: float, limit: int = 100000) -> list[dict]:
        return self._q("SELECT seq, tst, lat, lon, vel, cog, acc, live FROM positions WHERE device=? AND tst BETWEEN ? "
                       "AND ? ORDER BY tst, seq LIMIT ?", (dev, t_from, t_to, limit))

    def device_history(self, dev: str, limit: int = 50) -> dict[str, list[dict]]:
        """A device's recent past, newest first: its state/status changes and its events (each `limit` at
        most), and up to `limit` telemetry reports."""
        changes = self._q("SELECT kind, rx, body FROM state_log WHERE device=? AND kind IN ('state','status') "
                          "ORDER BY id DESC LIMIT ?", (dev, limit))
        for r in changes:
            r["body"] = r["body"] if r["kind"] == "status" else json.loads(r["body"])
        hist = {k: self._q("SELECT seq, ts, rx, body FROM history WHERE device=? AND kind=? ORDER BY rx DESC, seq "
                           "DESC LIMIT ?", (dev, k, limit)) for k in ("event", "tele")}
        for rows in hist.values():
            for r in rows:
                r["body"] = json.loads(r["body"])
        return {"changes": changes, "events": hist["event"], "tele": hist["tele"]}

    def counts(self) -> dict:
        with self.lock:
            return {"positions": self.db.execute("SELECT count(*) FROM positions").fetchone()[0],
                    "history": self.db.execute("SELECT count(*) FROM history").fetchone()[0]}

    # -- console writes ---------------------------------------------------------
    def _exec(self, sql: str, args=()) -> int:
        with self.lock:
            cur = self.db.execute(sql, args)
            return int(cur.lastrowid or 0)

    def add_audit(self, user: str | None, role: str | None, action: str, target: str, detail: dict | str,
                  result: str, at: float | None = None) -> int:
        d = detail if isinstance(detail, str) else json.dumps(detail, sort_keys=True)
        return self._exec("INSERT INTO audit(at,user,role,action,target,detail,result) VALUES(?,?,?,?,?,?,?)",
                          (at or time.time(), user, role, action, target, d, result))

    def add_incident(self, lat: float, lon: float, priority: int, text: str, by: str) -> int:
        return self._exec("INSERT INTO incidents(created,by,lat,lon,priority,text) VALUES(?,?,?,?,?,?)",
                          (time.time(), by, lat, lon, priority, text))

    def close_incident(self, iid: int) -> None:
        self._exec("UPDATE incidents SET status='closed' WHERE id=?", (iid,))

    def add_dispatch(self, incident: int, unit: str, by: str, ctr: int | None, status: str, detail: str = "") -> int:
        return self._exec("INSERT INTO dispatches(incident,unit,by,sent,ctr,status,detail) VALUES(?,?,?,?,?,?,?)",
                          (incident, unit, by, time.time(), ctr, status, detail))

    def set_dispatch_status(self, did: int, status: str) -> None:
        self._exec("UPDATE dispatches SET status=? WHERE id=?", (status, did))

    def ack_sos(self, dev: str, by: str) -> int:
        with self.lock:
            cur = self.db.execute("UPDATE sos SET acked_by=?, acked_at=? WHERE device=? AND acked_at IS NULL",
                                  (by, time.time(), dev))
            return cur.rowcount


def finite(v) -> float | None:
    return v if isinstance(v, (int, float)) and math.isfinite(v) else None
