"""The event log and its alarms, kept in the dispatch SQLite store.

One table, `events`, holds every line a control room reads back: device facts (a sign change with its
source, a duty change, a tracker's lost reports), console facts (dispatch states, ingest rejects) and the
life of every alarm. An alarm is the row that raised it (`phase` raise, `alarm` 1); while its condition
lasts, `cleared_at` is null; a dispatcher's acknowledgement fills `acked_by`/`acked_at` (and is in the
audit table). Repeats of an open alarm are counted on its row (`count`, `last_at`), not added as new rows,
so a flapping device cannot flood the log. At most one open alarm per `key` (a unique index).

Device messages become entries inside the ingest transaction (IngestEvents, a Store observer): an entry
exists exactly when its message is stored, once, whichever ingest worker stored it. Alarms only the
console can judge (alarms.py: overspeed, fog, signs above the law, uncovered fog, section alarms) are
written by the console's monitor (monitor.py) through the same `write`.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time

from .decode import Record
from .device_events import Entry, derive
from .store import Store

SEVERITIES = ("critical", "warning", "info")
# type -> (what the filter calls it, severity of its raise / event). Clears and acknowledgements are info.
TYPES = {
    "sos": ("SOS", "critical"),
    "dispatch": ("Dispatch", "info"),
    "duty": ("Unit status", "info"),
    "sign_change": ("Sign change", "info"),
    "sign_comm_lost": ("Sign without controller contact", "warning"),
    "sign_fault": ("Sign fault", "warning"),
    "sign_over_law": ("Sign above the Art. 81 limit", "critical"),
    "section_alarm": ("Beacon section alarm", "critical"),
    "offline": ("Device offline", "warning"),
    "low_battery": ("Low battery", "warning"),
    "meter_fault": ("Visibility meter fault", "warning"),
    "lamp_fault": ("Beacon lamp fault", "warning"),
    "device_fault": ("Device fault", "warning"),
    "store_overflow": ("Tracker lost buffered reports", "warning"),
    "ingest_reject": ("Ingest rejects", "warning"),
    "overspeed": ("Unit above the sign's limit", "warning"),
    "in_fog": ("Unit in fog below 100 m", "warning"),
    "fog_uncovered": ("Fog section without patrol nearby", "warning"),
}
REJECT_WINDOW_S = 60.0  # rejects of one reason within this window add to one log line
MAX_PAGE = 500

SCHEMA = """
CREATE TABLE IF NOT EXISTS events(
  id INTEGER PRIMARY KEY, at REAL NOT NULL, type TEXT NOT NULL, severity TEXT NOT NULL, phase TEXT NOT NULL,
  device TEXT, text TEXT NOT NULL, detail TEXT, alarm INTEGER NOT NULL DEFAULT 0, key TEXT, ref INTEGER,
  cleared_at REAL, acked_by TEXT, acked_at REAL, count INTEGER NOT NULL DEFAULT 1, last_at REAL);
