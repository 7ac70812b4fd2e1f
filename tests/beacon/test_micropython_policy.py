"""The same beacon policies under the real MicroPython binary (unix port):
the 100-beacon fog scenario must give exactly the independently computed
expected trace, and the red tail the same trail. The driver holds many
beacons at once, so it gets an 8 MB heap; one beacon's heap high-water under
a 96 KB cap is measured by bench/beacon."""
from __future__ import annotations

import json
from pathlib import Path

from host_tools import fw
from test_fog_modes import N, SPACING, expected_levels, readings, rolling_bank
from test_red_tail import check_trail, expected_tail

DRIVER = Path(__file__).with_name("mp_beacon_driver.py")


def run_driver(tmp_path: Path, job: dict):
    f = tmp_path / "job.json"
    f.write_text(json.dumps(job))
    res = fw.run("micropython", DRIVER, [str(f)], heap="8M", timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    lines = res.stdout.strip().splitlines()
    out = json.loads(lines[-1])
    assert out["impl"] == "micropython"
    if out["result"] is None:  # fog: per-beacon level lines
        return [[int(c) for c in ln[2:]] for ln in lines if ln.startswith("L ")]
    return out["result"]


def test_fog_levels_under_micropython(tmp_path):
    fog = rolling_bank()
    samples = [readings(fog, i * SPACING) for i in range(N)]
    got = run_driver(tmp_path, {"cfg": {}, "fog": samples})
    assert len(got) == N
    for i, s in enumerate(samples):
        assert got[i] == expected_levels(s, [500, 200, 100, 50], 20, 10, 60), f"beacon {i}"


def test_red_tail_under_micropython(tmp_path):
    n, kmh, unix0 = 40, 80, 1_700_000_000_000
    v = kmh / 3.6 / 1000  # m per ms
    t0 = 20000
    # lead vehicle at 30 m, the second 40 m behind it, both at 80 km/h
    dets = sorted([round(t0 + (i * SPACING - x0) / v), i, kmh] for x0 in (30.0, -10.0) for i in range(n)
                  if i * SPACING >= x0)
    samples = list(range(t0, t0 + int((n - 1) * SPACING / v), 50))
    reds = run_driver(tmp_path, {"cfg": {}, "n": n, "unix0": unix0, "detections": dets, "samples": samples})
    checked = 0
    for t, lit in zip(samples, reds):
        xa, xb = 30.0 + v * (t - t0), -10.0 + v * (t - t0)
        if xb < 3 * SPACING or xa > (n - 1) * SPACING:
            continue
        check_trail(xa, xb, [i in lit for i in range(n)], expected_tail(kmh))
        checked += 1
    assert checked > 100
