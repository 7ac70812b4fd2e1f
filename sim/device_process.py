"""Device folders for simulated boards, and firmware processes running in them.

A device folder is what a board's flash holds: `config.json` (the merged board
config) and `data/` (state files, record stores). Tests, `roadedge sim` and the
world engine all build them here and run the firmware's `main.py` in them
through host_tools.fw (MicroPython unix port or CPython).
"""
from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import IO

from host_tools import fw


def device_config(cfg: dict, broker_url: str | None = None, hw_addr: str | None = None,
                  **overrides) -> dict:
    """A copy of cfg pointed at a broker and a hardware server (board "sim")."""
    c = json.loads(json.dumps(cfg))
    if broker_url:
        c.setdefault("broker", {})["url"] = broker_url
    if hw_addr:
        c["sim"] = {"hw": hw_addr}
    c.update(overrides)
    return c


def make_device_dir(root: str | Path, cfg: dict, fresh: bool = False) -> Path:
    """root/<id>/ with config.json and data/; returns the folder. Existing
    data/ is kept (a reboot keeps its flash) unless fresh."""
    d = Path(root) / cfg["id"]
    data = d / "data"
    if fresh and data.exists():
        for p in sorted(data.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
    data.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps(cfg, indent=1) + "\n")
    return d


class DeviceProcess:
    """One firmware process in its device folder; output goes to console.log there.
    heap: the MicroPython `-X heapsize` (default: a 96 KiB board's heap in this
    build's words; None = the unix port's own default)."""

    def __init__(self, folder: str | Path, runtime: str = "micropython", heap: str | None = "96wK",
                 lib: str | Path | None = None, env: dict[str, str] | None = None,
                 script: str | Path | None = None) -> None:
        self.folder = Path(folder)
        self.script = Path(script) if script else fw.MAIN
        self.runtime = runtime
        self.heap = heap
        self.lib = lib
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.log_path = self.folder / "console.log"
        self._log: IO[bytes] | None = None
        self.starts = 0

    @property
    def id(self) -> str:
        return self.folder.name

    def start(self) -> DeviceProcess:
        self._log = open(self.log_path, "ab")
        self.proc = fw.spawn(self.runtime, self.script, heap=self.heap, lib=self.lib, env=self.env,
                             cwd=self.folder, stdout=self._log, stderr=subprocess.STDOUT)
        self.starts += 1
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def kill(self) -> None:
        """kill -9: a power cut."""
        if self.running():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()
        self._close_log()

    def stop(self, timeout: float = 5.0) -> None:
        """A clean stop (the device says offline and disconnects), then SIGKILL
        after timeout. The unix port has no signal module: it gets SIGINT
        (KeyboardInterrupt), CPython SIGTERM."""
        if self.running():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGINT if self.runtime == "micropython" else signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log:
            self._log.close()
            self._log = None

    def console(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""


def compiled_lib(dest: str | Path, arch: str = "armv6m") -> Path:
    """The firmware library compiled to .mpy as a board gets it (bytecode
    .mpy load on the unix port too): devices run from it without compiling
    source in their own heap. Returns the folder for DeviceProcess(lib=...)."""
    from host_tools import build

    dest = Path(dest)
    build.build_tree(arch, dest, root=fw.FIRMWARE_LIB)
    return dest
