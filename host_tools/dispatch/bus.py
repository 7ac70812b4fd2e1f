"""Live updates fan-out: each console (SSE) client gets a bounded queue of events."""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable


class Bus:
    def __init__(self, capacity: int = 1000) -> None:
        self.clients: dict[queue.Queue, Callable[[], None] | None] = {}
        self.lock = threading.Lock()
        self.capacity = capacity

    def subscribe(self, notify: Callable[[], None] | None = None) -> queue.Queue:
        """A new client's queue; notify() (if given) is called after each event put in it, from the
        publishing thread (an event loop hands it over with call_soon_threadsafe)."""
        q: queue.Queue = queue.Queue(self.capacity)
        with self.lock:
            self.clients[q] = notify
        return q

    def unsubscribe(self, q: queue.Queue) -> None:
        with self.lock:
            self.clients.pop(q, None)

    def publish(self, kind: str, data) -> None:
        with self.lock:
            clients = list(self.clients.items())
        for q, notify in clients:
            try:
                q.put_nowait((kind, data))
            except queue.Full:
                # a stalled browser: tell it to reload the snapshot instead of growing memory
                try:
                    while True:
                        q.get_nowait()
                except queue.Empty:
                    pass
                q.put_nowait(("resync", None))
            if notify:
                notify()
