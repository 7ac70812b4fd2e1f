"""Firmware RAM bench under the MicroPython unix port (64-bit, x64 .mpy as
`host_tools.build.build_tree('x64', ...)` writes them): what importing each
platform module costs on the heap, as .mpy files and from a ROMFS image, and for a base device and
each role device (the shipped sim board configs: sim-base, sim-sign, sim-beacon, sim-tracker) the
steady-state heap in use and the lowest `-X heapsize` at which it comes online (retained `online`, then three
telemetry reports with no crashed task) against a Mosquitto it starts itself: as .mpy files, and as
the role's ROMFS image (`roadedge flash` with "deploy": "romfs") mounted with vfs.VfsRom by
sim/romfs_boot.py (the image buffer is on the heap here, in flash on a board: its size is subtracted).
Each 64-bit figure is converted to a 32-bit board's need with the measured factor
(host_tools.config.fit.FACTOR_32). Writes the "heap" section of docs/benchmarks.md and the
per-role needs the fit check reads (host_tools/config/heap_need.json).

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
from host_tools.config import fit  # noqa: E402
from host_tools.flash import image as img  # noqa: E402
from host_tools.broker.mosquitto import Mosquitto  # noqa: E402
from sim.boot import ROMFS_BOOT, load_config  # noqa: E402
from sim.device_process import DeviceProcess, make_device_dir  # noqa: E402
from sim.hw import HardwareServerThread  # noqa: E402

# In import order, so each row is what that module adds on top of the ones above.
MODULES = ("roadedge.core.compat", "roadedge.core.seq", "roadedge.core.state", "roadedge.core.log",
           "roadedge.core.auth", "roadedge.core.clock", "roadedge.core.config", "roadedge.mqtt.packet",
           "roadedge.mqtt.client", "roadedge.hal.sim", "roadedge.core.app", "roadedge.core.boot")
PROBE = """import gc, sys
if sys.argv[1] != '-':
    import vfs
    f = open(sys.argv[1], 'rb'); rom = f.read(); f.close()
    vfs.mount(vfs.VfsRom(rom), '/rom'); sys.path[:0] = ['/rom/lib']
for m in sys.argv[2:]:
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


def import_costs(lib: Path, work: Path, rom: Path | None = None, modules=MODULES) -> dict[str, int]:
    """Heap each module's import adds: from lib (.mpy files), or from the ROMFS image rom."""
    probe = work / "probe.py"
    probe.write_text(PROBE)
    r = fw.run("micropython", probe, [str(rom) if rom else "-", *modules], heap="512K",
               lib=lib if rom is None else work, timeout=60)
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


def role_romfs(role: str) -> bytes:
    """The role's ROMFS image as `roadedge flash` builds it for a sim board (x64 .mpy)."""
    files, _arch = img.firmware_files("sim", role=role)
    return img.romfs_image({p: b for p, b in files.items() if p.startswith("lib/")})


def trial(cfg: dict, heap_k: int | str, broker: Mosquitto, lib: Path, work: Path,
          rom: bytes | None = None) -> int | None:
    """heap_free of the third telemetry report, or None when the device does
    not come online and stay up at this heap. rom: boot from this ROMFS image instead of lib."""
    dev = cfg["id"]
    w = Watch(broker.port, dev)
    with HardwareServerThread() as hws:
        c = dict(cfg, sim={"hw": hws.addr})
        folder = make_device_dir(work / "dev" / f"{dev}-{heap_k}-{'rom' if rom else 'mpy'}", c, fresh=True)
        if rom is not None:
            (folder / "romfs.img").write_bytes(rom)
            (folder / "main.py").write_bytes(fw.MAIN.read_bytes())
        p = DeviceProcess(folder, "micropython", heap=f"{heap_k}K", lib=lib if rom is None else folder,
                          script=ROMFS_BOOT if rom is not None else None).start()
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


def lowest(cfg: dict, broker: Mosquitto, lib: Path, work: Path, rom: bytes | None = None) -> int | None:
    """Smallest heap on HEAPS_K that runs the device (bisection: more heap never hurts)."""
    lo, hi = 0, len(HEAPS_K) - 1
    if trial(cfg, HEAPS_K[hi], broker, lib, work, rom) is None:
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        ok = trial(cfg, HEAPS_K[mid], broker, lib, work, rom) is not None
        step(f"    {HEAPS_K[mid]}K: {'online' if ok else 'no'}")
        if ok:
            hi = mid
        else:
            lo = mid + 1
    return HEAPS_K[lo]


