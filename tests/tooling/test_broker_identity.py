"""The project's Mosquitto config probed with clients nobody here wrote (mosquitto_pub/sub, MQTT 3.1.1
and 5): a CONNECT with another account's client id is refused (the victim stays connected, its will
does not fire, a down service's session keeps its queue), and a subscriber never gets a retained
message outside its filter and ACL (the leak amqtt had once anyone subscribed to re/#)."""
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
        cmd += ["-i", client_id or user]  # an account's own name is the one id the broker accepts for it
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
    cmd += ["-i", client_id or user]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


def wait_subscribed(port: int, sub: Sub, topic: str, version: str, user: str, password: str) -> None:
    """Publish probes (as user, under its own id) until the subscriber shows one: it is connected and
    subscribed (no sleeping)."""
    for n in range(200):
        pub(port, user, password, topic, f"probe-{n}", version)
        try:
            line = sub.next(timeout=0.5)
        except queue.Empty:
            continue
        assert line is not None, "subscriber exited"
        assert line.startswith(topic), line
        return
    raise AssertionError("subscriber never received a probe")


def lines_until(sub: Sub, marker: str) -> list[str]:
    """The subscriber's lines up to and including the one ending with marker."""
    got = []
    while not got or not got[-1].endswith(marker):
        line = sub.next()
        assert line is not None, f"subscriber exited before {marker!r}: {got}"
        got.append(line)
    return got


def refused_not_authorised(r: subprocess.CompletedProcess) -> bool:
    """mosquitto_pub's exit for a CONNACK "not authorised" (3.1.1 code 5, MQTT 5 reason 135)."""
    return r.returncode != 0 and "not authori" in (r.stdout + r.stderr).lower()


@pytest.mark.parametrize("version", VERSIONS)
def test_client_id_of_another_account_is_refused_and_the_victim_stays_connected(secure_broker, provisioned,
                                                                                version):
    port, pw = secure_broker.port, provisioned.password
    tech = ("technician", pw("technician"))
    # the victim, a device, with the will a device sets (docs/topics.md: status "offline"); a console
    # watches everything of it
    victim = Sub(port, "tool-dev-b", pw("tool-dev-b"), ["re/tool-dev-b/cmd/#"], version, client_id="tool-dev-b",
                 extra=("--will-topic", "re/tool-dev-b/status", "--will-payload", "offline", "--will-qos", "1"))
    watcher = Sub(port, "dispatcher", pw("dispatcher"), ["re/tool-dev-b/#"], version, client_id="dispatcher")
    try:
        wait_subscribed(port, victim, "re/tool-dev-b/cmd/probe", version, *tech)
        wait_subscribed(port, watcher, "re/tool-dev-b/cmd/probe", version, *tech)
        # the attacker, a valid device account, connects with the victim's id, the console's, another
        # service's, one nobody has: refused at CONNECT ("not authorised"), whatever the id
        for stolen in ("tool-dev-b", "dispatcher", "ingest-1", "controller", "someone-new"):
            r = pub(port, "tool-dev-a", pw("tool-dev-a"), "re/tool-dev-a/state", "{}", version, client_id=stolen)
            assert refused_not_authorised(r), (stolen, r.returncode, r.stdout, r.stderr)
        # under its own id it is served as ever
        assert pub(port, "tool-dev-a", pw("tool-dev-a"), "re/tool-dev-a/state", "{}", version).returncode == 0
        # the victim is still on its first connection: it gets the next command and never exited
        assert pub(port, *tech, "re/tool-dev-b/cmd/ping", "after", version).returncode == 0
        assert all(" probe-" in line for line in lines_until(victim, "re/tool-dev-b/cmd/ping after")[:-1])
        assert victim.p.poll() is None
        # its will never fired: nothing on its status topic up to a marker sent after all of the above
        assert pub(port, *tech, "re/tool-dev-b/cmd/end", "end", version).returncode == 0
        heard = lines_until(watcher, "re/tool-dev-b/cmd/end end")
        assert not [line for line in heard if line.startswith("re/tool-dev-b/status")], heard
        log = secure_broker.log_path.read_text()
        assert "already connected, closing old connection" not in log, log[-2000:]
    finally:
        victim.close()
        watcher.close()


def test_a_down_services_session_survives_an_account_connecting_with_its_id(secure_broker, provisioned):
    """The issue's dispatcher case: while the console is down, a device tries its id; nothing queued for
    the console's persistent session is lost."""
    port, pw = secure_broker.port, provisioned.password
    dev = ("tool-dev-a", pw("tool-dev-a"))
    n = 200
    # the console's persistent session (clean session off), then it goes away
    first = Sub(port, "dispatcher", pw("dispatcher"), ["re/tool-dev-a/event"], "311", client_id="dispatcher",
                extra=("-c",))
    wait_subscribed(port, first, "re/tool-dev-a/event", "311", *dev)
    first.close()
    for i in range(n):  # queued for the absent console
        assert pub(port, *dev, "re/tool-dev-a/event", f"m{i}", "311").returncode == 0
    for version in VERSIONS:
        r = pub(port, *dev, "re/tool-dev-a/state", "{}", version, client_id="dispatcher")
        assert refused_not_authorised(r), r.stderr
    back = Sub(port, "dispatcher", pw("dispatcher"), ["re/tool-dev-a/event"], "311", client_id="dispatcher",
               extra=("-c",))
    try:
        got = [line.split(" ", 1)[1] for line in lines_until(back, f"re/tool-dev-a/event m{n - 1}")]
        assert [m for m in got if not m.startswith("probe-")] == [f"m{i}" for i in range(n)]
    finally:
        back.close()


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


def test_roadedge_broker_keeps_a_down_services_queue_across_its_own_restart(tmp_path):
    """The zero-set-up broker is persistent like the shipped config: restarted (as after provisioning a
    device), it still holds what a device sent while a service with a persistent session was down."""
    import json
    import os
    import signal
    import sys

    sd = tmp_path / "secrets"

    def start() -> tuple[subprocess.Popen, int]:
        p = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "broker", "dev-x", "--listen", "127.0.0.1:0",
                              "--secrets", str(sd)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=dict(os.environ, PYTHONUNBUFFERED="1"))
        assert p.stdout
        line = p.stdout.readline()
        assert "listening on mqtt://127.0.0.1:" in line, line
        return p, int(line.split("mqtt://127.0.0.1:")[1].split()[0])

    def stop(p: subprocess.Popen) -> None:
        p.send_signal(signal.SIGINT)
        assert p.wait(20) == 0

    p, port = start()
    try:
        ingest_pw = json.loads((sd / "services.json").read_text())["ingest-1"]["mqtt_password"]
        dev_pw = json.loads((sd / "devices.json").read_text())["dev-x"]["mqtt_password"]
        session = ("-c",)  # a persistent session (clean session off)
        # the service subscribes once with a persistent session, then goes down
        first = Sub(port, "ingest-1", ingest_pw, ["re/dev-x/event"], "311", extra=session)
        try:
            wait_subscribed(port, first, "re/dev-x/event", "311", "dev-x", dev_pw)
        finally:
            first.p.terminate()
            first.p.wait(10)
        assert pub(port, "dev-x", dev_pw, "re/dev-x/event", '{"seq": 7}', "311").returncode == 0
    finally:
        stop(p)
    p, port = start()
    back = Sub(port, "ingest-1", ingest_pw, ["re/dev-x/event"], "311", extra=session)
    try:
        got = back.next(30)
        assert got == 're/dev-x/event {"seq": 7}', got
    finally:
        back.p.terminate()
        stop(p)
