"""Wire a running console together: store + ingest + console + web server (CLI, tests, demo)."""
from __future__ import annotations

import threading
from pathlib import Path

from .bus import Bus
from .console import Console
from .ingest import Ingest
from .monitor import EventService
from .store import Store
from .users import Sessions, Users
from .web import ConsoleServer


class DispatchService:
    def __init__(self, broker: str, db: str | Path, users: str | Path, http: tuple[str, int] | None = ("127.0.0.1", 8080),
                 deployment: str | Path | None = None, keys: str | Path | None = None,
                 shared_group: str | None = None, tile_url: str | None = None, keyring=None,
                 client_id: str | None = None, ca: str | None = None, tls: tuple[str, str] | None = None,
                 credentials: tuple[str, str] | None = None) -> None:
        self.store = Store(db)
        self.bus = Bus()
        scenario = None
        if deployment:
            from host_tools.deployment.scenario import load

            scenario = load(deployment)
        if keyring is None:
            from host_tools.keys import Keyring

            keyring = Keyring.load(keys)
        self.ingest = Ingest(self.store, broker, shared_group, client_id=client_id, ca=ca, credentials=credentials)
        self.console = Console(self.store, self.bus, self._publish, keyring, scenario, tile_url,
                               stats=self._stats)
        self.ingest.on_change = self.console.on_change
        # the event log (written with what ingest stores) and the alarm rules (monitor.py)
        self.console.events = self.events = EventService(self.console)
        self.users = Users(users)
        self.http = http
        self.tls = tls
        self.server: ConsoleServer | None = None
        self._thread: threading.Thread | None = None

    def _publish(self, topic: str, payload: bytes, qos: int) -> None:
        if not self.ingest.c:
            raise RuntimeError("not connected to the broker")
        self.ingest.c.publish(topic, payload, qos=qos)

    def _stats(self) -> dict:
        return {**self.ingest.stats, "queue": self.ingest.q.qsize(), "connected": self.ingest.c is not None
                and self.ingest.c.is_connected(), "last_error": self.ingest.last_error}

    @property
    def url(self) -> str:
        assert self.server
        h, p = self.server.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{h}:{p}"

    def start(self) -> DispatchService:
        self.ingest.start()
        if self.http:
            self.server = ConsoleServer(self.http, self.console, self.users, Sessions(), self.tls)
            self._thread = threading.Thread(target=self.server.serve_forever, name="dispatch-web", daemon=True)
            self._thread.start()
            self.events.start()  # alarms are judged by the console process, not by extra ingest workers
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
        self.events.stop()
        self.ingest.stop()
        self.console.close()
        self.store.close()

    def __enter__(self) -> DispatchService:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
