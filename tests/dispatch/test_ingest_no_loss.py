"""Ingest loses nothing it acknowledged: kill -9 during a 60,000-message QoS 1 burst, restart with the
backlog waiting at the broker, and every message the broker acknowledged to the publisher is stored
exactly once (acknowledgement after the SQLite commit, persistent session under a stable id)."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from dispatch_support import location

REPO = Path(__file__).resolve().parents[2]
N = 60_000
UNITS = 20
WORKER = """
import sys, threading, time
from host_tools.dispatch.ingest import Ingest
from host_tools.dispatch.store import Store
store = Store(sys.argv[2])
if sys.argv[3] == "slow":  # a slow disk: the burst piles up faster than it is committed
    apply = store.apply
    store.apply = lambda *a: (time.sleep(0.05), apply(*a))[1]
ing = Ingest(store, sys.argv[1], client_id="ingest-kill-test").start(timeout=120)
print("ready", flush=True)
threading.Event().wait()
"""


def start_worker(url: str, db: Path, disk: str = "fast") -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", WORKER, url, str(db), disk], cwd=REPO, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    assert p.stdout
    line = p.stdout.readline()
    assert line.strip() == "ready", line + p.stdout.read()
    return p


def stored(db: Path) -> tuple[int, int]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute("SELECT count(*), count(DISTINCT device || '/' || seq) FROM positions").fetchone()
    finally:
        con.close()


def test_kill_9_mid_burst_then_restart_with_backlog_stores_every_acknowledged_message_once(mosquitto, tmp_path):
    db = tmp_path / "d.db"
    worker = start_worker(mosquitto.url, db, "slow")
    acked: set[int] = set()
    lock = threading.Lock()
    cond = threading.Condition(lock)
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="burst-pub")
    pub.max_inflight_messages_set(200)
    pub.max_queued_messages_set(0)

    def on_publish(_c, _u, mid, _rc, _p) -> None:
        with cond:
            acked.add(mid)
            cond.notify_all()

    pub.on_publish = on_publish
    pub.connect("127.0.0.1", mosquitto.port, 60)
    pub.loop_start()
    try:
        t0 = time.time()
        mids = []
        for i in range(N):
            unit = f"trk-{i % UNITS:02d}"
            msg = location(i // UNITS + 1, 30.3 + (i % 97) / 1e4, 120.0, t0 + i // UNITS)
            mids.append(pub.publish(f"owntracks/roadedge/{unit}", json.dumps(msg), qos=1).mid)
            if i == N // 4:
                with cond:  # the worker is busy storing when it dies
                    assert cond.wait_for(lambda: len(acked) >= N // 8, timeout=300)
                worker.kill()  # kill -9: no clean disconnect, whatever was in flight is not acknowledged
                worker.wait(30)
        with cond:
            assert cond.wait_for(lambda: len(acked) >= N, timeout=600), len(acked)
        assert set(mids) <= acked  # the broker acknowledged every message to the publisher
        # restart: the backlog (about three quarters of the burst) is waiting in the persistent session
        worker = start_worker(mosquitto.url, db)
        deadline = time.monotonic() + 300
        while stored(db)[0] < N and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.5)
        total, distinct = stored(db)
        assert worker.poll() is None, worker.stdout.read() if worker.stdout else ""
        assert (total, distinct) == (N, N)
    finally:
        pub.loop_stop()
        pub.disconnect()
        if worker.poll() is None:
            worker.kill()
            worker.wait(30)
