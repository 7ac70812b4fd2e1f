"""Reports bench: one day's shift and section report (reports_db.build) for a city fleet, 123 units
riding the demo deployment's roads for an 8-hour shift with a fix every 6 s (100 m at 60 km/h),
duty changes and 50 incidents: wall time and the Python heap's peak. Writes the "reports" section
of docs/benchmarks.md.

    python bench/reports/run.py
"""
from __future__ import annotations

import json
import os
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE.parent))

from common import write_section  # noqa: E402
from host_tools.deployment.scenario import load  # noqa: E402
from host_tools.dispatch.reports import Section  # noqa: E402
from host_tools.dispatch.reports_db import build  # noqa: E402
from host_tools.dispatch.store import Store  # noqa: E402

UNITS, SHIFT_S, EVERY_S, SPEED_MS, INCIDENTS = 123, 8 * 3600, 6, 60 / 3.6, 50
T0 = 1_764_547_200.0


def fill(db: Path, sc) -> int:
    st = Store(db)
    rnd = random.Random(15)
    roads = list(sc.roads.values())
    n = 0
    for u in range(UNITS):
        pl = rnd.choice(roads)
        s, way, rows = rnd.uniform(0, pl.length_m), 1, []
        for i, t in enumerate(range(int(T0 + 6 * 3600), int(T0 + 6 * 3600 + SHIFT_S), EVERY_S)):
            parked = (i // 200) % 5 == 4  # a stop of 20 min now and then
            if not parked:
                s += way * SPEED_MS * EVERY_S
                if not 0 <= s <= pl.length_m:
                    way, s = -way, min(max(s, 0), pl.length_m)
            x, y, _ = pl.point_at_m(s)
            lat, lon = sc.proj.to_latlon(x, y)
            rows.append((f"u{u:03}", i + 1, float(t), lat, lon, 0.0 if parked else 60.0, t))
        with st.lock:
            st.db.executemany("INSERT INTO positions(device,seq,tst,lat,lon,vel,rx) VALUES(?,?,?,?,?,?,?)", rows)
            for k, duty in enumerate(("patrol", "dispatched", "on_scene", "patrol", "off_duty")):
                st.db.execute("INSERT INTO state_log(device,kind,rx,body) VALUES(?,?,?,?)",
                              (f"u{u:03}", "state", T0 + 6 * 3600 + k * SHIFT_S / 5, json.dumps({"duty": duty})))
        n += len(rows)
    for i in range(INCIDENTS):
        pl = rnd.choice(roads)
        lat, lon = pl.latlon_at_km(pl.km0 + rnd.uniform(0, pl.length_m / 1000))
        created = T0 + 6 * 3600 + rnd.uniform(0, SHIFT_S)
        iid = st.add_incident(lat, lon, 2, "bench", "bench")
        st._exec("UPDATE incidents SET created=? WHERE id=?", (created, iid))
        st._exec("INSERT INTO dispatches(incident,unit,by,sent,accepted,on_scene,status) VALUES(?,?,?,?,?,?,?)",
                 (iid, f"u{i:03}", "bench", created + 30, created + 60, created + 600, "on_scene"))
    st.close()
    return n


def main() -> int:
    sc = load(REPO / "sim" / "scenarios" / "demo.json")
    sections = Section.from_scenario(sc)
    with tempfile.TemporaryDirectory() as td:
        db = Path(td) / "d.db"
        fixes = fill(db, sc)
        times = []
        for _ in range(2):
            t = time.perf_counter()
            rep = build(str(db), sections, T0, T0 + 86400, T0 + 86400)
            times.append(time.perf_counter() - t)
        tracemalloc.start()
        build(str(db), sections, T0, T0 + 86400, T0 + 86400)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    body = (f"One day's report (`reports_db.build`) for {UNITS} units, an {SHIFT_S // 3600} h shift each with a fix "
            f"every {EVERY_S} s ({fixes:,} fixes), {len(sections)} fog section(s), {INCIDENTS} incidents, on the demo "
            f"deployment's roads: median **{statistics.median(times):.1f} s**, worst {max(times):.1f} s of "
            f"{len(times)}; Python heap peak {peak:.0f} MiB (one unit's day of fixes in memory at a time). "
            f"{len(rep['units'])} unit rows. It runs on its own read-only SQLite connection, one report at a time: "
            f"ingest is not held up. Load average during the run: {os.getloadavg()[1]:.1f} on {os.cpu_count()} cores "
            f"(the machine is shared: on an idle one expect it several times faster).")
    write_section("reports", body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
