"""Bench: dispatcher ingest rate against Mosquitto beside Mosquitto's raw delivery rate to a bare
paho subscriber (same run, same message stream), and nearest-unit ranking time with 10,000 units
(`--ranking-only`: print the ranking figures without the ingest runs or touching docs/benchmarks.md).

    python bench/dispatch/run.py [--messages 20000] [--units 10000]
"""
from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import paho.mqtt.client as mqtt  # noqa: E402

from bench.common import write_section  # noqa: E402
from host_tools.broker.mosquitto import Mosquitto  # noqa: E402
from host_tools.dispatch.ingest import Ingest  # noqa: E402
from host_tools.deployment.roadnet import RoadNetwork  # noqa: E402
from host_tools.dispatch.store import Store  # noqa: E402

# A separate process publishes, so the measured side has the interpreter to itself.
PUBLISHER = r"""
import json, sys, time
import paho.mqtt.client as mqtt
port, n, units, qos = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-pub")
c.max_inflight_messages_set(1000)
c.connect("127.0.0.1", port); c.loop_start()
t0 = 1.7e9
last = None
for i in range(n):
    u = i % units
    p = {"_type": "location", "lat": 30.3 + (i % 997) / 1e5, "lon": 120.0 + (i % 991) / 1e5, "tst": t0 + i,
         "vel": 60.0, "cog": 90.0, "acc": 5, "seq": i // units, "sat": 9, "hdop": 0.9, "fix": 3, "live": True}
    last = c.publish(f"owntracks/roadedge/trk-{u:03d}", json.dumps(p), qos=qos)
    while len(c._out_messages) > 5000:
        time.sleep(0.001)
last.wait_for_publish(120)
c.disconnect(); c.loop_stop()
"""


