"""Waiting on what arrives in a queue, with one deadline (never sleep-and-hope)."""
from __future__ import annotations

import queue
import time


def first_from(q: queue.Queue, match, timeout: float, seen: list | None = None):
    """Take items from q until match(item) is true and return that item; at
    most timeout seconds in all, else TimeoutError. Every item taken is also
    appended to seen, when given."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no matching message")
        try:
            item = q.get(timeout=left)
        except queue.Empty:
            continue
        if seen is not None:
            seen.append(item)
        if match(item):
            return item
