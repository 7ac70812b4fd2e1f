"""Shared by every bench: write one bench's section of docs/benchmarks.md."""
from __future__ import annotations

import platform
import re
import time
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_section(name: str, body: str) -> None:
    """Replace (or append) the block between <!-- bench:name --> markers."""
    import fcntl

    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    stamp = time.strftime("%Y-%m-%d")
    block = f"{start}\n## {name}\n\n_Last run {stamp} on {machine()}; command: `python bench/{name}/run.py`_\n\n{body.strip()}\n{end}"
    # Benches may run at the same time: read-modify-write under an exclusive lock.
    with open(DOC.with_suffix(".lock"), "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        text = DOC.read_text() if DOC.exists() else "# Benchmarks\n\nEach section is rewritten by its bench.\n"
        pat = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
        text = pat.sub(lambda _m: block, text) if pat.search(text) else text.rstrip() + "\n\n" + block + "\n"
        DOC.write_text(text)