CREATE INDEX IF NOT EXISTS events_type ON events(type, id);
CREATE INDEX IF NOT EXISTS events_device ON events(device, id);
CREATE INDEX IF NOT EXISTS events_at ON events(at);
CREATE INDEX IF NOT EXISTS events_alarms ON events(alarm, acked_at, cleared_at);
CREATE UNIQUE INDEX IF NOT EXISTS events_open_key ON events(key) WHERE alarm=1 AND cleared_at IS NULL;
CREATE TABLE IF NOT EXISTS event_dispatch(id INTEGER PRIMARY KEY, status TEXT);
"""


def _row(r: sqlite3.Row | dict) -> dict:
    d = dict(r)
    try:
        d["detail"] = json.loads(d["detail"]) if d.get("detail") else {}
    except ValueError:
        d["detail"] = {}
    return d


class EventLog:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.listeners: list = []  # fn(kind, row) after a commit: "event" (a new row), "update" (a row changed)
        with store.lock:
            store.db.executescript(SCHEMA)

    # -- writing (inside a transaction the caller holds: the ingest's, or txn()) ------------------------
    def write(self, c, entry: Entry, device: str | None, at: float, out: list) -> None:
        """Apply one entry; the rows it adds or changes are appended to out as (kind, id)."""
        sev = entry.severity or TYPES.get(entry.type, ("", "info"))[1]
        detail = json.dumps(entry.detail, sort_keys=True) if entry.detail else None
        if entry.phase == "raise":
            row = c.execute("SELECT id, severity FROM events WHERE key=? AND alarm=1 AND cleared_at IS NULL",
                            (entry.key,)).fetchone()
            if row:
                # the condition again while its alarm is open: counted, its latest words kept, never less severe;
                # re-raised if it was acknowledged
                worse = min(row[1], sev, key=lambda x: SEVERITIES.index(x) if x in SEVERITIES else len(SEVERITIES))
                c.execute("UPDATE events SET count=count+1, last_at=?, text=?, severity=?, acked_by=NULL, "
                          "acked_at=NULL WHERE id=?", (at, entry.text, worse, row[0]))
                out.append(("update", row[0]))
                return
            cur = c.execute("INSERT INTO events(at,type,severity,phase,device,text,detail,alarm,key,last_at) "
                            "VALUES(?,?,?,?,?,?,?,1,?,?)",
                            (at, entry.type, sev, "raise", device, entry.text, detail, entry.key, at))
            out.append(("event", cur.lastrowid))
            return
        if entry.phase == "clear":
            row = c.execute("SELECT id FROM events WHERE key=? AND alarm=1 AND cleared_at IS NULL",
                            (entry.key,)).fetchone()
            if not row:
                return  # nothing was raised (the console started after it, or it was cleared already)
            c.execute("UPDATE events SET cleared_at=? WHERE id=?", (at, row[0]))
            out.append(("update", row[0]))
            cur = c.execute("INSERT INTO events(at,type,severity,phase,device,text,detail,key,ref) "
                            "VALUES(?,?,?,?,?,?,?,?,?)",
                            (at, entry.type, "info", "clear", device, entry.text, detail, entry.key, row[0]))
            out.append(("event", cur.lastrowid))
            return
        cur = c.execute("INSERT INTO events(at,type,severity,phase,device,text,detail) VALUES(?,?,?,?,?,?,?)",
                        (at, entry.type, sev, "event", device, entry.text, detail))
        out.append(("event", cur.lastrowid))

    def txn(self, fn) -> list:
        """Run fn(c, out) in one IMMEDIATE transaction of the store, then tell the listeners."""
        out: list = []
        with self.store.lock:
            c = self.store.db
            c.execute("BEGIN IMMEDIATE")
            try:
                fn(c, out)
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
        self.announce(out)
        return out

    def announce(self, changed: list) -> None:
        if not changed or not self.listeners:
            return
        seen: dict[int, str] = {}
        for kind, rid in changed:
            if seen.get(rid) != "event":
                seen[rid] = kind
        rows = {r["id"]: r for r in self.rows(list(seen))}
        for rid, kind in seen.items():
            if rid in rows:
                for fn in self.listeners:
                    fn(kind, rows[rid])

    def add(self, entries: list[Entry], device: str | None = None, at: float | None = None) -> list:
        at = time.time() if at is None else at
        return self.txn(lambda c, out: [self.write(c, e, device, at, out) for e in entries])

    # -- acknowledgement -------------------------------------------------------------------------------
    def acknowledge(self, eid: int, user: str, note: str = "") -> dict | None:
        """Mark alarm eid acknowledged by user and log it; None if there is no such alarm. An alarm that is
        already acknowledged keeps its first acknowledgement (returned unchanged)."""
        def ack(c, out):
            row = c.execute("SELECT * FROM events WHERE id=? AND alarm=1", (eid,)).fetchone()
            if row is None:
                raise LookupError(eid)
            if row["acked_at"] is not None:
                return
            now = time.time()
            c.execute("UPDATE events SET acked_by=?, acked_at=? WHERE id=?", (user, now, eid))
            out.append(("update", eid))
            text = f"acknowledged by {user}: {row['text']}" + (f" — {note}" if note else "")
            cur = c.execute("INSERT INTO events(at,type,severity,phase,device,text,detail,key,ref) "
                            "VALUES(?,?,?,?,?,?,?,?,?)", (now, row["type"], "info", "ack", row["device"], text,
                                                          json.dumps({"by": user, "note": note}), row["key"], eid))
            out.append(("event", cur.lastrowid))

        try:
            self.txn(ack)
        except LookupError:
            return None
        r = self.rows([eid])
        return r[0] if r else None

    # -- reading ---------------------------------------------------------------------------------------
    def rows(self, ids: list[int]) -> list[dict]:
        if not ids:
            return []
        with self.store.lock:
            cur = self.store.db.execute(f"SELECT * FROM events WHERE id IN ({','.join('?' * len(ids))})", ids)
            return [_row(r) for r in cur.fetchall()]

    def query(self, type_: str | None = None, device: str | None = None, severity: str | None = None,
              t_from: float | None = None, t_to: float | None = None, acked: bool | None = None,
              alarms_only: bool = False, before: int | None = None, limit: int = 50) -> dict:
        """Newest first, `limit` rows older than id `before`; `next` is the cursor for the page after."""
        where, args = [], []
        if type_:
            where.append("type=?")
            args.append(type_)
        if device:
            where.append("device=?")
            args.append(device)
        if severity:
            where.append("severity=?")
            args.append(severity)
        if t_from is not None:
            where.append("at>=?")
            args.append(t_from)
        if t_to is not None:
            where.append("at<=?")
            args.append(t_to)
        if acked is not None or alarms_only:
            where.append("alarm=1")
        if acked is True:
            where.append("acked_at IS NOT NULL")
        elif acked is False:
            where.append("acked_at IS NULL")
        w = (" WHERE " + " AND ".join(where)) if where else ""
        limit = max(1, min(MAX_PAGE, limit))
        page_where = w + (" AND " if w else " WHERE ") + "id<?" if before is not None else w
        with self.store.lock:
            db = self.store.db
            total = db.execute("SELECT count(*) FROM events" + w, args).fetchone()[0]
            rows = db.execute(f"SELECT * FROM events{page_where} ORDER BY id DESC LIMIT ?",
                              args + ([before] if before is not None else []) + [limit + 1]).fetchall()
        out = [_row(r) for r in rows[:limit]]
        return {"events": out, "total": total, "next": out[-1]["id"] if len(rows) > limit else None}

    def alarms(self, limit: int = 200) -> list[dict]:
        """What the alarm list shows: every alarm still active or not yet acknowledged, worst first."""
        with self.store.lock:
            rows = self.store.db.execute(
                "SELECT * FROM events WHERE alarm=1 AND (cleared_at IS NULL OR acked_at IS NULL) ORDER BY "
                "acked_at IS NOT NULL, CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, "
                "id DESC LIMIT ?", (limit,)).fetchall()
        return [_row(r) for r in rows]

    def dispatch_statuses(self) -> dict[int, str]:
        """The dispatch states already logged, by dispatch id."""
        with self.store.lock:
            return dict(self.store.db.execute("SELECT id, status FROM event_dispatch").fetchall())

    def open_keys(self, types) -> dict[str, dict]:
        """Open alarms of these types by key (the console's monitor resumes them after a restart)."""
        types = list(types)
        with self.store.lock:
            rows = self.store.db.execute(
                f"SELECT * FROM events WHERE alarm=1 AND cleared_at IS NULL AND type IN ({','.join('?' * len(types))})",
                types).fetchall()
        return {r["key"]: _row(r) for r in rows}


class IngestEvents:
    """Store observer: each stored status, state or event message -> log entries, in its transaction."""

    KINDS = ("status", "state", "event")

    def __init__(self, log: EventLog, roles: dict[str, str] | None = None) -> None:
        self.log = log
        self.roles = roles or {}  # device -> role from the deployment (its info may not have arrived)
        self._pending: list = []
        self._lock = threading.Lock()

    def before(self, c, rec: Record):
        if rec.kind not in self.KINDS:
            return None
        row = c.execute("SELECT role, status, state FROM devices WHERE id=?", (rec.device,)).fetchone()
        if row is None:
            return (None, None, None)
        try:
            st = json.loads(row[2]) if row[2] else None
        except ValueError:
            st = None
        return (row[0], row[1], st)

    def after(self, c, rec: Record, rx: float, token, stored: bool) -> None:
        if token is None or not stored:
            return
        role, status, state = token
        try:
            entries = derive(rec.kind, rec.device, role or self.roles.get(rec.device), status, state, rec.body)
        except Exception:  # a derivation bug must never cost the message: it is stored without its log line
            entries = []
        for e in entries:
            self.log.write(c, e, rec.device, rx, self._pending)

    def rejected(self, c, rejects: list[tuple[str, str, float]]) -> None:
        by_reason: dict[str, tuple[int, str, float]] = {}
        for reason, topic, rx in rejects:
            n, _t, _rx = by_reason.get(reason, (0, "", 0.0))
            by_reason[reason] = (n + 1, topic, rx)
        for reason, (n, topic, rx) in by_reason.items():
            row = c.execute("SELECT id, count FROM events WHERE type='ingest_reject' AND key=? AND at>=? "
                            "ORDER BY id DESC LIMIT 1", (reason, rx - REJECT_WINDOW_S)).fetchone()
            text = f"rejected {{n}} message(s): {reason}, last on topic {topic[:120]}"
            if row:
                c.execute("UPDATE events SET count=count+?, last_at=?, text=? WHERE id=?",
                          (n, rx, text.format(n=row[1] + n), row[0]))
                self._pending.append(("update", row[0]))
            else:
                cur = c.execute("INSERT INTO events(at,type,severity,phase,text,detail,key,count,last_at) "
                                "VALUES(?,?,?,?,?,?,?,?,?)", (rx, "ingest_reject", "warning", "event",
                                                              text.format(n=n), json.dumps({"reason": reason}),
                                                              reason, n, rx))
                self._pending.append(("event", cur.lastrowid))

    def end(self, committed: bool) -> None:
        pending, self._pending = self._pending, []
        if committed:
            try:
                self.log.announce(pending)
            except Exception:  # the store closing under us at shutdown: the rows are stored, the page reloads
                pass
