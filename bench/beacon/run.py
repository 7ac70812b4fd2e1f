"""Bench: fog-zone beacon firmware.

1. Detection-to-lamp latency in the firmware path: a beacon (compiled .mpy under
   the MicroPython unix port, sim hardware server over TCP, real Mosquitto) in
   anti-rear-end mode; the host raises the detector input and times the red PWM
   change coming back. Includes the sim link both ways (TCP, JSON lines).
2. Flash synchronisation between two beacon processes that share only the broker time beacon (`re/sys/time`
every 2 s), guidance mode (60 flashes/min), host-side onset times: {len(sync)} flashes, difference median
**{statistics.median(sync) if sync else float("nan"):.1f} ms**, max **{max(sync) if sync else float("nan"):.1f} ms**
(includes each device's sim-link and scheduling jitter; the 50 ppm drift case is
`tests/beacon/test_flash_sync.py`).

Decision cost on the device: BeaconLogic.detect + render per call, under
   MicroPython.
3. Heap: high-water of the whole device (platform + beacon role) over the run
   under `micropython -X heapsize`, from the telemetry's heap_free; and what the
   beacon role's modules and objects take on top of the platform.

    python bench/beacon/run.py [--vehicles 60] [--heap 256K]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import paho.mqtt.client as mqtt  # noqa: E402

from bench.common import write_section  # noqa: E402
from host_tools import fw  # noqa: E402
from host_tools.broker.mosquitto import Mosquitto  # noqa: E402
from sim.device_process import DeviceProcess, compiled_lib, device_config, make_device_dir  # noqa: E402
from sim.hw import HardwareServerThread  # noqa: E402
from sim.peripherals.beacon_io import BeaconIO  # noqa: E402
from sim.peripherals.vis_meter import VisibilityMeter  # noqa: E402

DEV = "fb-bench-01"
PINS = {"detector": 2, "lamp_yellow": 3, "lamp_red": 4, "ambient": 26, "lamp_current": 27, "battery": 28}
UARTS = {"vis_meter": {"id": 1, "baud": 9600, "tx": 4, "rx": 5}}

ON_DEVICE = r"""
import gc, time
from roadedge.core import app as core_app, config, state, clock, log, auth  # the platform, loaded first
gc.collect()
a0 = gc.mem_alloc()
from roadedge.beacon import app
from roadedge.beacon.logic import BeaconLogic
p = app.params({"beacon": {}})
lg = BeaconLogic(p)
gc.collect()
a1 = gc.mem_alloc()
for t in range(0, 20001, 5000):
    lg.visibility(t, 45)
n = 2000
t0 = time.ticks_us()
for i in range(n):
    lg.detect(20000 + i, 80.0)
    lg.render(20000 + i, 1700000000000 + i)
