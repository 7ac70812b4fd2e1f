"""Run a real Mosquitto as a child process: tests, benches and the demo use this.

The config is written from the repo's template pieces; readiness is waited on
by connecting to the port (with a deadline), never by sleeping.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mosquitto_binary() -> str:
    for c in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if c and os.path.exists(c):
            return c
    raise FileNotFoundError("mosquitto not installed: run `make setup` (apt-get install mosquitto)")


def wait_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s") from None
            time.sleep(0.05)


class Mosquitto:
    """A Mosquitto broker on 127.0.0.1.

    extra_conf: more lines for mosquitto.conf (the accounts plugin of
    host_tools.broker.conf.auth_lines, TLS listener ...). users: {name: password}
    written to a password file with mosquitto_passwd. With neither a plugin nor
    a password file the plain listener allows anonymous clients (test
    convenience only; shipped configs never do).
    """

    def __init__(self, workdir: Path, port: int | None = None, extra_conf: str = "",
                 allow_anonymous: bool | None = None, max_queued: int = 100000,
                 users: dict[str, str] | None = None, host: str = "127.0.0.1",
                 persist_dir: Path | None = None) -> None:
        self.host = host
        self.persist_dir = persist_dir
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        if users:
            pw = self.workdir / "passwd"
            pw.write_text("")
            for name, secret in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(pw), name, secret], check=True, capture_output=True)
            extra_conf = f"password_file {pw}\n" + extra_conf
        self.extra_conf = extra_conf
        if allow_anonymous is None:
            allow_anonymous = "password_file" not in extra_conf and "plugin " not in extra_conf
        self.allow_anonymous = allow_anonymous
        self.max_queued = max_queued
        self.proc: subprocess.Popen | None = None
        self.conf_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def write_conf(self) -> None:
        lines = [
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            # Debian default 1000 drops QoS 1 bursts to slow subscribers (domain.md).
            f"max_queued_messages {self.max_queued}",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if self.persist_dir is not None:
            self.persist_dir.mkdir(parents=True, exist_ok=True)
            # written every minute and at a clean stop (SIGTERM), as in the shipped roadedge.conf
            lines += ["persistence true", f"persistence_location {self.persist_dir}/", "autosave_interval 60"]
        else:
            lines.append("persistence false")
        if os.geteuid() == 0:
            lines.append("user root")  # mosquitto 2.0 refuses to drop to 'mosquitto' here
        self.conf_path.write_text("\n".join(lines) + "\n" + self.extra_conf + "\n")

    def start(self, timeout: float = 10.0) -> Mosquitto:
        self.write_conf()
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([mosquitto_binary(), "-c", str(self.conf_path)],
                                     stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_port("127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host, self.port, timeout)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"mosquitto did not start: {self.log_path.read_text()[-2000:]}") from None
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """Abrupt stop (SIGKILL): no clean disconnects, as a crash or power loss."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
