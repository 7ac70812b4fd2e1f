"""The broker's accounts file (Mosquitto's dynamic-security plugin) grants exactly the access table, binds
every account to its own client id, and is what the shipped config and `roadedge broker` load."""
from __future__ import annotations

import json
import queue
import time

import paho.mqtt.client as mqtt

from host_tools.broker import conf as broker_conf
from host_tools.provision import acl, dynsec
from roadedge import wire_access


def test_the_plugin_is_installed_with_mosquitto():
    # Debian's mosquitto package ships it (the Makefile installs mosquitto on a fresh machine)
    assert dynsec.plugin_path().name == dynsec.PLUGIN


def test_every_account_is_bound_to_its_name_with_exactly_its_rules(provisioned):
    cfg = json.loads((provisioned.out / dynsec.FILE_NAME).read_text())
    devices = sorted(provisioned.secrets.devices)
    services = sorted(provisioned.secrets.services)
    want = acl.rules(devices, services)
    assert {c["username"] for c in cfg["clients"]} == set(want) == set(devices) | set(services)
    assert {f"ingest-{n}" for n in range(1, acl.INGEST_WORKERS + 1)} | {"controller", "dispatcher",
                                                                        "technician"} <= set(services)
    assert cfg["defaultACLAccess"] == {"publishClientSend": False, "publishClientReceive": False,
                                       "subscribe": False, "unsubscribe": True}
    roles = {r["rolename"]: r["acls"] for r in cfg["roles"]}
    for c in cfg["clients"]:
        user = c["username"]
        assert c["clientid"] == user and c["roles"] == [{"rolename": user}]
        read, write = want[user]
        got = roles[user]
        assert all(a["allow"] for a in got)
        assert {a["topic"] for a in got if a["acltype"] == "publishClientSend"} == set(write)
        assert {a["topic"] for a in got if a["acltype"] == "publishClientReceive"} == set(read)
        assert {a["topic"] for a in got if a["acltype"] == "subscribePattern"} == \
            set(read) | {f"$share/+/{t}" for t in read}
    # the rules are the access table's (the service rows; devices under their own id)
    for dev in devices:
        pub, sub = wire_access.access(wire_access.DEVICE_USER, dev)
        assert want[dev] == (sub, pub)
    assert want["ingest-1"] == (wire_access.ACCESS["ingest"][1], ())
    # the file holds password hashes: owner only
    assert (provisioned.out / dynsec.FILE_NAME).stat().st_mode & 0o077 == 0


def test_reprovisioning_keeps_unchanged_hashes(provisioned):
    from host_tools.config.secrets import Secrets
    from host_tools.provision.core import provision

    before = (provisioned.out / dynsec.FILE_NAME).read_text()
    provision(Secrets.load(provisioned.secrets_dir), [], out=provisioned.out, tls_hosts=None)
    assert (provisioned.out / dynsec.FILE_NAME).read_text() == before


def test_the_shipped_config_loads_the_plugin_with_the_accounts(provisioned):
    conf = (provisioned.out / "mosquitto.conf").read_text()
    lines = [line.strip() for line in conf.splitlines() if line.strip() and not line.startswith("#")]
    assert f"plugin {dynsec.plugin_path()}" in lines
    assert f"plugin_opt_config_file {provisioned.out / dynsec.FILE_NAME}" in lines
    assert "allow_anonymous false" in lines and "per_listener_settings false" in lines
    # no password_file/acl_file beside the plugin: one source of accounts
    assert not [line for line in lines if line.startswith(("password_file", "acl_file", "use_username_as_clientid"))]
    assert broker_conf.auth_lines(provisioned.out / dynsec.FILE_NAME).splitlines() == [
        f"plugin {dynsec.plugin_path()}", f"plugin_opt_config_file {provisioned.out / dynsec.FILE_NAME}"]


def _client(port: int, user: str, password: str, client_id: str, tls_ca: str | None = None):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.username_pw_set(user, password)
    if tls_ca:
        c.tls_set(ca_certs=tls_ca)
    got: queue.Queue = queue.Queue()
    c.on_connect = lambda _c, _u, _f, rc, _p: got.put(("connack", rc))
    c.on_subscribe = lambda _c, _u, _m, rcs, _p: got.put(("suback", rcs))
    c.connect("127.0.0.1", port, 30)
    c.loop_start()
    return c, got


def test_tls_listener_refuses_a_foreign_client_id_too(secure_broker, provisioned):
    ca = str(provisioned.out / "ca.pem")
    pw = provisioned.password("tool-dev-a")
    for cid, refused in (("tool-dev-b", True), ("tool-dev-a", False)):
        c, got = _client(secure_broker.tls_port, "tool-dev-a", pw, cid, tls_ca=ca)
        try:
            what, rc = got.get(timeout=20)
            assert what == "connack" and rc.is_failure == refused and (not refused or rc.value == 135), (cid, rc)
        finally:
            c.loop_stop()
            c.disconnect()


def test_shared_subscriptions_within_the_read_rules_only(secure_broker, provisioned):
    """Ingest workers share `$share/<group>/re/#`; a device may not reach beyond its commands that way."""
    cases = [("ingest-2", "$share/ingest/re/#", 1), ("ingest-2", "$share/ingest/owntracks/#", 1),
             ("tool-dev-a", "$share/x/re/#", 135), ("tool-dev-a", "$share/x/re/tool-dev-b/cmd/#", 135),
             ("tool-dev-a", "$share/x/re/tool-dev-a/cmd/#", 1)]
    for user, topic, want in cases:
        c, got = _client(secure_broker.port, user, provisioned.password(user), user)
        try:
            assert got.get(timeout=20)[1].value == 0
            c.subscribe(topic, 1)
            deadline = time.monotonic() + 20
            while True:
                what, rcs = got.get(timeout=max(0.1, deadline - time.monotonic()))
                if what == "suback":
                    break
            assert rcs[0].value == want, (user, topic, rcs)
        finally:
            c.loop_stop()
            c.disconnect()
