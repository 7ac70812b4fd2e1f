"""Bench: the console's alarm round (host_tools/dispatch/alarms.py, run once a second) on the demo
deployment in thick fog with 123 and 1,000 patrol units, and what logging device messages in the ingest
transaction (events.IngestEvents) costs the ingest rate of state/status/event messages.

    python bench/alarms/run.py [--rounds 20] [--messages 20000]
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.common import write_section  # noqa: E402
from host_tools.deployment.scenario import load  # noqa: E402
from host_tools.dispatch.alarms import TYPES, AlarmConfig, AlarmRules, Placed, View  # noqa: E402
from host_tools.dispatch.events import EventLog, IngestEvents  # noqa: E402
from host_tools.dispatch.ingest import Ingest  # noqa: E402
from host_tools.deployment.roadnet import RoadNetwork  # noqa: E402
from host_tools.dispatch.store import Store  # noqa: E402

SCENARIO = REPO / "sim" / "scenarios" / "demo.json"


def view(sc, net, n_units: int, now: float, rng: random.Random) -> View:
    pl = sc.roads["G60"]
    units = []
    for i in range(n_units):
        km = rng.uniform(pl.km0, pl.km_end)
        lat, lon = pl.latlon_at_km(km)
        heading = pl.point_at_m((km - pl.km0) * 1000)[2]
        units.append({"id": f"trk-{i:05d}", "status": "online", "lat": lat, "lon": lon, "tst": now - 2,
                      "vel": rng.uniform(30, 110), "cog": heading if rng.random() < 0.5 else (heading + 180) % 360,
                      "state": {"duty": "patrol" if i % 7 else "dispatched"}})
    signs = [Placed(s.id, s.road, s.km, s.lat, s.lon, s.section, "online", {"limit": 60, "vis_m": 150})
             for s in sc.signs]
    beacons = [Placed(b.id, b.road, b.km, b.lat, b.lon, b.section, "online",
                      {"mode": "anti_rear_end", "vis_m": 40 + (k % 50)}) for k, b in enumerate(sc.beacons)]
    return View(units=units, signs=signs, beacons=beacons, ctl={}, busy=set(), scenario=sc, net=net)


def alarm_round(sc, net, n_units: int, rounds: int, coverage_every_s: float) -> tuple[float, int]:
    rng = random.Random(1)
    now = time.time()
    v = view(sc, net, n_units, now, rng)
    rules = AlarmRules(AlarmConfig(coverage_every_s=coverage_every_s))
    times = []
    for i in range(rounds):
        t0 = time.perf_counter()
        rules.evaluate(int((now + i) * 1000), v)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), len(rules.conditions(now + rounds, v))


def messages(n: int) -> list[tuple[str, bytes, float]]:
    out = []
    for i in range(n):
        d = f"dev-{i % 500:03d}"
        k = i % 4
        if k == 0:
            out.append((f"re/{d}/status", b"offline" if (i // 500) % 2 else b"online", time.time()))
        elif k == 1:
            out.append((f"re/{d}/state", json.dumps({"limit": 60 + 20 * (i % 3), "source": "central",
                                                     "comm": "ok"}).encode(), time.time()))
        elif k == 2:
            out.append((f"re/{d}/state", json.dumps({"duty": "patrol", "batt": i % 100}).encode(), time.time()))
        else:
            out.append((f"re/{d}/event", json.dumps({"seq": i, "ts": 1.7e9, "type": "fault", "what": "lamp_red"})
                        .encode(), time.time()))
    return out


def ingest_rate(msgs, with_log: bool) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as d:
        store = Store(Path(d) / "b.db")
        log = None
        if with_log:
            log = EventLog(store)
            store.observers.append(IngestEvents(log))
        ing = Ingest(store, "mqtt://127.0.0.1:1")
        t0 = time.perf_counter()
        for i in range(0, len(msgs), 1000):  # the writer's batch size
            ing.process(msgs[i:i + 1000])
        rate = len(msgs) / (time.perf_counter() - t0)
        rows = log.query(limit=1)["total"] if log else 0
        store.close()
        return rate, rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--messages", type=int, default=20000)
    a = ap.parse_args()
    sc = load(SCENARIO)
    net = RoadNetwork.from_scenario(sc)
    lines = ["| units | alarm round, median ms (road search for uncovered fog every round) | same, road search every "
             "15 s (the default) | conditions |", "|---|---|---|---|"]
    for n in (123, 1000):
        every, conds = alarm_round(sc, net, n, a.rounds, 0.0)
        default, _ = alarm_round(sc, net, n, a.rounds, 15.0)
        lines.append(f"| {n} | {every:.1f} | {default:.1f} | {conds} |")
        print(lines[-1])
    msgs = messages(a.messages)
    base, _ = ingest_rate(msgs, False)
    logged, rows = ingest_rate(msgs, True)
    lines += ["", "| ingest of status/state/event messages | msg/s |", "|---|---|",
              f"| without the event log | {base:,.0f} |",
              f"| with the event log (written in the same transaction; {rows:,} log lines) | {logged:,.0f} |"]
    print("\n".join(lines[-4:]))
    write_section("alarms", f"""
Demo deployment (`sim/scenarios/demo.json`: 136 beacons, 3 signs, 2 km fog section) in thick fog, patrol units
spread along G60 at 30-110 km/h; all {len(TYPES)} rules ({", ".join(TYPES)}). The console runs one round a second.
The ingest figures are a worst case: every other message here changes something worth a log line, while the
bulk of real traffic (positions, telemetry) only passes the observer's kind check. Figures vary with the load of
this shared machine.

{chr(10).join(lines)}
""")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
