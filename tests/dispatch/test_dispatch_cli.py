"""`roadedge dispatch` as a process: accounts from the command line, console up, clean stop."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request

from host_tools.broker.mosquitto import free_port, wait_port


def roadedge(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "host_tools.cli", *args], capture_output=True, text=True,
                          timeout=60, **kw)


def test_add_user_then_serve_and_stop(mosquitto, tmp_path, deployment):
    db = tmp_path / "d.db"
    r = roadedge("dispatch", "--db", str(db), "--add-user", "chief", "--role", "supervisor", "--password-stdin",
                 input="a-long-password\n")
    assert r.returncode == 0, r.stderr
    stored = json.loads((tmp_path / "users.json").read_text())["users"]["chief"]
    assert stored["role"] == "supervisor" and "a-long-password" not in json.dumps(stored)
    assert roadedge("dispatch", "--db", str(db), "--add-user", "x", "--role", "viewer", "--password-stdin",
                    input="short\n").returncode == 2

    port = free_port()
    p = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "dispatch", "--broker", mosquitto.url, "--http",
                          f"127.0.0.1:{port}", "--db", str(db), "--deployment", str(deployment)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_port("127.0.0.1", port, 30)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/login", method="POST",
                                     data=json.dumps({"user": "chief", "password": "a-long-password"}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert json.loads(resp.read())["role"] == "supervisor"
            assert "HttpOnly" in resp.headers["Set-Cookie"] and "SameSite=Strict" in resp.headers["Set-Cookie"]
    finally:
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert "console at http://127.0.0.1" in err
