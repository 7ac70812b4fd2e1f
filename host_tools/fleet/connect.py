"""One way for host tools to reach the broker as the technician.

Credentials: --user/--password, else the `technician` service user from the
secrets folder (written by `roadedge provision`), else anonymous (a test or
embedded broker). TLS for mqtts:// uses the provisioned CA (secrets/tls/ca.pem)
unless --ca names another.
"""
from __future__ import annotations

import queue
import ssl
import threading
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

from host_tools.config.secrets import Secrets

DEFAULT_URL = "mqtt://127.0.0.1:1883"


class BrokerError(RuntimeError):
    pass


def add_broker_arguments(p) -> None:
    p.add_argument("--broker", default=None, help=f"broker URL (default {DEFAULT_URL} or $ROADEDGE_BROKER)")
    p.add_argument("--user", help="MQTT user (default: the provisioned 'technician')")
    p.add_argument("--password", help="MQTT password (default: from the secrets folder)")
    p.add_argument("--ca", help="CA certificate (PEM) for mqtts:// (default: secrets/tls/ca.pem)")
    p.add_argument("--secrets", help="secrets folder (default: secrets/ or $ROADEDGE_SECRETS)")


def broker_url(args) -> str:
    import os

    return args.broker or os.environ.get("ROADEDGE_BROKER") or DEFAULT_URL


def credentials(secrets: Secrets | None, user: str | None, password: str | None) -> tuple[str | None, str | None]:
    if user:
        return user, password
    if secrets is not None:
        e = secrets.services.get("technician")
        if isinstance(e, dict) and e.get("mqtt_password"):
            return "technician", e["mqtt_password"]
    return None, None


def connect(url: str, user: str | None = None, password: str | None = None, ca: str | Path | None = None,
            secrets: Secrets | None = None, timeout: float = 10.0, name: str = "tool") -> mqtt.Client:
    """A connected paho client (MQTT 3.1.1) with its network loop running; raise BrokerError with the reason."""
    u = urlsplit(url)
    if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
        raise BrokerError(f"bad broker URL {url!r}: expected mqtt://host:port or mqtts://host:port")
    port = u.port or (8883 if u.scheme == "mqtts" else 1883)
    user, password = credentials(secrets, user, password)
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"roadedge-{name}-{uuid.uuid4().hex[:8]}")
    if user:
        c.username_pw_set(user, password)
    if u.scheme == "mqtts":
        if ca is None and secrets is not None and secrets.root is not None:
            ca = secrets.root / "tls" / "ca.pem"
        if ca is None or not Path(ca).exists():
            raise BrokerError(f"mqtts:// needs the broker's CA certificate (--ca), not found: {ca}")
        c.tls_set(ca_certs=str(ca), cert_reqs=ssl.CERT_REQUIRED)
    done = threading.Event()
    result: list = []

    def on_connect(_c, _u, _f, rc, _p=None):
        result.append(rc)
        done.set()

    c.on_connect = on_connect
    try:
        c.connect(u.hostname, port, keepalive=30)
    except (OSError, ssl.SSLError) as e:
        raise BrokerError(f"cannot reach the broker at {url}: {e}") from None
    c.loop_start()
    if not done.wait(timeout):
        c.loop_stop()
        raise BrokerError(f"no answer from the broker at {url} within {timeout:.0f}s")
    rc = result[0]
    if rc != 0:
        c.loop_stop()
        raise BrokerError(f"broker at {url} refused {user or 'anonymous'}: {rc}")
    return c


class Subscription:
    """Messages on some topics, queued as (topic, payload bytes, retained) for waiting with deadlines."""

    def __init__(self, client: mqtt.Client, topics: list[str], qos: int = 1, timeout: float = 10.0) -> None:
        self.q: queue.Queue = queue.Queue(maxsize=10000)
        self.client = client
        acked: set[int] = set()
        cond = threading.Condition()

        def on_message(_c, _u, m):
            try:
                self.q.put_nowait((m.topic, bytes(m.payload), bool(m.retain)))
            except queue.Full:
                pass  # a tool's view; the broker keeps the data

        def on_subscribe(_c, _u, mid, _rcs, _p=None):
            with cond:
                acked.add(mid)
                cond.notify_all()

        client.on_message = on_message
        client.on_subscribe = on_subscribe
        mids = {client.subscribe(t, qos)[1] for t in topics}
        with cond:
            if not cond.wait_for(lambda: mids <= acked, timeout):
                raise BrokerError(f"broker did not confirm the subscription to {topics}")

    def get(self, timeout: float):
        try:
            return self.q.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None


def close(client: mqtt.Client) -> None:
    try:
        client.disconnect()
    finally:
        client.loop_stop()