def publish(port: int, n: int, units: int, qos: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", PUBLISHER, str(port), str(n), str(units), str(qos)])


def raw_rate(b: Mosquitto, n: int, units: int, qos: int) -> float:
    got, first, done = [0], [0.0], threading.Event()
    last = [0.0]

    def on_message(c, u, m):
        if got[0] == 0:
            first[0] = time.perf_counter()
        got[0] += 1
        if got[0] == n:
            last[0] = time.perf_counter()
            done.set()

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-raw")
    sub = threading.Event()
    c.on_message = on_message
    c.on_subscribe = lambda *a: sub.set()
    c.connect("127.0.0.1", b.port)
    c.loop_start()
    c.subscribe("owntracks/#", qos)
    sub.wait(10)
    p = publish(b.port, n, units, qos)
    ok = done.wait(300)
    p.wait(60)
    c.disconnect()
    c.loop_stop()
    if not ok:
        raise RuntimeError(f"raw subscriber got {got[0]}/{n}")
    return (n - 1) / (last[0] - first[0])


def ingest_rate(b: Mosquitto, n: int, units: int, qos: int, db: Path) -> tuple[float, dict]:
    store = Store(db)
    ing = Ingest(store, b.url).start()
    p = publish(b.port, n, units, qos)
    # the first message starts the clock
    while ing.stats["received"] == 0 and ing.q.qsize() == 0:
        time.sleep(0.001)
    t0 = time.perf_counter()
    ok = ing.wait_idle(n, timeout=600)
    t1 = time.perf_counter()
    p.wait(60)
    stats = dict(ing.stats)
    counts = store.counts()
    ing.stop()
    if not ok:
        raise RuntimeError(f"ingest processed {stats['received']}/{n}")
    if counts["positions"] != n:
        raise RuntimeError(f"stored {counts['positions']} of {n}")
    return n / (t1 - t0), stats


def shared_workers_rate(b: Mosquitto, n: int, units: int, qos: int, db: Path, workers: int = 2) -> float:
    """`workers` separate `roadedge dispatch --no-web --shared-group` processes on one database."""
    import sqlite3

    procs = [subprocess.Popen([sys.executable, "-m", "host_tools.cli", "dispatch", "--broker", b.url, "--db", str(db),
                               "--no-web", "--shared-group", "bench"], stderr=subprocess.PIPE, text=True, cwd=REPO)
             for _ in range(workers)]
    try:
        for p in procs:
            assert p.stderr is not None
            line = p.stderr.readline()  # printed once connected and subscribed
            if "ingesting" not in line:
                raise RuntimeError(f"worker did not start: {line}")
        pub = publish(b.port, n, units, qos)
        con = sqlite3.connect(db, timeout=30)
        t0 = None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            got = con.execute("SELECT count(*) FROM positions").fetchone()[0]
            if got and t0 is None:
                t0 = time.perf_counter()
            if got >= n:
                break
            time.sleep(0.02)
        t1 = time.perf_counter()
        pub.wait(60)
        if got != n:
            raise RuntimeError(f"shared workers stored {got}/{n}")
        return n / (t1 - (t0 or t1))
    finally:
        for p in procs:
            p.terminate()
            p.wait(30)


def ranking(n_units: int, repeats: int = 10) -> tuple[float, float, float, int]:
    """Ranking as the console asks for it (the first 10 of n_units): each repeat a new incident position
    (its reverse Dijkstra included), then the same incident again (the search remembered)."""
    from host_tools.deployment.scenario import load

    sc = load(REPO / "sim" / "scenarios" / "seed-city.json")
    net = RoadNetwork.from_scenario(sc)
    rnd = random.Random(1)
    roads = list(sc.roads.values())
    units = []
    for i in range(n_units):
        pl = rnd.choice(roads)
        la, lo = pl.latlon_at_km(rnd.uniform(pl.km0, pl.km_end))
        units.append((f"u{i}", la + rnd.gauss(0, 1e-4), lo + rnd.gauss(0, 1e-4)))  # ~10 m GNSS noise
    net.rank(30.3, 120.0, units[:10], limit=10)  # numpy warm-up
    cold, warm = [], []
    for r in range(repeats):
        pl = roads[r % len(roads)]
        la, lo = pl.latlon_at_km(pl.km0 + (pl.km_end - pl.km0) * rnd.uniform(0.1, 0.9))
        for times in (cold, warm):
            t0 = time.perf_counter()
            net.rank(la, lo, units, limit=10)
            times.append(time.perf_counter() - t0)
    return statistics.median(cold), max(cold), statistics.median(warm), len(net.edges)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--units", type=int, default=10000)
    ap.add_argument("--ranking-only", action="store_true")
    a = ap.parse_args()
    if a.ranking_only:
        med, worst, again, edges = ranking(a.units)
        print(f"ranking {a.units} units: median {med * 1000:.1f} ms, worst {worst * 1000:.1f} ms, "
              f"again {again * 1000:.1f} ms ({edges} edges)")
        return 0
    n, fleet = a.messages, 123
    rows = []
    with tempfile.TemporaryDirectory() as td:
        with Mosquitto(Path(td) / "mq") as b:
            for qos in (0, 1):
                print(f"QoS {qos}: raw paho subscriber, {n} messages ...", flush=True)
                raw = raw_rate(b, n, fleet, qos)
                print(f"  {raw:,.0f} msg/s", flush=True)
                print(f"QoS {qos}: dispatch ingest into SQLite ...", flush=True)
                ing, st = ingest_rate(b, n, fleet, qos, Path(td) / f"bench{qos}.db")
                print(f"  {ing:,.0f} msg/s ({st['batches']} batches, {st['dupes']} duplicates)", flush=True)
                print(f"QoS {qos}: two ingest worker processes on one shared subscription ...", flush=True)
                two = shared_workers_rate(b, n, fleet, qos, Path(td) / f"shared{qos}.db")
                print(f"  {two:,.0f} msg/s", flush=True)
                rows.append((qos, raw, ing, two))
    print(f"nearest-unit ranking, {a.units} units ...", flush=True)
    med, worst, again, edges = ranking(a.units)
    print(f"  median {med * 1000:.1f} ms, worst {worst * 1000:.1f} ms, same incident again {again * 1000:.1f} ms "
          f"({edges} road edges)")
    body = [f"Location messages (OwnTracks JSON, {fleet} trackers) published as fast as possible by a separate "
            f"process to Mosquitto on loopback; {n} messages per run.", "",
            "| QoS | Mosquitto -> bare paho subscriber | -> `roadedge dispatch` ingest, stored in SQLite | ratio | "
            "-> 2 ingest processes, one shared subscription, one database |",
            "|---|---|---|---|---|"]
    for qos, raw, ing, two in rows:
        body.append(f"| {qos} | {raw:,.0f} msg/s | {ing:,.0f} msg/s | {ing / raw:.0%} | {two:,.0f} msg/s |")
    body += ["", "Two workers split the stream exactly once (tests/dispatch/test_ingest.py) but share SQLite's single "
             "writer: they add CPU for decoding and give failover, not write throughput; the machine is shared "
             "with other jobs, so figures vary between runs."]
    body += ["", f"Nearest-unit ranking by ETA along the road network (seed-city deployment, {edges} road edges), "
             f"the first 10 of {a.units:,} units as the console asks for them: every unit snapped to the roads at "
             f"once over numpy arrays of the edges, plus one reverse Dijkstra from the incident. New incident "
             f"position each time: median **{med * 1000:.1f} ms**, worst {worst * 1000:.1f} ms of 10; the same "
             f"incident again (its search remembered): median {again * 1000:.1f} ms. Issue 15's target: <= 50 ms; "
             "before, one unit at a time: 148 ms. The array ranking gives the one-unit ranking's answer "
             "(tests/dispatch/test_roadnet.py, random deployments)."]
    write_section("dispatch", "\n".join(body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
