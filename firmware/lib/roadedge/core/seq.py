# Per-device sequence numbers that never repeat, across reboots and power
# cuts: consumers dedupe on (device id, seq). Numbers are handed out from a
# block whose upper bound is persisted (state.py, atomic) BEFORE the first
# number in it is used; after a reboot counting resumes at that bound, so at
# most one block of numbers is skipped, none reused. The bound is kept in two
# files (path and path + ".b") so one corrupt file cannot rewind it.
from roadedge.core import state


class Seq:
    def __init__(self, path, block=256):
        if block < 1:
            raise ValueError("block must be >= 1")
        self.path = path
        self.block = block
        self.lost = False  # no readable reservation although one was expected
        start = 1
        seen = False
        for p in (path, path + ".b"):
            c0 = state.stats["corrupt"]
            v = state.read_json(p, None)
            if state.stats["corrupt"] != c0:
                self.lost = True
            if isinstance(v, dict) and type(v.get("limit")) is int:
                seen = True
                if v["limit"] > start:
                    start = v["limit"]
        if seen:
            self.lost = False
        self._next = start
        self._limit = start  # reserve on first use

    def _reserve(self):
        limit = self._next + self.block
        obj = {"limit": limit}
        # Both copies before use; a failure raises and no number is handed out.
        state.write_json(self.path, obj)
        state.write_json(self.path + ".b", obj)
        self._limit = limit

    def next(self):
        """The next number (int, > every number handed out before)."""
        if self._next >= self._limit:
            self._reserve()
        n = self._next
        self._next = n + 1
        return n

    def peek(self):
        """The number next() would return (for reports)."""
        return self._next
