"""The embedded amqtt broker (`roadedge broker`): our MicroPython MQTT client
connects with its own credentials, publishes, a paho subscriber receives; the
device ACL keeps a device inside its own subtree; the CLI starts and stops."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

import paho.mqtt.client as mqtt
import pytest

from host_tools.broker.amqtt_broker import EmbeddedBroker, add_user, default_acl

pytest_plugins = ["mqtt_driver.harness"]  # fixtures: mpy_lib, devices


@pytest.fixture
def secured_broker(tmp_path):
    pw, acl = tmp_path / "users.json", tmp_path / "acl.json"
    add_user(pw, "dev7", "dev7-secret")
    add_user(pw, "ops", "ops-secret")
    acl.write_text(json.dumps(default_acl(("ops",))))
    with EmbeddedBroker(passwd=pw, acl=acl) as b:
        yield b


def test_micropython_client_publishes_through_embedded_broker(secured_broker, tmp_path, devices, collector_factory):
    b = secured_broker
    ops = collector_factory(b.port, ["re/#"], username="ops", password="ops-secret")
    cfg = {"client": {"client_id": "dev7", "host": "127.0.0.1", "port": b.port, "keepalive": 5,
                      "user": "dev7", "password": "dev7-secret", "backoff_ms": [50, 500],
                      "birth": ["re/dev7/status", "online", 1, True]},
           "publish": {"topic": "re/dev7/event", "count": 50, "qos": 1, "verbose": False},
           "exit_when_done": True}
    dev = devices("micropython", cfg, tmp_path)
    ops.wait_for(lambda t, p, r, q: t == "re/dev7/status" and p == b"online")
    seqs = set()
    while len(seqs) < 50:
        t, p, _r, _q = ops.get(timeout=10)
        if t == "re/dev7/event":
            seqs.add(json.loads(p)["seq"])
    dev.wait_line("done", timeout=20)
    dev.assert_no_traceback()


def test_acl_and_passwords(secured_broker, collector_factory):
    b = secured_broker
    ops = collector_factory(b.port, ["re/#"], username="ops", password="ops-secret")
    refused = []
    bad = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="intruder")
    bad.username_pw_set("dev7", "wrong")
    bad.on_connect = lambda c, u, f, rc, p=None: refused.append(rc)
    bad.connect("127.0.0.1", b.port)
    bad.loop_start()
    dev = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="dev7")
    dev.username_pw_set("dev7", "dev7-secret")
    dev.connect("127.0.0.1", b.port)
    dev.loop_start()
    try:
        dev.publish("re/dev8/state", "forged", qos=1)  # someone else's subtree: dropped
        dev.publish("re/dev7/state", "mine", qos=1)    # same connection, after it
        t, p, _r, _q = ops.wait_for(lambda t, p, r, q: t.startswith("re/dev"))
        assert (t, p) == ("re/dev7/state", b"mine")
        assert refused and refused[0].is_failure
    finally:
        for c in (bad, dev):
            c.loop_stop()
            c.disconnect()


def test_cli_prints_url_and_stops_on_ctrl_c():
    p = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "broker", "--listen", "127.0.0.1:0"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = p.stdout.readline()
        m = re.search(r"mqtt://127\.0\.0\.1:(\d+)", line)
        assert m, line
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="probe")
        assert c.connect("127.0.0.1", int(m.group(1))) == 0
        c.disconnect()
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=20)
        assert p.returncode == 0, out
        assert "broker stopped" in out and "Traceback" not in out
    finally:
        if p.poll() is None:
            p.kill()


def test_subscription_table_tolerates_subscribes_during_a_broadcast():
    """amqtt walks its subscription table across awaits; a SUBSCRIBE meanwhile
    must not abort the walk (that message would be lost for the rest)."""
    from host_tools.broker.amqtt_broker import _SnapshotSubscriptions

    table = _SnapshotSubscriptions({"re/+/tele": ["a"], "re/#": ["b"]})
    served = []
    for _filter, subs in table.items():
        table[f"owntracks/{len(table)}"] = ["late"]  # a SUBSCRIBE landing mid-broadcast
        served.extend(subs)
    for _filter in table:
        table.pop("re/#", None)  # a client leaving mid-replay
    assert served == ["a", "b"] and "re/#" not in table and len(table) == 3
