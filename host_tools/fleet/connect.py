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
            secrets: Secrets | None = None, timeout: float = 10.0, name: str = "tool", session: str | None = None,
            prepare=None) -> mqtt.Client:
    """A connected paho client (MQTT 3.1.1) with its network loop running; raise BrokerError with the reason.

    session: a client id for a persistent session (the broker keeps QoS 1 messages while the tool is
    away); prepare(client) runs before CONNECT, so callbacks are in place for a backlog that follows it."""
    from host_tools.recording.mqttconn import NoConnack, Refused, connect_wait, make_client

    u = urlsplit(url)
    if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
        raise BrokerError(f"bad broker URL {url!r}: expected mqtt://host:port or mqtts://host:port")
    user, password = credentials(secrets, user, password)
    if u.scheme == "mqtts":
        if ca is None and secrets is not None and secrets.root is not None:
            ca = secrets.root / "tls" / "ca.pem"
        if ca is None or not Path(ca).exists():
            raise BrokerError(f"mqtts:// needs the broker's CA certificate (--ca), not found: {ca}")
    c, b = make_client(url, f"roadedge-{name}", ca=str(ca) if ca else None, user=user, password=password,
                       client_id=session)
    if prepare is not None:
        prepare(c)
    try:
        connect_wait(c, b, timeout=timeout)
    except NoConnack:
        raise BrokerError(f"no answer from the broker at {url} within {timeout:.0f}s") from None
    except Refused as e:
        raise BrokerError(f"broker at {url} refused {b.user or 'anonymous'}: {e}") from None
    except (OSError, ssl.SSLError) as e:
        raise BrokerError(f"cannot reach the broker at {url}: {e}") from None
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
