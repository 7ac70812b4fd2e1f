"""The controller's audit log in SQLite: every decision and every human action, with who, what, why
and the inputs it was based on. Append-only; one row per event."""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    ts      REAL NOT NULL,          -- unix seconds
    zone    TEXT NOT NULL,
    who     TEXT NOT NULL,          -- "controller" or the operator's user name
    role    TEXT,                   -- operator role (supervisor, operator, ...)
    action  TEXT NOT NULL,          -- command | pending | hold | release | refused | mode | closure | open |
                                    -- no_data | send | resend | ack | start | stop
    sign    TEXT,
    lim     INTEGER,                -- km/h (NULL = blank / not applicable)
    mode    TEXT,                   -- controller mode at the time
    why     TEXT NOT NULL,
    inputs  TEXT                    -- JSON: visibility, levels, targets, ack codes...
);
CREATE INDEX IF NOT EXISTS audit_sign_ts ON audit(sign, ts);
-- what stands for each sign across controller restarts (a veto hold must survive one)
CREATE TABLE IF NOT EXISTS standing (
    zone      TEXT NOT NULL,
    sign      TEXT NOT NULL,
    commanded INTEGER,
    hold      INTEGER,
    ts        REAL NOT NULL,
    PRIMARY KEY (zone, sign)
);
-- the zone's mode as a supervisor last set it (an acknowledged operator action survives a restart)
CREATE TABLE IF NOT EXISTS zone_mode (
    zone      TEXT PRIMARY KEY,
    mode      TEXT NOT NULL,
    ts        REAL NOT NULL
);
"""


class Audit:
    def __init__(self, path: str | Path, zone: str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.zone = zone
        self.lock = threading.Lock()
        self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)

    def write(self, action: str, why: str, who: str = "controller", sign: str | None = None,
              limit: int | None = None, mode: str | None = None, inputs: dict | None = None,
              role: str | None = None, ts: float | None = None) -> None:
        with self.lock:
            self.db.execute(
                "INSERT INTO audit (ts, zone, who, role, action, sign, lim, mode, why, inputs) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (time.time() if ts is None else ts, self.zone, who, role, action, sign, limit, mode, why,
                 json.dumps(inputs, sort_keys=True, default=str) if inputs else None))

    def save_standing(self, sign: str, commanded: int | None, hold: int | None) -> None:
        with self.lock:
            self.db.execute("INSERT OR REPLACE INTO standing (zone, sign, commanded, hold, ts) VALUES (?,?,?,?,?)",
                            (self.zone, sign, commanded, hold, time.time()))

    def standing(self) -> dict[str, tuple[int | None, int | None]]:
        with self.lock:
            cur = self.db.execute("SELECT sign, commanded, hold FROM standing WHERE zone = ?", (self.zone,))
            return {r[0]: (r[1], r[2]) for r in cur.fetchall()}

    def save_mode(self, mode: str) -> None:
        with self.lock:
            self.db.execute("INSERT OR REPLACE INTO zone_mode (zone, mode, ts) VALUES (?,?,?)",
                            (self.zone, mode, time.time()))

    def saved_mode(self) -> str | None:
        with self.lock:
            r = self.db.execute("SELECT mode FROM zone_mode WHERE zone = ?", (self.zone,)).fetchone()
            return r[0] if r else None

    def rows(self, where: str = "1=1", params: tuple = ()) -> list[dict]:
        with self.lock:
            cur = self.db.execute(f"SELECT * FROM audit WHERE {where} ORDER BY id", params)
            cols = [c[0] for c in cur.description]
            return [dict(zip(cols, r)) for r in cur.fetchall()]

    def close(self) -> None:
        with self.lock:
            self.db.close()
