"""Runs every firmware unit-test module (tests/firmware/fw_*.py) under both the
real MicroPython unix port and CPython: the firmware must behave the same."""
from __future__ import annotations

from pathlib import Path

import pytest

from host_tools import fw

HERE = Path(__file__).parent / "firmware"
MODULES = sorted(p.stem for p in HERE.glob("fw_*.py"))


@pytest.mark.parametrize("runtime", fw.RUNTIMES)
@pytest.mark.parametrize("module", MODULES)
def test_firmware_module(module: str, runtime: str, tmp_path: Path) -> None:
    res = fw.run(runtime, HERE / "run.py", [module], heap="256K", env={"FWTEST_TMP": str(tmp_path)}, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 0, f"{module} under {runtime} failed:\n{out[-6000:]}"
    assert " passed, 0 failed" in out
