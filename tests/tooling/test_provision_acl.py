"""Provisioned credentials and the generated ACL against a real Mosquitto:
a device can publish only under its own subtree and read only its own
commands; host services get their own roles; rotation locks out the old
password; the TLS listener works with the generated CA."""
from __future__ import annotations

import queue
import ssl
import threading

import paho.mqtt.client as mqtt
import pytest

from host_tools.config.secrets import Secrets
from host_tools.provision import passwd
from host_tools.provision.core import provision

NOT_AUTHORIZED = 135
ACCEPTED = (0, 16)  # 16 = "no matching subscribers": accepted, nobody listening


class Client5:
    """An MQTT 5 paho client that exposes PUBACK and SUBACK reason codes and received messages."""

    def __init__(self, port: int, user: str, password: str, tls_ca: str | None = None) -> None:
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv5)
        self.c.username_pw_set(user, password)
        if tls_ca:
            self.c.tls_set(ca_certs=tls_ca, cert_reqs=ssl.CERT_REQUIRED)
        self.connack: queue.Queue = queue.Queue()
        self.pubacks: dict[int, queue.Queue] = {}
        self.subacks: dict[int, queue.Queue] = {}
        self.msgs: queue.Queue = queue.Queue()
        self.lock = threading.Lock()
        self.c.on_connect = lambda c, u, f, rc, p: self.connack.put(rc)
        self.c.on_publish = lambda c, u, mid, rc, p: self._q(self.pubacks, mid).put(rc)
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self._q(self.subacks, mid).put(rcs)
        self.c.on_message = lambda c, u, m: self.msgs.put((m.topic, m.payload))
        self.c.connect("127.0.0.1", port, 30)
        self.c.loop_start()
        self.rc = self.connack.get(timeout=10)

    def _q(self, d: dict, mid: int) -> queue.Queue:
        with self.lock:
            return d.setdefault(mid, queue.Queue())

    def publish(self, topic: str, payload: bytes = b"x", qos: int = 1) -> int:
        """The PUBACK reason code (0 = accepted, 135 = not authorised)."""
        info = self.c.publish(topic, payload, qos)
        return self._q(self.pubacks, info.mid).get(timeout=10).value

    def subscribe(self, topic: str) -> int:
        _rc, mid = self.c.subscribe(topic, 1)
        return self._q(self.subacks, mid).get(timeout=10)[0].value

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def clients(secure_broker, provisioned):
    made = []

    def make(user: str, password: str | None = None, **kw) -> Client5:
        c = Client5(secure_broker.port, user, password or provisioned.password(user), **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def test_password_hash_is_mosquitto_compatible():
    h = passwd.hash_password("s3cret", iterations=101, salt=b"0123456789ab")
    assert h.startswith("$7$101$") and passwd.verify("s3cret", h) and not passwd.verify("wrong", h)


def test_device_cannot_publish_as_another_or_read_its_commands(clients):
    a, b, tech = clients("tool-dev-a"), clients("tool-dev-b"), clients("technician")
    assert a.rc == 0 and b.rc == 0 and tech.rc == 0
    # own subtree: every documented kind is accepted
    for kind in ("status", "info", "state", "tele", "event", "log", "ack"):
        assert a.publish(f"re/tool-dev-a/{kind}") in ACCEPTED, kind
    assert a.publish("owntracks/roadedge/tool-dev-a") in ACCEPTED
    # as B, outside the documented kinds, commands to itself, system topics: refused
    for topic in ("re/tool-dev-b/status", "re/tool-dev-b/tele", "owntracks/roadedge/tool-dev-b",
                  "re/tool-dev-a/cmd/reboot", "re/tool-dev-a/other", "re/sys/time", "re/tool-dev-a"):
        assert a.publish(topic) == NOT_AUTHORIZED, topic
    # reading B's commands (or everything) is refused; its own commands and re/sys are allowed
    # (SUBACK 0x87; each message is also checked against the read rules: checked below by delivery)
    assert a.subscribe("re/tool-dev-b/cmd/#") == NOT_AUTHORIZED
    assert a.subscribe("re/#") == NOT_AUTHORIZED
    assert a.subscribe("re/tool-dev-a/cmd/#") == 1
    assert a.subscribe("re/sys/#") == 1
    assert b.subscribe("re/tool-dev-b/cmd/#") == 1
    # delivery: a command for B reaches B and never A
    assert tech.publish("re/tool-dev-b/cmd/ping", b"for-b") in ACCEPTED
    assert b.msgs.get(timeout=10) == ("re/tool-dev-b/cmd/ping", b"for-b")
    assert tech.publish("re/tool-dev-a/cmd/ping", b"for-a") in ACCEPTED
    # everything A received up to its own command (sent after B's): nothing of B's
    seen = []
    while b"for-a" not in [p for _t, p in seen]:
        seen.append(a.msgs.get(timeout=10))
    assert all(t.startswith("re/tool-dev-a/") for t, _p in seen), seen


def test_service_roles(clients):
    tech, ctl, disp = clients("technician"), clients("controller"), clients("dispatcher")
    assert tech.subscribe("re/#") == 1 and ctl.subscribe("re/#") == 1 and disp.subscribe("owntracks/#") == 1
    assert ctl.publish("re/sys/time") in ACCEPTED and ctl.publish("re/tool-dev-a/cmd/set_limit") in ACCEPTED
    assert disp.publish("re/sys/time") == NOT_AUTHORIZED
    assert ctl.publish("re/ctl/z1/state") in ACCEPTED and disp.publish("re/ctl/z1/op") in ACCEPTED
    assert disp.publish("re/ctl/z1/state") == NOT_AUTHORIZED
    # no service may speak as a device
    for c in (tech, ctl, disp):
        assert c.publish("re/tool-dev-a/status") == NOT_AUTHORIZED


def test_reserved_and_malformed_device_ids_are_refused(tmp_path):
    s = Secrets.load(tmp_path / "s")
    for bad in ("sys", "ctl", "controller", "a/b", "a+b", "x#"):
        with pytest.raises(ValueError):
            provision(s, [bad], out=tmp_path / "o", tls_hosts=None)


def test_wrong_password_and_unknown_user_are_refused(clients):
    assert clients("tool-dev-a", "not-the-password").rc != 0
    assert clients("stranger", "whatever").rc != 0


def test_rotation_locks_out_the_old_password(secure_broker, provisioned, clients):
    old = provisioned.password("tool-dev-a")
    s = Secrets.load(provisioned.secrets_dir)
    res = provision(s, ["tool-dev-a"], rotate=True, out=provisioned.out, tls_hosts=None)
    assert res.rotated == ["tool-dev-a"]
    new = s.devices["tool-dev-a"]["mqtt_password"]
    assert new != old and s.devices["tool-dev-a"]["command_key"] != provisioned.secrets.devices["tool-dev-a"][
        "command_key"]
    assert s.devices["tool-dev-b"] == provisioned.secrets.devices["tool-dev-b"]  # others untouched
    secure_broker.restart()  # Mosquitto reads the accounts at start-up (the plugin ignores SIGHUP)
    assert clients("tool-dev-a", old).rc != 0
    assert clients("tool-dev-a", new).rc == 0


def test_tls_listener_with_generated_ca(secure_broker, provisioned):
    c = Client5(secure_broker.tls_port, "tool-dev-a", provisioned.password("tool-dev-a"),
                tls_ca=str(provisioned.out / "ca.pem"))
    try:
        assert c.rc == 0
        assert c.publish("re/tool-dev-a/status") in ACCEPTED
        assert c.publish("re/tool-dev-b/status") == NOT_AUTHORIZED
    finally:
        c.close()
    assert (provisioned.out / "ca.der").read_bytes()[:1] == b"\x30"  # DER for the devices
