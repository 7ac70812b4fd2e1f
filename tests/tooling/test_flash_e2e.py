"""`roadedge flash` end to end, through the real command line:
- to dir:, then the folder boots under the MicroPython unix port and comes online on a Mosquitto that
  enforces the provisioned credentials and ACL; flashing again copies 0 files; the fleet tools
  (devices, selftest, command, logs) see and drive that device;
- through mpremote's serial transport to a unix-port REPL on a pty (socat): the real serial path."""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path


from host_tools import fw
from tooling_support import base_config, roadedge

HEAP = "160K"  # 64-bit unix build: about twice a board's heap (see tests/test_device_runtime.py)
TLS_HEAP = "320K"


def copied(out: str) -> int:
    m = re.search(r"files\s+(\d+) copied", out)
    assert m, out
    return int(m.group(1))


def manifest(folder: Path) -> dict:
    return json.loads((folder / ".roadedge-manifest.json").read_text())


def broker_args(broker, provisioned) -> list[str]:
    return ["--broker", broker.url, "--secrets", str(provisioned.secrets_dir)]


def test_flash_dir_boots_online_reflash_copies_nothing_and_fleet_tools(
        secure_broker, provisioned, hw_server, collector_factory, firmware_snapshot, tmp_path):
    dev = "tool-dev-a"
    cfgf = base_config(tmp_path / "a.json", dev, secure_broker.url, hw_server.addr)
    folder = tmp_path / "flash" / dev
    r = roadedge("flash", "--board", str(cfgf), "--port", f"dir:{folder}", "--secrets", str(provisioned.secrets_dir),
                 "--firmware", str(firmware_snapshot))
    assert r.returncode == 0, r.stdout + r.stderr
    n = copied(r.stdout)
    assert n > 10 and (folder / "main.py").exists() and (folder / "config.json").exists()
    assert all(p.endswith((".mpy", "main.py", "config.json")) for p in manifest(folder)["files"])
    merged = json.loads((folder / "config.json").read_text())
    assert merged["broker"]["password"] == provisioned.password(dev)  # secret merged
    assert merged["command_key"] == provisioned.secrets.devices[dev]["command_key"]

    # watched as the console would (client ids are bound to user names: the technician tools below
    # need the technician account to themselves)
    col = collector_factory(secure_broker.port, [f"re/{dev}/#"], username="dispatcher",
                            password=provisioned.password("dispatcher"))
    # the broker time beacon (the controller's job in a deployment): signed commands need a clock
    ctl = collector_factory(secure_broker.port, ["re/sys/#"], username="controller",
                            password=provisioned.password("controller"))
    ctl.c.publish("re/sys/time", json.dumps({"t": int(time.time() * 1000)}), 1, retain=True).wait_for_publish(10)
    log = open(tmp_path / "console.log", "wb")
    proc = fw.spawn("micropython", folder / "main.py", heap=HEAP, lib=folder / "lib", cwd=folder,
                    stdout=log, stderr=subprocess.STDOUT)
    try:
        col.wait_for(lambda t, p, *_: t == f"re/{dev}/status" and p == b"online", 30)
        info = json.loads(col.wait_for(lambda t, *_: t == f"re/{dev}/info", 10)[1])
        assert info["fw"] == manifest(folder)["fw_version"] and info["board"] == "sim"

        r = roadedge("devices", "--json", "--listen", "1", *broker_args(secure_broker, provisioned))
        assert r.returncode == 0, r.stderr
        rows = {d["id"]: d for d in json.loads(r.stdout)}
        assert rows[dev]["status"] == "online" and rows[dev]["fw"] == info["fw"] and rows[dev]["role"] == "base"

        r = roadedge("command", dev, "ping", *broker_args(secure_broker, provisioned))
        assert r.returncode == 0, r.stdout + r.stderr
        assert json.loads(r.stdout)["ok"] is True

        r = roadedge("selftest", dev, "--json", *broker_args(secure_broker, provisioned))
        result = json.loads(r.stdout)
        assert {"loop", "mqtt", "storage"} <= set(result["checks"]) and result["checks"]["mqtt"][0] is True
        assert r.returncode == (0 if result["pass"] else 1)

        # logs: a forged command makes the device log a warning, which `roadedge logs` shows
        logs = subprocess.Popen([os.environ.get("PYTHON", fw.sys.executable), "-m", "host_tools.cli", "logs", dev,
                                 "--count", "1", "--level", "W", "--duration", "60",
                                 *broker_args(secure_broker, provisioned)],
                                cwd=fw.REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            # wait for the tool's subscription (it says so on stderr) before forging
            line = logs.stderr.readline()
            assert "following" in line, line
            col.c.publish(f"re/{dev}/cmd/reboot", json.dumps({"body": "{}", "mac": "00" * 32}), 1)
            out, _err = logs.communicate(timeout=max(1, deadline - time.monotonic()))
        finally:
            if logs.poll() is None:
                logs.kill()
        assert "rejected" in out and logs.returncode == 0
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()

    r = roadedge("flash", "--board", str(cfgf), "--port", f"dir:{folder}", "--secrets", str(provisioned.secrets_dir),
                 "--firmware", str(firmware_snapshot))
    assert r.returncode == 0, r.stdout + r.stderr
    assert copied(r.stdout) == 0
    assert re.search(rf"{n} unchanged", r.stdout)


def test_flash_over_serial_to_unix_repl_on_a_pty(secure_broker, provisioned, hw_server, pty_repl,
                                                 firmware_snapshot, tmp_path):
    folder, port = pty_repl
    dev = "tool-dev-b"
    cfgf = base_config(tmp_path / "b.json", dev, secure_broker.url, hw_server.addr)
    args = ["flash", "--board", str(cfgf), "--port", port, "--secrets", str(provisioned.secrets_dir),
            "--firmware", str(firmware_snapshot)]
    r = roadedge(*args, "--no-wait")
    assert r.returncode == 0, r.stdout + r.stderr
    n = copied(r.stdout)
    assert n > 10
    # the files arrived through the REPL, byte for byte
    m = manifest(folder)
    for path in ("main.py", "config.json", "lib/roadedge/core/app.mpy"):
        import hashlib

        assert hashlib.sha256((folder / path).read_bytes()).hexdigest() == m["files"][path]
    r = roadedge(*args, "--no-wait")
    assert r.returncode == 0 and copied(r.stdout) == 0, r.stdout + r.stderr
    # full run: nothing to copy, start the firmware in the REPL, watch it come online on the broker
    r = roadedge(*args, "--timeout", "60")
    assert r.returncode == 0, r.stdout + r.stderr
    assert copied(r.stdout) == 0 and re.search(r"online\s+yes", r.stdout)


def test_flash_says_why_a_device_does_not_come_online(secure_broker, provisioned, hw_server, pty_repl,
                                                      firmware_snapshot, tmp_path):
    """Credentials the broker does not know yet (rotated, Mosquitto not reloaded): flash fails, non-zero."""
    from host_tools.config.secrets import Secrets
    from host_tools.provision.core import provision

    folder, port = pty_repl
    dev = "tool-dev-b"
    s = Secrets.load(provisioned.secrets_dir)
    provision(s, [dev], rotate=True, out=tmp_path / "not-loaded", tls_hosts=None)
    cfgf = base_config(tmp_path / "b.json", dev, secure_broker.url, hw_server.addr)
    r = roadedge("flash", "--board", str(cfgf), "--port", port, "--secrets", str(provisioned.secrets_dir),
                 "--firmware", str(firmware_snapshot), "--timeout", "8")
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(r"online\s+NO", r.stdout) and "FAILED at online" in r.stdout
    out = " ".join(r.stdout.split())
    assert f"no live 'online' on re/{dev}/status within 8s" in out
    assert "last device output:" in out  # what the board said last, to start the diagnosis
    assert copied(r.stdout) > 10  # the files did go over; only the broker said no


def test_shipped_sim_configs_flash_and_come_online_with_their_roles(
        secure_broker, provisioned, hw_server, collector_factory, firmware_snapshot, tmp_path):
    """The shipped sign, beacon and tracker sim configs, flashed as a technician would, run their roles."""
    from host_tools.config.secrets import Secrets
    from host_tools.flash.flasher import FlashOptions, flash
    from host_tools.provision.core import provision

    names = ["sim-sign", "sim-beacon", "sim-tracker"]
    cfgs = {n: json.loads((fw.REPO / "board_configs" / f"{n}.json").read_text()) for n in names}
    s = Secrets.load(provisioned.secrets_dir)
    out = provision(s, [c["id"] for c in cfgs.values()], out=provisioned.out, tls_hosts=None)
    secure_broker.restart()  # Mosquitto reads the accounts at start-up
    col = collector_factory(secure_broker.port, ["re/+/status", "re/+/info"], username="dispatcher",
                            password=provisioned.password("dispatcher"))
    procs = []
    try:
        for n, c in cfgs.items():
            c["sim"]["hw"] = hw_server.addr
            f = tmp_path / f"{n}.json"
            f.write_text(json.dumps(c))
            res = flash(str(f), f"dir:{tmp_path / n}", FlashOptions(secrets=str(provisioned.secrets_dir),
                                                                    broker_url=secure_broker.url,
                                                                    firmware=str(firmware_snapshot)))
            assert res.ok, (res.reason, [str(p) for p in res.problems])
            procs.append(fw.spawn("micropython", tmp_path / n / "main.py", heap="256K", lib=tmp_path / n / "lib",
                                  cwd=tmp_path / n, stdout=open(tmp_path / f"{n}.log", "wb"),
                                  stderr=subprocess.STDOUT))
        roles = {}
        want = {c["id"]: c["role"] for c in cfgs.values()}
        deadline = time.monotonic() + 60
        online = set()
        while online != set(want) or set(roles) != set(want):
            t, p, _r, _q = col.wait_for(lambda *_: True, max(0.1, deadline - time.monotonic()))
            dev = t.split("/")[1]
            if t.endswith("/status") and p == b"online":
                online.add(dev)
            elif t.endswith("/info"):
                roles[dev] = json.loads(p)["role"]
        assert roles == want and sorted(out.created) == sorted(want)
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


def test_device_connects_over_tls_with_the_provisioned_ca(
        secure_broker, provisioned, hw_server, collector_factory, firmware_snapshot, tmp_path):
    """mqtts:// to the TLS listener: flash ships the CA (DER) beside the config; the device verifies the broker."""
    dev = "tool-dev-a"
    url = f"mqtts://127.0.0.1:{secure_broker.tls_port}"
    cfgf = base_config(tmp_path / "a.json", dev, url, hw_server.addr)
    c = json.loads(cfgf.read_text())
    c["broker"]["ca"] = "ca.der"
    cfgf.write_text(json.dumps(c))
    folder = tmp_path / dev
    r = roadedge("flash", "--board", str(cfgf), "--port", f"dir:{folder}", "--secrets", str(provisioned.secrets_dir),
                 "--firmware", str(firmware_snapshot))
    assert r.returncode == 0, r.stdout + r.stderr
    assert (folder / "ca.der").read_bytes() == (provisioned.out / "ca.der").read_bytes()
    assert "ca.der" in manifest(folder)["files"]
    col = collector_factory(secure_broker.port, [f"re/{dev}/status"], username="dispatcher",
                            password=provisioned.password("dispatcher"))
    # mbedtls allocates its handshake buffers on the unix port's GC heap: 160K is not enough
    # (the device then stays silent; reported to the runtime owners), 320K is.
    proc = fw.spawn("micropython", folder / "main.py", heap=TLS_HEAP, lib=folder / "lib", cwd=folder,
                    stdout=open(tmp_path / "console.log", "wb"), stderr=subprocess.STDOUT)
    try:
        col.wait_for(lambda t, p, *_: p == b"online", 60)
    finally:
        proc.terminate()
        proc.wait(10)
