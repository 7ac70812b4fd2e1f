"""Live updates fan-out: each console (SSE) client gets a bounded queue of events."""
from __future__ import annotations

import queue
import threading


class Bus:
    def __init__(self, capacity: int = 1000) -> None:
        self.clients: set[queue.Queue] = set()
        self.lock = threading.Lock()
        self.capacity = capacity

    def subscribe(self) -> queue.Queue:
        q: queue.Queue = queue.Queue(self.capacity)
        with self.lock:
            self.clients.add(q)
        return q

    def unsubscribe(self, q: queue.Queue) -> None:
        with self.lock:
            self.clients.discard(q)

    def publish(self, kind: str, data) -> None:
        with self.lock:
            clients = list(self.clients)
        for q in clients:
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
