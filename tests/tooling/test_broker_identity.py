"""The project's Mosquitto config probed with clients nobody here wrote (mosquitto_pub/sub, MQTT 3.1.1
and 5): an account cannot displace another by using its client id, and a subscriber never gets a
retained message outside its filter and ACL (the leak amqtt had once anyone subscribed to re/#)."""
from __future__ import annotations

import queue
import shutil
import subprocess
import threading

import pytest

pytestmark = pytest.mark.skipif(not shutil.which("mosquitto_sub"), reason="mosquitto-clients not installed")

VERSIONS = ["311", "5"]


class Sub:
    """mosquitto_sub as a child process; its output lines arrive on a queue."""

    def __init__(self, port: int, user: str, password: str, topics: list[str], version: str,
                 client_id: str | None = None, extra: tuple[str, ...] = ()) -> None:
        cmd = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-u", user, "-P", password, "-V", version,
               "-q", "1", "-v", *extra]
        if client_id:
            cmd += ["-i", client_id]
        for t in topics:
            cmd += ["-t", t]
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.p.stdout
        for line in self.p.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next(self, timeout: float = 20) -> str | None:
        return self.lines.get(timeout=timeout)

    def close(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
        self.p.wait(10)


def pub(port: int, user: str, password: str, topic: str, message: str, version: str, retain: bool = False,
        client_id: str | None = None) -> subprocess.CompletedProcess:
    cmd = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-u", user, "-P", password, "-V", version,
           "-q", "1", "-t", topic, "-m", message]
    if retain:
        cmd.append("-r")
    if client_id:
        cmd += ["-i", client_id]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


def wait_subscribed(broker, port, tech_pw: str, sub: Sub, topic: str, version: str) -> None:
    """Publish probes until the subscriber shows one: it is connected and subscribed (no sleeping)."""
    for n in range(200):
        pub(port, "technician", tech_pw, topic, f"probe-{n}", version)
        try:
            line = sub.next(timeout=0.5)
        except queue.Empty:
            continue
        assert line is not None, "subscriber exited"
        assert line.startswith(topic), line
        return
    raise AssertionError("subscriber never received a probe")


@pytest.mark.parametrize("version", VERSIONS)
def test_client_id_of_another_account_cannot_displace_it(secure_broker, provisioned, version):
    port, pw = secure_broker.port, provisioned.password
    victim = Sub(port, "tool-dev-b", pw("tool-dev-b"), ["re/tool-dev-b/cmd/#"], version, client_id="tool-dev-b")
    try:
        wait_subscribed(secure_broker, port, pw("technician"), victim, "re/tool-dev-b/cmd/probe", version)
        # the attacker, a valid device account, connects with the victim's id (and the dispatcher's)
        for stolen in ("tool-dev-b", "dispatcher"):
            r = pub(port, "tool-dev-a", pw("tool-dev-a"), "re/tool-dev-a/state", "{}", version, client_id=stolen)
            assert r.returncode == 0, r.stderr
        # the victim is still connected on its first connection: it gets the next command, never exited
        assert pub(port, "technician", pw("technician"), "re/tool-dev-b/cmd/ping", "after", version).returncode == 0
        assert victim.next() == "re/tool-dev-b/cmd/ping after"
        assert victim.p.poll() is None
        log = secure_broker.log_path.read_text()
        assert "already connected, closing old connection" not in log, log[-2000:]
    finally:
        victim.close()


@pytest.mark.parametrize("version", VERSIONS)
def test_retained_messages_stay_inside_filter_and_acl(secure_broker, provisioned, version):
    port, pw = secure_broker.port, provisioned.password
    # retained state of both devices and a retained command for each
    for dev in ("tool-dev-a", "tool-dev-b"):
        assert pub(port, dev, pw(dev), f"re/{dev}/state", f"state-{dev}", version, retain=True).returncode == 0
        assert pub(port, "technician", pw("technician"), f"re/{dev}/cmd/hold", f"cmd-{dev}", version,
                   retain=True).returncode == 0
    # someone with read-all subscribes to re/# first (what made amqtt leak)
    watcher = Sub(port, "technician", pw("technician"), ["re/#"], version)
    try:
        assert watcher.next() is not None
        # device A asks for its own commands and, beyond its ACL, for everything
        a = Sub(port, "tool-dev-a", pw("tool-dev-a"), ["re/tool-dev-a/cmd/#", "re/#"], version,
                extra=("--retained-only",))
        try:
            got = [a.next()]  # its own retained command: subscribed
            assert got[0] is not None
            # a live (not retained) message ends mosquitto_sub --retained-only: every retained copy came before
            assert pub(port, "technician", pw("technician"), "re/tool-dev-a/cmd/end", "live", version).returncode == 0
            while (line := a.next()) is not None:
                got.append(line)
            assert a.p.wait(10) == 0
        finally:
            a.close()
    finally:
        watcher.close()
    # only its own command (once per matching filter at most), nothing of B's, no device states
    assert all(line.startswith("re/tool-dev-a/cmd/") for line in got), got


def test_roadedge_broker_runs_mosquitto_with_the_provisioned_accounts(tmp_path):
    import json
    import os
    import signal
    import sys

    sd = tmp_path / "secrets"
    p = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "broker", "dev-x", "--listen", "127.0.0.1:0",
                          "--secrets", str(sd)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        assert p.stdout
        line = p.stdout.readline()
        assert "roadedge broker (mosquitto) listening on mqtt://127.0.0.1:" in line, line
        port = int(line.split("mqtt://127.0.0.1:")[1].split()[0])
        dev_pw = json.loads((sd / "devices.json").read_text())["dev-x"]["mqtt_password"]
        assert pub(port, "dev-x", dev_pw, "re/dev-x/state", "{}", "5").returncode == 0
        denied = pub(port, "dev-x", dev_pw, "re/other/state", "{}", "5")
        assert denied.returncode != 0 or "135" in denied.stderr or "not authori" in denied.stderr.lower()
        assert pub(port, "dev-x", "wrong", "re/dev-x/state", "{}", "5").returncode != 0
    finally:
        p.send_signal(signal.SIGINT)
        assert p.wait(20) == 0
