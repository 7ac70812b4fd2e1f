"""Bench: how long `roadedge flash` takes, full and unchanged, to dir: and over serial (pty REPL).

Runs the flash in-process (no interpreter start-up), without waiting for the broker:
- full: a blank device (every file copied)
- unchanged: the same image again (hash compare only, 0 files copied)
- config change: one parameter changed (config.json only)
Serial = mpremote's raw REPL to the MicroPython unix port on a socat pty (no UART baud limit:
a real USB CDC board at 115200+ is slower; see the KiB column to estimate).
Usage: python bench/flash/run.py [--repeat N]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.common import write_section  # noqa: E402
from host_tools import fw  # noqa: E402
from host_tools.config.secrets import Secrets  # noqa: E402
from host_tools.flash.flasher import FlashOptions, flash  # noqa: E402
from host_tools.provision.core import provision  # noqa: E402

CONFIG = fw.REPO / "tests" / "tooling" / "configs" / "sim-base.json"
FIRMWARE = fw.FIRMWARE  # replaced by a snapshot in main(): edits in the checkout must not skew a run


def pty_repl(folder: Path, link: Path) -> subprocess.Popen:
    p = subprocess.Popen(["socat", f"PTY,link={link},raw,echo=0",
                          f"EXEC:{fw.micropython_binary()} -X heapsize=160K,pty,raw,echo=0"],
                         cwd=folder, env=dict(os.environ, MICROPYPATH="lib:.frozen"), start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not link.exists():
        if time.monotonic() > deadline or p.poll() is not None:
            raise RuntimeError("socat did not create the pty")
        time.sleep(0.02)
    return p


def one(cfg: Path, port: str, secrets: Path) -> tuple[float, int, int, float, float]:
    t0 = time.perf_counter()
    r = flash(str(cfg), port, FlashOptions(secrets=str(secrets), wait_online=False, firmware=str(FIRMWARE)))
    dt = time.perf_counter() - t0
    if not r.ok:
        raise RuntimeError(f"flash failed: {r.reason} {[str(p) for p in r.problems]}")
    t = r.timings
    return dt, r.copied, r.bytes_copied, t.get("build", 0.0), t.get("compare", 0.0) + t.get("copy", 0.0)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rows = []
    from host_tools.flash.image import firmware_files

    cold = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        fw_files, _arch = firmware_files("pico_w", cache=None)
        cold.append(time.perf_counter() - t0)
    cold_s = statistics.median(cold)
    print(f"cold compile (no cache): {cold_s:.2f} s for {len(fw_files)} files (armv6m)")
    global FIRMWARE
    with tempfile.TemporaryDirectory(prefix="bench-flash-") as td:
        td = Path(td)
        FIRMWARE = td / "firmware"
        shutil.copytree(fw.FIRMWARE, FIRMWARE, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        s = Secrets.load(td / "secrets")
        provision(s, ["tool-dev-a"], out=td / "gen", tls_hosts=None)
        base = json.loads(CONFIG.read_text())
        cfg, cfg2 = td / "a.json", td / "a2.json"
        cfg.write_text(json.dumps(base))
        base["broker"]["keepalive"] = 20
        cfg2.write_text(json.dumps(base))
        for target in ("dir", "pty"):
            results: dict[str, list[tuple[float, int, int, float, float]]] = {"full": [], "unchanged": [], "config change": []}
            for i in range(args.repeat):
                folder = td / f"{target}-{i}"
                folder.mkdir()
                proc = None
                if target == "dir":
                    port = f"dir:{folder}"
                else:
                    link = td / f"tty{i}"
                    proc = pty_repl(folder, link)
                    port = str(link)
                try:
                    results["full"].append(one(cfg, port, td / "secrets"))
                    results["unchanged"].append(one(cfg, port, td / "secrets"))
                    results["config change"].append(one(cfg2, port, td / "secrets"))
                finally:
                    if proc is not None:
                        os.killpg(proc.pid, signal.SIGTERM)
                        proc.wait(10)
                shutil.rmtree(folder, ignore_errors=True)
            for kind, rs in results.items():
                med = statistics.median(r[0] for r in rs)
                build_s = statistics.median(r[3] for r in rs)
                xfer_s = statistics.median(r[4] for r in rs)
                rows.append((target, kind, med, build_s, xfer_s, rs[0][1], rs[0][2] / 1024))
                print(f"{target:4} {kind:14} median {med:6.2f} s (build {build_s:5.2f} s, compare+copy+verify "
                      f"{xfer_s:5.2f} s)  {rs[0][1]:3d} files  {rs[0][2] / 1024:6.1f} KiB")
    body = ["Each run: validate, build (mpy-cross into build/flash, reused while the sources are unchanged;",
            "the first full flash of a run compiles), compare with the device's manifest, copy what differs,",
            "SHA-256 verify the copied files on the device. `pty` = mpremote raw REPL to the MicroPython",
            "unix port through socat (no UART baud limit: a board at 115200 baud adds ~10 s per 100 KiB).",
            f"Median of {args.repeat} runs, in-process (no interpreter start-up), no broker wait.", "",
            "| target | flash | total s | build s | compare+copy+verify s | files copied | KiB copied |",
            "|---|---|---|---|---|---|---|"]
    for target, kind, med, build_s, xfer_s, files, kib in rows:
        body.append(f"| {target} | {kind} | {med:.2f} | {build_s:.2f} | {xfer_s:.2f} | {files} | {kib:.1f} |")
    body += ["", f"Cold compile of the whole firmware (no cache, {len(fw_files)} files, armv6m): {cold_s:.2f} s "
                 "(median); a first flash after a firmware change adds this once."]
    write_section("flash", "\n".join(body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
