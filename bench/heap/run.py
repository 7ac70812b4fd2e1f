"""Firmware RAM bench under the MicroPython unix port (64-bit, x64 .mpy as
`host_tools.build.build_tree('x64', ...)` writes them): what importing each
platform module costs on the heap, and for a base device and each role device
(the shipped sim board configs: sim-base, sim-sign, sim-beacon, sim-tracker) the
steady-state heap in use and the lowest `-X heapsize` at which it comes online (retained `online`, then three
telemetry reports with no crashed task) against a Mosquitto it starts itself.
Writes the "heap" section of docs/benchmarks.md.

    python bench/heap/run.py
"""
from __future__ import annotations

import json
import queue
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))
sys.path.insert(0, str(HERE.parent))

import paho.mqtt.client as mqtt  # noqa: E402

from common import write_section  # noqa: E402
from host_tools import build, fw  # noqa: E402
from host_tools.broker.mosquitto import Mosquitto  # noqa: E402
from sim.boot import load_config  # noqa: E402
from sim.devices import DeviceProcess, make_device_dir  # noqa: E402
from sim.hw import HardwareServerThread  # noqa: E402

# In import order, so each row is what that module adds on top of the ones above.
MODULES = ("roadedge.core.compat", "roadedge.core.seq", "roadedge.core.state", "roadedge.core.log",
           "roadedge.core.auth", "roadedge.core.clock", "roadedge.core.config", "roadedge.mqtt.packet",
           "roadedge.mqtt.client", "roadedge.hal.sim", "roadedge.core.app", "roadedge.core.boot")
PROBE = """import gc, sys
for m in sys.argv[1:]:
    gc.collect(); a = gc.mem_alloc()
    __import__(m)
    gc.collect(); print(m, gc.mem_alloc() - a)
"""
KEY = bytes(range(32)).hex()
ROLES = ("base", "sign", "beacon", "tracker")
BIG_HEAP_K = 256
HEAPS_K = list(range(48, 257, 4))  # the lowest heap is searched on this grid
BOARD_K = 96  # a board's heap (ESP32 without PSRAM), in 32-bit words x 4: `-X heapsize=96wK`
TELE_S = 1


def step(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def import_costs(lib: Path, work: Path) -> dict[str, int]:
    probe = work / "probe.py"
    probe.write_text(PROBE)
    r = fw.run("micropython", probe, list(MODULES), heap="512K", lib=lib, timeout=60)
    if r.returncode:
        raise RuntimeError(r.stdout + r.stderr)
    return {m: int(n) for m, n in (line.split() for line in r.stdout.split("\n") if line.strip())}


def configs(broker_url: str, work: Path) -> dict[str, dict]:
    out = {}
    for role in ROLES:
        raw = json.loads((fw.REPO / "board_configs" / f"sim-{role}.json").read_text())
        sec = work / "secrets" / role
        sec.mkdir(parents=True, exist_ok=True)
        (sec / "devices.json").write_text(json.dumps({raw["id"]: {"mqtt_password": "pw", "command_key": KEY}}))
        (sec / "site.json").write_text("{}")
        out[role] = load_config(fw.REPO / "board_configs" / f"sim-{role}.json", broker_url, str(sec))
    for c in out.values():
        c["device"] = dict(c.get("device") or {}, tele_s=TELE_S)
    return out


class Watch:
    """Everything a device publishes, queued (wait on messages, not sleeps)."""

    def __init__(self, port: int, dev: str) -> None:
        self.q: queue.Queue = queue.Queue()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"heap-bench-{dev}")
        self.c.on_connect = lambda c, u, f, rc, p=None: c.subscribe(f"re/{dev}/#", 1)
        self.c.on_message = lambda c, u, m: self.q.put((m.topic.split("/", 2)[2], m.payload))
        self.c.connect("127.0.0.1", port, 30)
        self.c.loop_start()

    def wait(self, kind: str, pred, timeout: float):
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                k, pl = self.q.get(timeout=left)
            except queue.Empty:
                break
            if k == kind and pred(pl):
                return pl
        return None

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def trial(cfg: dict, heap_k: int | str, broker: Mosquitto, lib: Path, work: Path) -> int | None:
    """heap_free of the third telemetry report, or None when the device does
    not come online and stay up at this heap."""
    dev = cfg["id"]
    w = Watch(broker.port, dev)
    with HardwareServerThread() as hws:
        c = dict(cfg, sim={"hw": hws.addr})
        p = DeviceProcess(make_device_dir(work / "dev" / f"{dev}-{heap_k}", c, fresh=True), "micropython",
                          heap=f"{heap_k}K", lib=lib).start()
        try:
            if w.wait("status", lambda pl: pl == b"online", 30) is None:
                return None
            tele = None
            for _ in range(3):
                pl = w.wait("tele", lambda pl: True, 10 + 2 * TELE_S)
                if pl is None:
                    return None
                tele = json.loads(pl)
            ctr = tele["ctr"]
            if not p.running() or "task_errors" in ctr or "role_start_failed" in ctr:
                return None
            return tele["heap_free"]
        finally:
            p.kill()
            w.close()


