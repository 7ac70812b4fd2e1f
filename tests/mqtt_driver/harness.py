"""Host side of tests/mqtt_driver/driver.py: spawn it on a runtime and follow its
stdout. Fixtures `mpy_lib` and `devices` for tests that run the MQTT client."""
from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

from host_tools import build, fw

DRIVER = Path(__file__).parent / "driver.py"
HEAP = "96K"  # a small board's heap


class Device:
    """A driver process; its stdout lines are collected by a thread."""

    def __init__(self, runtime: str, cfg: dict, tmp: Path, name: str = "dev", lib: Path | None = None,
                 heap: str = HEAP) -> None:
        path = tmp / f"{name}.json"
        path.write_text(json.dumps(cfg))
        self.proc = fw.spawn(runtime, DRIVER, [str(path)], heap=heap, lib=lib if runtime == "micropython" else None,
                             stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.lines: list[str] = []
        self.heartbeats = 0
        self.cond = threading.Condition()
        self.t = threading.Thread(target=self._pump, daemon=True)
        self.t.start()

    def _pump(self) -> None:
        assert self.proc.stdout
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            with self.cond:
                if line.startswith("hb "):
                    self.heartbeats += 1
                else:
                    self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.lines.append("<eof>")
            self.cond.notify_all()

    def wait(self, pred, timeout: float = 20.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                r = pred()
                if r:
                    return r
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{what} not seen; device said:\n" + "\n".join(self.lines[-40:]))
                self.cond.wait(left)

    def wait_line(self, prefix: str, count: int = 1, timeout: float = 20.0) -> str:
        def pred():
            hits = [ln for ln in self.lines if ln.startswith(prefix)]
            return hits[count - 1] if len(hits) >= count else None

        return self.wait(pred, timeout, f"{count}x {prefix!r}")

    def last_stats(self) -> dict:
        with self.cond:
            for ln in reversed(self.lines):
                if ln.startswith("stats "):
                    return json.loads(ln[6:])
        return {}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.t.join(5)

    def assert_no_traceback(self) -> None:
        text = "\n".join(self.lines)
        assert "Traceback" not in text, text[-3000:]


@pytest.fixture(scope="module")
def mpy_lib(tmp_path_factory) -> Path:
    """The firmware compiled with mpy-cross, as a board runs it: compiling the
    source on the device itself would not fit the 96K heap."""
    dest = tmp_path_factory.mktemp("fw")
    build.build_tree("armv6m", dest)
    return dest / "lib"


@pytest.fixture
def devices(mpy_lib):
    made: list[Device] = []

    def make(*a, **kw) -> Device:
        kw.setdefault("lib", mpy_lib)
        d = Device(*a, **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        d.stop()


