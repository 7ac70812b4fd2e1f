"""Helpers shared by the tooling tests (plain functions; fixtures are in conftest.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from host_tools import fw

HERE = Path(__file__).resolve().parent


def base_config(path: Path, dev: str, broker_url: str, hw_addr: str) -> Path:
    cfg = json.loads((HERE / "configs" / "sim-base.json").read_text())
    cfg.update(id=dev, sim={"hw": hw_addr})
    cfg["broker"].update(url=broker_url, user=dev)
    path.write_text(json.dumps(cfg, indent=2))
    return path


def roadedge(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run the real `roadedge` command line (as a technician would)."""
    return subprocess.run([sys.executable, "-m", "host_tools.cli", *args], cwd=fw.REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "COLUMNS": "200"})
