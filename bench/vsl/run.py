"""bench/vsl: how fast the speed-limit chain reacts, through a real Mosquitto.

1. command -> display: a signed set_limit published to a sign (MicroPython unix port on the sim
   hardware server) until its LEDs show the new limit (decoded from the SPI traffic).
2. fog onset -> every sign lawful: the moment a beacon's meter (reporting every 5 s) starts reading
   fog until every sign of a 5-sign section fed by it shows the Art. 81 limit (`roadedge controller`
   process with the shipped zone defaults, docs/fog-control.md): the acceptance bound is 30 s.
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "sign"), str(ROOT / "bench")]

from common import write_section  # noqa: E402
from host_tools.broker.mosquitto import Mosquitto  # noqa: E402
from vsl_rig import Rig  # noqa: E402

N_CMD = 40
N_VIS = 6
METER_S = 5.0  # the beacon's meter poll (roadedge.beacon.meter DEFAULTS)
FOGS = ((150, 60), (80, 40), (40, 20))  # visibility (m) -> the Art. 81 limit every sign must show


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


def bench_visibility(tmp: Path) -> list[tuple[int, float]]:
    """Fog onset -> every sign lawful, with the shipped zone defaults (confirm 10 s, ...): each run a
    fresh controller in clear air, then the beacon (reporting every 5 s, as its meter polls) reads fog."""
    zone = {"zone": "bench", "signs": [{"id": f"vsl-{i}", "km": 10 + 0.5 * i, "sources": ["bcn-1"]}
                                       for i in range(5)]}
    with Mosquitto(tmp / "mq2") as b:
        (tmp / "vis").mkdir(exist_ok=True)
        rig = Rig(tmp / "vis", b.port)
        rig.time_beacon()
        vis = {"m": 1000}
        stop = threading.Event()
        kick = threading.Event()

        def beacon():
            while not stop.is_set():
                rig.watch.publish("re/bcn-1/tele", {"ts": time.time(), "vis_m": vis["m"]}, qos=0)
                kick.clear()
                kick.wait(METER_S)

        try:
            signs = [rig.sign(s["id"]).start() for s in zone["signs"]]
            watches = [face_times(rig, s) for s in signs]
            threading.Thread(target=beacon, daemon=True).start()
            out = []
            for i in range(N_VIS):
                fog, lawful = FOGS[i % len(FOGS)]
                vis["m"] = 1000
                (tmp / "vis" / "audit.sqlite").unlink(missing_ok=True)  # no standing decisions: clear air
                rig.start_controller(zone)
                t_up = time.monotonic()
                for seen, cond in watches:
                    wait_reading(seen, cond, (100, ""), t_up - 60, 60)
                # fog arrives at a random moment of the meter's 5 s cycle
                stop.wait(1 + (i * 1.7) % METER_S)
                t0 = time.monotonic()
                vis["m"] = fog
                t_ok = max(wait_reading(seen, cond, (lawful, "FOG"), t0, 90) for seen, cond in watches)
                out.append((lawful, t_ok - t0))
                print(f"\rfog onset -> all 5 signs lawful {i + 1}/{N_VIS}: {fog} m -> {lawful} km/h in "
                      f"{t_ok - t0:.1f} s   ", end="", flush=True)
                rig.stop_controller()
                for sg, (seen, cond) in zip(signs, watches):  # blank again: the next controller starts afresh
                    t_clear = time.monotonic()
                    rig.watch.publish(f"re/{sg.id}/cmd/clear", sg.signed("clear", {}))
                    wait_reading(seen, cond, (None, ""), t_clear, 30)
            print()
            return out
        finally:
            stop.set()
            kick.set()
            rig.close()


def main() -> int:
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        cmd = bench_command(tmp)
        vis = bench_visibility(tmp)
    secs = [t for _l, t in vis]
    body = f"""Signs are MicroPython unix-port processes on the sim hardware server; "display" means the
MAX7219 frames decoded on the host show the new limit. Broker: Mosquitto on loopback.

| path | n | median | p95 | max |
|---|---|---|---|---|
| signed `set_limit` -> LEDs show it (1 sign) | {len(cmd)} | {statistics.median(cmd):.1f} ms | {pct(cmd, 95):.1f} ms | {max(cmd):.1f} ms |
| fog onset at the beacon -> all 5 signs show the Art. 81 limit (60, 40 or 20) | {len(secs)} | {statistics.median(secs):.1f} s | {pct(secs, 95):.1f} s | {max(secs):.1f} s |

Fog onset to lawful is the meter's poll (0-5 s: fog arrives anywhere in its cycle) plus the
confirmation time (10 s below the threshold, measured from the first reading below it) plus the
controller's 1 s tick and the command round trip; the shipped defaults keep it under the 30 s bound
(docs/fog-control.md says why each default is what it is).
"""
    print(body)
    write_section("vsl", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