us = time.ticks_diff(time.ticks_us(), t0) / n
print("ROLE_BYTES", a1 - a0)
print("US_PER_DECISION", us)
"""


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def firmware_run(vehicles: int, heap: str, work: Path):
    lib = compiled_lib(work / "lib")
    heap_free: list[int] = []
    lat_ms: list[float] = []
    with Mosquitto(work / "mq") as broker, HardwareServerThread() as hws:
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-beacon")
        got_state = threading.Event()

        def on_msg(c, u, m):
            if not m.topic.endswith(("/tele", "/state")):
                return
            p = json.loads(m.payload)
            if m.topic.endswith("/tele"):
                heap_free.append(p["heap_free"])
            elif m.topic.endswith("/state") and p.get("mode") == "anti_rear_end":
                got_state.set()
        sub.on_message = on_msg
        sub.connect("127.0.0.1", broker.port)
        sub.subscribe(f"re/{DEV}/#", 0)
        sub.loop_start()
        sub.publish("re/sys/time", json.dumps({"t": int(time.time() * 1000)}), 0, retain=True)
        hw = hws.device(DEV)
        hws.call(lambda: VisibilityMeter(hw, 45.0))
        io = hws.call(lambda: BeaconIO(hw))
        red_on = threading.Event()
        hws.call(hw.on_change, lambda k, n, v: red_on.set() if k == "pwm" and n == "lamp_red" and v > 0 else None)
        cfg = device_config({
            "id": DEV, "board": "sim", "role": "beacon", "broker": {"url": "", "keepalive": 10}, "pins": PINS,
            "uarts": UARTS, "device": {"tele_s": 1},
            # a short tail (5 m: 225 ms at 80 km/h) so vehicles can follow each other quickly
            "beacon": {"meter": {"poll_s": 1.0, "reply_ms": 300}, "enter_s": 0.0, "tail_m": 5.0, "sense_s": 0.5},
        }, broker.url, hws.addr)
        proc = DeviceProcess(make_device_dir(work / "dev", cfg, fresh=True), "micropython", heap=heap, lib=lib).start()
        try:
            if not got_state.wait(30):
                raise RuntimeError("beacon did not reach anti-rear-end mode:\n" + proc.console())
            for i in range(vehicles):
                red_on.clear()
                t0 = time.perf_counter()
                asyncio.run_coroutine_threadsafe(io.vehicle(80), hws.loop)
                if not red_on.wait(5):
                    raise RuntimeError("no red after a detection:\n" + proc.console())
                lat_ms.append((time.perf_counter() - t0) * 1000)
                time.sleep(0.45)  # tail off again before the next vehicle
                print(f"\r  vehicles {i + 1}/{vehicles}  last {lat_ms[-1]:.1f} ms", end="", flush=True)
            print()
            t_end = time.monotonic() + 3
            n = len(heap_free)
            while len(heap_free) < n + 2 and time.monotonic() < t_end:
                time.sleep(0.1)
        finally:
            proc.kill()
            sub.loop_stop()
    return lat_ms, heap_free


def flash_sync_run(work: Path, heap: str, seconds: float = 12.0):
    """Two beacon processes that share only the broker time beacon: host-side times of their yellow
    flash onsets (each includes that device's sim-link delay)."""
    lib = work / "lib"
    onsets: dict[str, list[float]] = {"fb-sync-a": [], "fb-sync-b": []}
    with Mosquitto(work / "mq2") as broker, HardwareServerThread() as hws:
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-time")
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        stop = threading.Event()

        def time_beacon():  # as the controller does: re/sys/time every few seconds
            while not stop.is_set():
                pub.publish("re/sys/time", json.dumps({"t": int(time.time() * 1000)}), 0, retain=True)
                stop.wait(2)
        threading.Thread(target=time_beacon, daemon=True).start()
        procs = []
        try:
            for dev_id, lst in onsets.items():
                hw = hws.device(dev_id)
                hws.call(lambda hw=hw: VisibilityMeter(hw, 150.0))
                hws.call(lambda hw=hw: BeaconIO(hw))
                last = {"d": 0.0}

                def on_change(k, n, v, lst=lst, last=last):
                    if k == "pwm" and n == "lamp_yellow":
                        if v > 0 and last["d"] == 0:
                            lst.append(time.perf_counter())
                        last["d"] = v
                hws.call(hw.on_change, on_change)
                cfg = device_config({
                    "id": dev_id, "board": "sim", "role": "beacon", "broker": {"url": "", "keepalive": 10},
                    "pins": PINS, "uarts": UARTS, "device": {"tele_s": 60},
                    "beacon": {"meter": {"poll_s": 1.0, "reply_ms": 300}, "enter_s": 0.0},
                }, broker.url, hws.addr)
                procs.append(DeviceProcess(make_device_dir(work / "dev2", cfg, fresh=True), "micropython",
                                           heap=heap, lib=lib).start())
            # wait until both flash, then record
            t_end = time.monotonic() + 30
            while time.monotonic() < t_end and not all(len(v) > 3 for v in onsets.values()):
                time.sleep(0.2)
            for v in onsets.values():
                v.clear()
            time.sleep(seconds)
        finally:
            stop.set()
            for p in procs:
                p.kill()
            pub.loop_stop()
    a, b = onsets["fb-sync-a"], onsets["fb-sync-b"]
    return [min(abs(x - y) for y in b) * 1000 for x in a] if a and b else []


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vehicles", type=int, default=60)
    ap.add_argument("--heap", default="256K")
    a = ap.parse_args()
    heap_bytes = int(a.heap[:-1]) * 1024 if a.heap.upper().endswith("K") else int(a.heap)
    with tempfile.TemporaryDirectory() as td:
        work = Path(td)
        print(f"beacon firmware: {a.vehicles} vehicles, micropython -X heapsize={a.heap}")
        lat, heap_free = firmware_run(a.vehicles, a.heap, work)
        print("flash sync: two beacon processes, guidance mode, 12 s")
        sync = flash_sync_run(work, a.heap)
        probe = work / "probe.py"
        probe.write_text(ON_DEVICE)
        r = fw.run("micropython", probe, heap=a.heap, lib=work / "lib", timeout=120)
        vals = dict(ln.split(" ", 1) for ln in r.stdout.splitlines() if " " in ln)
        if "ROLE_BYTES" not in vals:
            print(r.stdout, r.stderr)
            return 1
    role_kb = int(vals["ROLE_BYTES"]) / 1024
    us = float(vals["US_PER_DECISION"])
    hw_kb = (heap_bytes - min(heap_free)) / 1024 if heap_free else float("nan")
    body = f"""
Detection-to-lamp latency, firmware path (host raises the detector input -> sim link -> edge queue ->
detector task -> BeaconLogic -> red PWM -> sim link back), {len(lat)} vehicles, compiled `.mpy` under the
MicroPython unix port, anti-rear-end mode:

| | ms |
|---|---|
| median | {statistics.median(lat):.1f} |
| p95 | {percentile(lat, 0.95):.1f} |
| max | {max(lat):.1f} |

Flash synchronisation between two beacon processes that share only the broker time beacon (`re/sys/time`
every 2 s), guidance mode (60 flashes/min), host-side onset times: {len(sync)} flashes, difference median
**{statistics.median(sync) if sync else float("nan"):.1f} ms**, max **{max(sync) if sync else float("nan"):.1f} ms**
(includes each device's sim-link and scheduling jitter; the 50 ppm drift case is
`tests/beacon/test_flash_sync.py`).

Decision cost on the device (BeaconLogic.detect + render, MicroPython): **{us:.0f} µs** per detection.

Heap (64-bit unix build: pointers and object headers are twice a 32-bit board's):

| | KB |
|---|---|
| device high-water over the run: heap size minus the lowest `heap_free` in telemetry (platform + beacon role, `-X heapsize={a.heap}`; includes garbage not yet collected) | {hw_kb:.1f} |
| beacon role on top of the platform modules (its .mpy modules + objects, after gc) | {role_kb:.1f} |
"""
    print(body)
    write_section("beacon", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