def need(low_k: int | None, minus_b: int = 0) -> str:
    return "-" if low_k is None else f"{-(-(low_k * 1024 - minus_b) * 7 // 10 // 1024)}K"


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="heap-bench-") as td:
        work = Path(td)
        lib = work / "lib"
        step("compiling the firmware (x64 .mpy)")
        build.build_tree("x64", lib, root=fw.FIRMWARE_LIB)
        costs = import_costs(lib, work)
        whole = work / "whole.romfs"
        whole.write_bytes(img.romfs_image({f"lib/{p.relative_to(lib).as_posix()}": p.read_bytes()
                                           for p in sorted(lib.rglob("*.mpy"))}))
        rom_costs = import_costs(lib, work, whole)
        for role in ROLES[1:]:  # each role's modules on top of the platform (one process each)
            m = f"roadedge.{role}.app"
            costs[m] = import_costs(lib, work, None, MODULES + (m,))[m]
            rom_costs[m] = import_costs(lib, work, whole, MODULES + (m,))[m]
        for m, n in costs.items():
            step(f"  import {m}: {n} B (.mpy), {rom_costs[m]} B (ROMFS)")
        rows = []
        with Mosquitto(work / "mq") as broker:
            for role, cfg in configs(broker.url, work).items():
                step(f"{role}: steady state at {BIG_HEAP_K}K")
                free = trial(cfg, BIG_HEAP_K, broker, lib, work)
                used = None if free is None else BIG_HEAP_K * 1024 - free
                step(f"{role}: heap in use {used} B; searching the lowest heap (.mpy)")
                low = lowest(cfg, broker, lib, work)
                rom = role_romfs(role)
                step(f"{role}: comes online from {low}K (.mpy); searching the lowest heap (ROMFS, {len(rom)} B)")
                low_rom = lowest(cfg, broker, lib, work, rom)
                step(f"{role}: comes online from {low_rom}K (ROMFS, image included)")
                rows.append((role, used, low, low_rom, len(rom)))
    # the fit check's figures: 64-bit KiB; ROMFS without the image buffer (in flash on a board)
    needs = json.loads(fit.NEED_PATH.read_text())
    needs["mpy"] = {r: lo for r, _u, lo, _lr, _n in rows if lo}
    needs["romfs"] = {r: -(-(lr * 1024 - n) // 1024) for r, _u, _lo, lr, n in rows if lr}
    fit.NEED_PATH.write_text(json.dumps(needs, indent=2) + "\n")
    platform = [k for k in MODULES if k != "roadedge.core.boot"]
    total = sum(costs[k] for k in platform)
    rom_total = sum(rom_costs[k] for k in platform)
    f32 = fit.FACTOR_32
    body = [f"Heap on the MicroPython unix port (64-bit: pointers and object headers are twice a 32-bit board's; "
            f"measured on a native 32-bit build and the rp2 port, a board needs about {f32}x these bytes, "
            "`host_tools.config.fit.FACTOR_32`). Import cost = `gc.mem_alloc()` growth after `gc.collect()`, "
            "modules imported in this order, from .mpy files (bytecode loaded into the heap) and from a ROMFS "
            "image mounted with `vfs.VfsRom` (bytecode and constants executed in place: what stays is the "
            "module's objects). A role's row is its app with everything it imports, on top of the platform.", "",
            "| module | .mpy import cost (B) | ROMFS import cost (B) |", "|---|---:|---:|"]
    body += [f"| `{m}` | {n} | {rom_costs[m]} |" for m, n in costs.items() if m in MODULES]
    body += [f"| **platform total (without core.boot, dropped after boot)** | **{total}** | **{rom_total}** |"]
    body += [f"| + `{m}` (the role) | {n} | {rom_costs[m]} |" for m, n in costs.items() if m not in MODULES]
    body += ["",
             f"Devices from the shipped sim board configs (telemetry every {TELE_S} s; heap in use = heap size - "
             f"`heap_free` of the third report at {BIG_HEAP_K}K, as .mpy; lowest heap = smallest `-X heapsize` on a "
             "4K grid at which the device publishes `online` and three telemetry reports with no crashed task). "
             "ROMFS: the role's image as `roadedge flash` builds it, whose buffer sits on this heap (in flash on a "
             f"board), so its size is taken off. 32-bit need = lowest heap x {f32}, over mqtt:// (TLS adds "
             f"~{fit.TLS_EXTRA_K}K, measured on the native 32-bit build); these are the figures "
             "`roadedge validate`/`flash` check against a board's budget (host_tools/config/heap_need.json):", "",
             "| device | heap in use, .mpy (B) | lowest heap, .mpy (64-bit) | 32-bit need, .mpy | "
             "ROMFS image (B) | lowest heap, ROMFS (64-bit, image excluded) | 32-bit need, ROMFS |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    body += [f"| {r} | {u if u is not None else 'did not run'} | {f'{lo}K' if lo else 'none <= 256K'} | {need(lo)} | "
             f"{n} | {f'{-(-(lr * 1024 - n) // 1024)}K' if lr else 'none <= 256K'} | {need(lr, n)} |"
             for r, u, lo, lr, n in rows]
    body += ["", "Board budgets (free heap at boot, `host_tools.config.fit.BUDGET_K`): Pico W ~203 KB (198 KiB, "
             "RPI_PICO_W 1.28 measured in an RP2040 emulator; RPI_PICO ~244 KB); ESP32 without PSRAM "
             "100-120 KiB (builds differ: a need over 120 KiB is refused, one between 100 and 120 KiB warned); a "
             "config's `heap_kib` states a board's own (an ESP32 with PSRAM)."]
    write_section("heap", "\n".join(body))
    print("\n".join(body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
