"""The embedded broker: amqtt 0.12 in-process, for zero set-up (`roadedge broker`,
`make demo`, tests). Production uses Mosquitto (host_tools/broker/mosquitto.py).

Files (both JSON, both optional):
- password file: {"users": {"<name>": "pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>"}}
  written by `roadedge broker --passwd FILE --add-user NAME`; without one the
  broker accepts anonymous clients (local demo only).
- ACL file: {"users": {"<name>": {"publish": [filters], "subscribe": [filters]}},
             "default": {"publish": [...], "subscribe": [...]}}
  `{user}` in a filter is the client's user name; users not listed get
  "default"; a missing list denies. The device rule of docs/topics.md is
  `default_acl()`: write only your own subtree, read only your own commands.

    async with embedded(port=0) as b: ...          # in an asyncio program
    with EmbeddedBroker(port=0) as b: b.url ...    # from sync code (own thread)
"""
from __future__ import annotations

import asyncio
import errno
import hashlib
import hmac
import json
import logging
import os
import secrets
import socket
import threading
import warnings
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.plugins.topic_checking import TopicAccessControlListPlugin

_ITER = 100_000


def hash_password(password: str, iterations: int = _ITER, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    dk = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${dk.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        algo, it, salt, want = stored.split("$")
        if algo != "pbkdf2_sha256":
            return False
        dk = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(it))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(dk.hex(), want)


def load_passwords(path: str | os.PathLike) -> dict[str, str]:
    data = json.loads(Path(path).read_text())
    users = data.get("users", data) if isinstance(data, dict) else None
    if not isinstance(users, dict) or not all(isinstance(v, str) for v in users.values()):
        raise ValueError(f"{path}: expected {{\"users\": {{name: hash}}}}")
    return users


def add_user(path: str | os.PathLike, name: str, password: str) -> None:
    """Create or update one user in a password file (hash only, file mode 0600)."""
    p = Path(path)
    users = load_passwords(p) if p.exists() else {}
    users[name] = hash_password(password)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(json.dumps({"users": users}, indent=1) + "\n")
    os.chmod(tmp, 0o600)
    tmp.replace(p)


def default_acl(ops_users: tuple[str, ...] = ()) -> dict[str, Any]:
    """Devices: publish under re/<id>/ (and the OwnTracks topic), subscribe to
    their own commands and re/sys/; ops users: everything."""
    from host_tools.provision.acl import amqtt_json  # the one access table (roadedge.wire.ACCESS)

    return amqtt_json(everything=ops_users)


class PasswordAuth(BaseAuthPlugin):
    """amqtt auth plugin over our JSON password file (PBKDF2-SHA256 hashes)."""

    @dataclass
    class Config:
        password_file: str = ""

    def __init__(self, context) -> None:
        super().__init__(context)
        self._users = load_passwords(self.config.password_file)

    async def authenticate(self, *, session) -> bool | None:
        if not session or not session.username:
            return False
        stored = self._users.get(session.username)
        pw = session.password or ""
        pw = pw.decode() if isinstance(pw, (bytes, bytearray)) else pw
        return bool(stored) and verify_password(pw, stored)


class TopicAcl(BaseTopicPlugin):
    """amqtt topic plugin over our JSON ACL file with {user} patterns."""

    @dataclass
    class Config:
        acl_file: str = ""

    def __init__(self, context) -> None:
        super().__init__(context)
        self._acl = json.loads(Path(self.config.acl_file).read_text())

    def allowed(self, user: str | None, topic: str, action: Action) -> bool:
        user = user or "anonymous"
        rules = self._acl.get("users", {}).get(user, self._acl.get("default", {}))
        key = {Action.PUBLISH: "publish", Action.SUBSCRIBE: "subscribe"}.get(action)
        if key is None:  # RECEIVE: what a subscription already allowed
            return True
        # '+' and '#' in a user name must not widen the pattern
        safe = user.replace("+", "\0").replace("#", "\0").replace("/", "\0")
        for f in rules.get(key, []):
            if TopicAccessControlListPlugin.topic_ac(topic, f.replace("{user}", safe)):
                return True
        return False

    async def topic_filtering(self, *, session=None, topic=None, action=None) -> bool | None:
        if not topic or action is None:
            return False
        return self.allowed(session.username if session else None, topic, action)


def broker_config(host: str = "127.0.0.1", port: int = 1883, passwd: str | os.PathLike | None = None,
                  acl: str | os.PathLike | None = None) -> dict[str, Any]:
    plugins: dict[str, Any] = {}
    if passwd:
        load_passwords(passwd)  # fail early with a clear message
        plugins[f"{__name__}.PasswordAuth"] = {"password_file": str(passwd)}
    else:
        plugins["amqtt.plugins.authentication.AnonymousAuthPlugin"] = {"allow_anonymous": True}
    if acl:
        json.loads(Path(acl).read_text())
        plugins[f"{__name__}.TopicAcl"] = {"acl_file": str(acl)}
    return {"listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}}, "plugins": plugins}


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class _SnapshotSubscriptions(dict):
    """amqtt 0.12 walks its subscription table across awaits (the broadcast of
    each message, the retained-message replay on connect): a SUBSCRIBE landing
    meanwhile raises 'dictionary changed size during iteration' and the message
    is lost for every subscriber not yet served. Iterating a snapshot keeps
    each delivery whole."""

    def __iter__(self):
        return iter(list(super().keys()))

    def items(self):  # type: ignore[override]
        return list(super().items())


def _ignore_cancelled_noise(loop: asyncio.AbstractEventLoop) -> None:
    """amqtt's shutdown cancels client handler tasks whose stream callback then
    logs 'Exception in callback ... CancelledError': expected, not an error.
    Likewise a client that hangs up while amqtt refuses its CONNECT (e.g. an
    MQTT 5 probe) makes amqtt's close fail with ENOTCONN: nothing to report."""
    previous = loop.get_exception_handler()

    def handler(lp, ctx):
        exc = ctx.get("exception")
        if isinstance(exc, asyncio.CancelledError):
            return
        if isinstance(exc, OSError) and exc.errno == errno.ENOTCONN:
            return
        if previous:
            previous(lp, ctx)
        else:
            lp.default_exception_handler(ctx)

    loop.set_exception_handler(handler)


async def start_embedded_broker(host: str = "127.0.0.1", port: int = 1883, passwd=None, acl=None,
                                quiet: bool = True) -> Broker:
    """Start amqtt on host:port (port 0 = a free one; see `broker.roadedge_port`).
    Stop it with `await broker.shutdown()`."""
    if quiet:
        logging.getLogger("amqtt").setLevel(logging.WARNING)
        logging.getLogger("transitions").setLevel(logging.WARNING)
    port = port or _free_port(host)
    _ignore_cancelled_noise(asyncio.get_running_loop())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        broker = Broker(broker_config(host, port, passwd, acl))
        broker._subscriptions = _SnapshotSubscriptions()  # see the class: amqtt loses messages without it
        await broker.start()
    broker.roadedge_port = port  # type: ignore[attr-defined]
    broker.roadedge_url = f"mqtt://{host}:{port}"  # type: ignore[attr-defined]
    return broker


@asynccontextmanager
async def embedded(host: str = "127.0.0.1", port: int = 0, passwd=None, acl=None):
    b = await start_embedded_broker(host, port, passwd, acl)
    try:
        yield b
    finally:
        await b.shutdown()


class EmbeddedBroker:
    """The embedded broker on its own thread and event loop, for sync callers."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, passwd=None, acl=None) -> None:
        self.host = host
        self.port = port or _free_port(host)
        self.passwd, self.acl = passwd, acl
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="amqtt", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("embedded broker did not start")
        if self._error:
            raise RuntimeError(f"embedded broker failed: {self._error}") from self._error
        return self

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            b = await start_embedded_broker(self.host, self.port, self.passwd, self.acl)
        except BaseException as e:  # noqa: BLE001 - reported to start()
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await b.shutdown()

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop and self._stop and self._thread and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