def lowest(cfg: dict, broker: Mosquitto, lib: Path, work: Path) -> int | None:
    """Smallest heap on HEAPS_K that runs the device (bisection: more heap never hurts)."""
    lo, hi = 0, len(HEAPS_K) - 1
    if trial(cfg, HEAPS_K[hi], broker, lib, work) is None:
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        ok = trial(cfg, HEAPS_K[mid], broker, lib, work) is not None
        step(f"    {HEAPS_K[mid]}K: {'online' if ok else 'no'}")
        if ok:
            hi = mid
        else:
            lo = mid + 1
    return HEAPS_K[lo]


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="heap-bench-") as td:
        work = Path(td)
        lib = work / "lib"
        step("compiling the firmware (x64 .mpy)")
        build.build_tree("x64", lib, root=fw.FIRMWARE_LIB)
        costs = import_costs(lib, work)
        for m, n in costs.items():
            step(f"  import {m}: {n} B")
        rows = []
        with Mosquitto(work / "mq") as broker:
            for role, cfg in configs(broker.url, work).items():
                step(f"{role}: steady state at {BIG_HEAP_K}K")
                free = trial(cfg, BIG_HEAP_K, broker, lib, work)
                used = None if free is None else BIG_HEAP_K * 1024 - free
                step(f"{role}: heap in use {used} B; searching the lowest heap")
                low = lowest(cfg, broker, lib, work)
                step(f"{role}: comes online from {low}K")
                rows.append((role, used, low))
    total = sum(v for k, v in costs.items() if k != "roadedge.core.boot")
    body = ["Heap on the MicroPython unix port (64-bit: pointers and object headers are twice a 32-bit "
            "board's, so a board needs roughly half). Import cost = `gc.mem_alloc()` growth after "
            "`gc.collect()`, modules imported in this order.", "",
            "| module | import cost (B) |", "|---|---:|"]
    body += [f"| `{m}` | {n} |" for m, n in costs.items()]
    body += [f"| **platform total (without core.boot, dropped after boot)** | **{total}** |", "",
             f"Devices from the shipped sim board configs (telemetry every {TELE_S} s; heap in use = heap size - "
             f"`heap_free` of the third report at {BIG_HEAP_K}K; lowest heap = smallest `-X heapsize` on a 4K "
             "grid at which the device publishes `online` and three telemetry reports with no crashed task). "
             "A board's words are half this build's bytes: the last column is the lowest heap in MicroPython's "
             f"word-adjusted form, to compare with a {BOARD_K} KiB board (`-X heapsize={BOARD_K}wK`, what "
             "tests/test_device_runtime.py gives the base device):", "",
             "| device | steady-state heap in use (B) | lowest heap (64-bit bytes) | same as `-X heapsize=` |",
             "|---|---:|---:|---:|"]
    body += [f"| {r} | {u if u is not None else 'did not run'} | {f'{lo}K' if lo else 'none <= 256K'} | "
             f"{f'{lo // 2}wK' if lo else '-'} |" for r, u, lo in rows]
    write_section("heap", "\n".join(body))
    print("\n".join(body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
