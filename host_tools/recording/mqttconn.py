"""Parse a broker URL and connect a paho client (shared by record, replay, dispatch)."""
from __future__ import annotations

import ssl
import threading
import uuid
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

import paho.mqtt.client as mqtt


@dataclass
class BrokerURL:
    host: str
    port: int
    tls: bool
    user: str | None
    password: str | None


def parse_url(url: str) -> BrokerURL:
    u = urlparse(url if "://" in url else "mqtt://" + url)
    if u.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError(f"broker URL must be mqtt://host:port or mqtts://host:port, got {url!r}")
    tls = u.scheme in ("mqtts", "ssl")
    return BrokerURL(u.hostname or "127.0.0.1", u.port or (8883 if tls else 1883), tls,
                     unquote(u.username) if u.username else None, unquote(u.password) if u.password else None)


def make_client(url: str, prefix: str, protocol=mqtt.MQTTv311, ca: str | None = None,
                client_id: str | None = None, user: str | None = None,
                password: str | None = None) -> tuple[mqtt.Client, BrokerURL]:
    """A paho client for url. With client_id the session is persistent (the broker keeps QoS 1 messages
    for it while it is away); without, a clean session under the account's name (the broker binds every
    account to that one client id and refuses any other), or a random id when anonymous."""
    b = parse_url(url)
    if user and not b.user:  # credentials in the URL win
        b.user, b.password = user, password
    kw = {}
    if protocol != mqtt.MQTTv5:
        kw["clean_session"] = client_id is None
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                    client_id=client_id or b.user or f"{prefix}-{uuid.uuid4().hex[:8]}", protocol=protocol, **kw)
    if b.user:
        c.username_pw_set(b.user, b.password)
    if b.tls:
        c.tls_set(ca_certs=ca, cert_reqs=ssl.CERT_REQUIRED)
    return c, b


class NoConnack(TimeoutError):
    """The broker accepted the TCP connection but never answered CONNECT."""


class Refused(ConnectionError):
    """The broker answered CONNECT with a refusal (bad credentials, not authorised...)."""


def connect_wait(c: mqtt.Client, b: BrokerURL, timeout: float = 10.0, keepalive: int = 30, **kw) -> None:
    """Connect, start the network loop and wait for CONNACK (raise on refusal or timeout)."""
    done, result = threading.Event(), {}
    prev = c.on_connect

    def on_connect(client, userdata, flags, rc, props=None):
        result["rc"] = rc
        done.set()
        if prev:
            prev(client, userdata, flags, rc, props)

    c.on_connect = on_connect
    c.connect(b.host, b.port, keepalive, **kw)
    c.loop_start()
    if not done.wait(timeout):
        c.loop_stop()
        raise NoConnack(f"no CONNACK from {b.host}:{b.port} in {timeout}s")
    if result["rc"].is_failure:
        c.loop_stop()
        raise Refused(f"broker refused connection: {result['rc']}")
    c.on_connect = prev


def broker_options(args) -> tuple[str, str | None, str | None, str | None]:
    """(url, user, password, ca) the way every host tool finds them (host_tools.fleet.connect)."""
    from host_tools.config.secrets import Secrets
    from host_tools.fleet import connect

    try:
        sec = Secrets.load(args.secrets)
    except Exception:
        sec = None
    user, password = connect.credentials(sec, args.user, args.password)
    ca = args.ca
    if ca is None and sec is not None and sec.root is not None and (sec.root / "tls" / "ca.pem").exists():
        ca = str(sec.root / "tls" / "ca.pem")
    return connect.broker_url(args), user, password, ca
