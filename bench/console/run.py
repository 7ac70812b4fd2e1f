"""Console web server bench: one login's cost (Argon2id), 100 parallel logins (wall time, how many were
served or told to retry, resident memory added) and another user's snapshot latency meanwhile, against
`roadedge dispatch` as a process with curl as the client. Writes the "console" section of
docs/benchmarks.md.

    python bench/console/run.py
"""
from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE.parent))

from common import write_section  # noqa: E402
from host_tools.broker.mosquitto import Mosquitto, free_port, wait_port  # noqa: E402
from host_tools.dispatch.users import Users  # noqa: E402
from host_tools.dispatch.web import HASH_WORKERS, MAX_LOGIN_QUEUE  # noqa: E402

PARALLEL = 100
PASSWORD = "bench-pass-1234"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def curl(*args: str, timeout: float = 60) -> str:
    return subprocess.run(["curl", "-sS", "-m", str(timeout), *args], capture_output=True, text=True,
                          timeout=timeout + 30).stdout


def main() -> int:
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        users = Users(tmp / "users.json")
        users.add("watch", "viewer", PASSWORD)
        data = json.loads((tmp / "users.json").read_text())
        h = data["users"]["watch"]["hash"]
        data["users"].update({f"crew{i}": {"role": "viewer", "hash": h} for i in range(PARALLEL + 10)})
        (tmp / "users.json").write_text(json.dumps(data))
        with Mosquitto(tmp / "mq") as mq:
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            p = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "dispatch", "--broker", mq.url, "--http",
                                  f"127.0.0.1:{port}", "--db", str(tmp / "d.db"), "--keys", str(tmp / "none")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
            try:
                wait_port("127.0.0.1", port, 60)
                jar = str(tmp / "watch.jar")

                def login(user: str, jar_: str | None = None) -> float:
                    t = time.perf_counter()
                    curl(*(["-c", jar_] if jar_ else []), "-o", "/dev/null", "-H", "Content-Type: application/json",
                         "--data", json.dumps({"user": user, "password": PASSWORD}), f"{base}/api/login")
                    return time.perf_counter() - t

                login("watch", jar)

                def snapshot() -> float:
                    t = time.perf_counter()
                    curl("-b", jar, "-o", "/dev/null", f"{base}/api/snapshot")
                    return time.perf_counter() - t

                one = statistics.median(login(f"crew{PARALLEL + i}") for i in range(5))
                idle = statistics.median(snapshot() for _ in range(10))
                cfg = tmp / "storm.curl"
                cfg.write_text("next\n".join(
                    f'url = "{base}/api/login"\nheader = "Content-Type: application/json"\n'
                    f'data = "{{\\"user\\": \\"crew{i}\\", \\"password\\": \\"{PASSWORD}\\"}}"\n'
                    'output = "/dev/null"\nwrite-out = "%{http_code}\\n"\n' for i in range(PARALLEL)))
                base_rss = peak = rss_mib(p.pid)
                t0 = time.perf_counter()
                storm = subprocess.Popen(["curl", "-sS", "-Z", "--parallel-max", str(PARALLEL), "-m", "600", "-K",
                                          str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                during = []
                while storm.poll() is None:
                    during.append(snapshot())
                    peak = max(peak, rss_mib(p.pid))
                wall = time.perf_counter() - t0
                codes = (storm.stdout.read() if storm.stdout else "").split()
            finally:
                p.send_signal(signal.SIGTERM)
                p.wait(30)
    body = f"""`roadedge dispatch` as a process, curl as the client; Argon2id (64 MiB, 3 passes, 4 lanes) on {HASH_WORKERS} hashing worker(s), at most {MAX_LOGIN_QUEUE} logins waiting.

| | |
|---|---|
| one login (median of 5) | {one * 1000:.0f} ms |
| {PARALLEL} parallel logins: all answered in | {wall:.1f} s ({codes.count('200')} logged in, {codes.count('503')} told to retry, {len(codes) - codes.count('200') - codes.count('503')} other) |
| resident memory added meanwhile | {peak - base_rss:.0f} MiB (peak {peak:.0f} MiB) |
| another user's snapshot, idle (median of 10) | {idle * 1000:.0f} ms |
| the same during the {PARALLEL} logins (median / worst of {len(during)}) | {statistics.median(during) * 1000 if during else 0:.0f} ms / {max(during, default=0) * 1000:.0f} ms |

The machine is shared with other jobs: figures vary between runs."""
    write_section("console", body)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
