"""Will this role boot on this board? The heap fit check behind `roadedge validate` and `flash`.

need (32-bit KiB) = the lowest heap a role's device comes online at on the 64-bit unix port
(bench/heap writes heap_need.json, per deployment) x FACTOR_32, plus TLS_EXTRA_K over mqtts://.
budget = the board's free heap at boot (BUDGET_K, measured: a range where builds differ) or the
config's "heap_kib". Over the top of the range the role will not boot: an error (a warning with
--force) that names the ways out. Inside the range it may not: a warning that says to measure.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

NEED_PATH = Path(__file__).with_name("heap_need.json")
# 32-bit objects take ~0.70x the bytes the 64-bit unix port reports (native 32-bit MicroPython 1.28
# and the rp2 port in an RP2040 emulator, beside the unix port, same firmware).
FACTOR_32 = 0.70
# mbedtls handshake buffers on the heap: the base device needs 84K over mqtt://, 104K over mqtts://
# (native 32-bit build).
TLS_EXTRA_K = 20
# Free heap at boot (gc.mem_free() right after boot, KiB), measured: RPI_PICO_W 1.28 ~203 KB in an
# RP2040 emulator; an ESP32 without PSRAM has ~100-120 KiB depending on build and IDF (the low end:
# the check must hold on every board of the type). The sim board runs with whatever -X heapsize it gets.
BUDGET_K = {"pico_w": (198, 198), "esp32": (100, 120)}
BUDGET_NOTE = {"pico_w": "a Pico W (RPI_PICO_W, measured)",
               "esp32": "an ESP32 without PSRAM (measured builds differ)"}
DEPLOYS = ("romfs", "mpy")
WHAT = {"romfs": "as a ROMFS image (bytecode executed in place from flash)",
        "mpy": "as .mpy files (bytecode loaded into the heap)"}

_needs: dict | None = None


def needs_64() -> dict:
    global _needs
    if _needs is None:
        _needs = json.loads(NEED_PATH.read_text())
    return _needs


def need_k(role: str, deploy: str, tls: bool) -> int | None:
    """32-bit KiB the role needs to come online, or None when not measured."""
    n64 = needs_64().get(deploy, {}).get(role)
    if n64 is None:
        return None
    return math.ceil(n64 * FACTOR_32) + (TLS_EXTRA_K if tls else 0)


def budget_range(cfg: dict) -> tuple[int, int] | None:
    """(low, high) KiB free at boot: a config's heap_kib (measured on that board), else the board type's."""
    if cfg.get("heap_kib"):
        return cfg["heap_kib"], cfg["heap_kib"]
    return BUDGET_K.get(cfg.get("board", ""))


def budget_k(cfg: dict) -> int | None:
    """The free heap every board of this type has (the low end)."""
    r = budget_range(cfg)
    return None if r is None else r[0]


@dataclass
class Fit:
    deploy: str
    need_k: int | None
    budget: tuple[int, int] | None

    @property
    def budget_k(self) -> int | None:
        return None if self.budget is None else self.budget[0]

    @property
    def ok(self) -> bool:
        """Fits every board of the type."""
        return self.need_k is None or self.budget is None or self.need_k <= self.budget[0]

    @property
    def impossible(self) -> bool:
        """Fits no board of the type."""
        return self.need_k is not None and self.budget is not None and self.need_k > self.budget[1]


def fit(cfg: dict, deploy: str) -> Fit:
    tls = str((cfg.get("broker") or {}).get("url", "")).startswith("mqtts://")
    return Fit(deploy, need_k(cfg["role"], deploy, tls), budget_range(cfg))


def describe(cfg: dict, f: Fit) -> str:
    tls = str((cfg.get("broker") or {}).get("url", "")).startswith("mqtts://")
    board = "this board (heap_kib)" if cfg.get("heap_kib") else BUDGET_NOTE.get(cfg["board"], cfg["board"])
    n64 = needs_64()[f.deploy][cfg["role"]]
    lo, hi = f.budget or (0, 0)
    has = f"~{lo} KiB" if lo == hi else f"{lo}-{hi} KiB"
    return (f"role {cfg['role']} {WHAT[f.deploy]} needs ~{f.need_k} KiB of heap (bench/heap: {n64}K on the 64-bit "
            f"unix port x {FACTOR_32}{f' + {TLS_EXTRA_K}K for TLS' if tls else ''}); {board} has {has} free at boot")


def ways_out(cfg: dict, over: Fit) -> str:
    out = []
    rom = fit(cfg, "romfs")
    if over.deploy == "mpy" and not rom.impossible:
        out.append(f'deploy it as ROMFS ("deploy": "romfs" or "auto" on MicroPython 1.25+ with a ROMFS '
                   f'partition: ~{rom.need_k} KiB)')
    if cfg["board"] == "esp32":
        out.append('an ESP32 with PSRAM (set "heap_kib" to its gc.mem_free() at boot)')
    elif cfg["board"] == "pico_w" and not cfg.get("heap_kib"):
        out.append("a board with more free heap")
    if str((cfg.get("broker") or {}).get("url", "")).startswith("mqtts://"):
        out.append(f"fewer features: mqtt:// on a trusted network saves the ~{TLS_EXTRA_K} KiB of TLS")
    else:
        out.append("fewer features")
    return "; ".join(out)


def check(cfg: dict, add, warn, force: bool = False) -> None:
    """Add the fit problem for cfg's "deploy" (default auto) to add/warn (Problem-style callbacks)."""
    deploy = cfg.get("deploy", "auto")
    if budget_range(cfg) is None:
        return  # the sim board: the test or `sim boot --heap` sets the heap
    fits = {d: fit(cfg, d) for d in DEPLOYS}
    if deploy == "auto":
        if fits["mpy"].ok:
            return
        if fits["romfs"].impossible:
            deploy = "mpy"  # the error names ROMFS's need too
        else:
            warn("deploy", f"{describe(cfg, fits['mpy'])}: it fits only {WHAT['romfs']} "
                           f"(~{fits['romfs'].need_k} KiB); `roadedge flash` refuses a board without a ROMFS "
                           f"partition")
            deploy = "romfs"
    f = fits[deploy]
    if f.ok:
        return
    if not f.impossible:
        warn("deploy", f"{describe(cfg, f)}: it boots only on the better builds: measure gc.mem_free() at boot "
                       f"on this board and set \"heap_kib\", or: {ways_out(cfg, f)}")
        return
    msg = f"{describe(cfg, f)}: it will not boot. Ways out: {ways_out(cfg, f)}"
    (warn if force else add)("deploy", msg + (" (--force: going ahead anyway)" if force else ""))
