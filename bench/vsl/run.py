"""bench/vsl: how fast the speed-limit chain reacts, through a real Mosquitto.

1. command -> display: a signed set_limit published to a sign (MicroPython unix port on the sim
   hardware server) until its LEDs show the new limit (decoded from the SPI traffic).
2. visibility change -> all signs updated: a beacon's visibility report until every sign of a
   5-sign section shows the controller's new limit (`roadedge controller` process, interval 1 s,
   persistence 1): the first step, and the whole step-down to the Art. 81 limit.
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "sign"), str(ROOT / "bench")]

from common import write_section  # noqa: E402
from host_tools.broker.mosquitto import Mosquitto  # noqa: E402
from vsl_rig import Rig  # noqa: E402

N_CMD = 40
N_VIS = 4


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def face_times(rig: Rig, sign) -> tuple[dict, threading.Condition]:
    """Wall time at which each new reading first appeared on the sign's face."""
    seen: dict = {"log": []}
    cond = threading.Condition()

    def changed(io):
        r = io.reading()
        with cond:
            if not seen["log"] or seen["log"][-1][0] != r:
                seen["log"].append((r, time.monotonic()))
                cond.notify_all()

    rig.hw.call(sign.io.on_change, changed)
    return seen, cond


def wait_reading(seen, cond, reading, after: float, timeout: float = 30.0) -> float:
    deadline = time.monotonic() + timeout
    with cond:
        while True:
            for r, t in seen["log"]:
                if r == reading and t >= after:
                    return t
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"face never showed {reading}")
            cond.wait(left)


def bench_command(tmp: Path) -> list[float]:
    with Mosquitto(tmp / "mq1") as b:
        rig = Rig(tmp / "cmd", b.port)
        (tmp / "cmd").mkdir(exist_ok=True)
        rig.time_beacon()
        try:
            s = rig.sign("vsl-bench").start()
            rig.watch.wait_state("re/vsl-bench/state", lambda o: o["ts"] > 0, 30)
            seen, cond = face_times(rig, s)
            out = []
            for i in range(N_CMD):
                lim = (60, 80)[i % 2]
                payload = s.signed("set_limit", {"limit": lim})
                t0 = time.monotonic()
                rig.watch.publish("re/vsl-bench/cmd/set_limit", payload)
                t1 = wait_reading(seen, cond, (lim, ""), t0)
                out.append((t1 - t0) * 1000)
                print(f"\rcommand -> display {i + 1}/{N_CMD}: {out[-1]:.1f} ms   ", end="", flush=True)
            print()
            return out
        finally:
            rig.close()


def bench_visibility(tmp: Path) -> tuple[list[float], list[float]]:
    zone = {"zone": "bench", "interval_s": 1, "persist": 1, "heartbeat_s": 5,
            "signs": [{"id": f"vsl-{i}", "km": 10 + 0.5 * i, "sources": ["bcn-1"]} for i in range(5)]}
    with Mosquitto(tmp / "mq2") as b:
        (tmp / "vis").mkdir(exist_ok=True)
        rig = Rig(tmp / "vis", b.port)
        rig.time_beacon()
        vis = {"m": 1000}
        stop = threading.Event()

        def beacon():
            while not stop.is_set():
                rig.watch.publish("re/bcn-1/tele", {"ts": time.time(), "vis_m": vis["m"]}, qos=0)
                stop.wait(0.2)

        try:
            signs = [rig.sign(s["id"]).start() for s in zone["signs"]]
            watches = [face_times(rig, s) for s in signs]
            threading.Thread(target=beacon, daemon=True).start()
            rig.start_controller(zone)
            for seen, cond in watches:
                wait_reading(seen, cond, (100, ""), 0, 60)
            first, full = [], []
            for i in range(N_VIS):
                # fog (150 m: 100 -> 80 -> 60) and clear again (60 -> 80 -> 100)
                going_down = i % 2 == 0
                vis["m"] = 150 if going_down else 1000
                t0 = time.monotonic()
                step1 = (80, "FOG")
                last = (60, "FOG") if going_down else (100, "")
                t_first = max(wait_reading(seen, cond, step1, t0) for seen, cond in watches)
                t_full = max(wait_reading(seen, cond, last, t0) for seen, cond in watches)
                first.append((t_first - t0) * 1000)
                full.append((t_full - t0) * 1000)
                print(f"\rvisibility -> all 5 signs {i + 1}/{N_VIS}: first step {first[-1]:.0f} ms, "
                      f"done {full[-1]:.0f} ms   ", end="", flush=True)
            print()
            return first, full
        finally:
            stop.set()
            rig.close()


def main() -> int:
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        cmd = bench_command(tmp)
        first, full = bench_visibility(tmp)
    body = f"""Signs are MicroPython unix-port processes on the sim hardware server; "display" means the
MAX7219 frames decoded on the host show the new limit. Broker: Mosquitto on loopback.

| path | n | median | p95 | max |
|---|---|---|---|---|
| signed `set_limit` -> LEDs show it (1 sign) | {len(cmd)} | {statistics.median(cmd):.1f} ms | {pct(cmd, 95):.1f} ms | {max(cmd):.1f} ms |
| visibility report -> all 5 signs show the first step | {len(first)} | {statistics.median(first):.0f} ms | {pct(first, 95):.0f} ms | {max(first):.0f} ms |
| visibility report -> all 5 signs at the Art. 81 limit (2 steps) | {len(full)} | {statistics.median(full):.0f} ms | {pct(full, 95):.0f} ms | {max(full):.0f} ms |

The visibility path is dominated by the controller's update interval (1 s here, persistence 1; in
service 60 s and 3 intervals, so minutes by design): one step per interval, as the rules require.
"""
    print(body)
    write_section("vsl", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
