# Edge queue: a pin IRQ stamps ticks_ms into a fixed ring, a task awaits them.
# stamp() is ISR-safe: no allocation (small ints only, preallocated array),
# single producer (the ISR) writes only _w, single consumer (get) writes only
# _r, so no lock is needed. Indices run modulo 2*capacity to tell full from empty.
from array import array

from roadedge.core.compat import ThreadSafeFlag, ticks_diff


class EdgeQueue:
    def __init__(self, capacity=16, debounce_ms=0):
        if capacity < 1:
            raise ValueError("edge queue capacity must be >= 1")
        self._cap = capacity
        self._mod = 2 * capacity
        self._ring = array("i", [0] * capacity)
        self._w = 0
        self._r = 0
        self._deb = debounce_ms
        self._last = 0
        self._seen = False
        self._flag = ThreadSafeFlag()
        self.dropped = 0
        self.bounced = 0

    def stamp(self, t):
        """Record an edge at ticks t (called from the ISR or the sim link)."""
        if self._deb and self._seen and ticks_diff(t, self._last) < self._deb:
            self.bounced += 1
            return
        self._last = t
        self._seen = True
        if (self._w - self._r) % self._mod >= self._cap:
            self.dropped += 1
            return
        self._ring[self._w % self._cap] = t
        self._w = (self._w + 1) % self._mod
        self._flag.set()

    def pending(self):
        return (self._w - self._r) % self._mod

    def get_nowait(self):
        """ticks of the oldest edge, or None."""
        if self._w == self._r:
            return None
        t = self._ring[self._r % self._cap]
        self._r = (self._r + 1) % self._mod
        return t

    async def get(self):
        """Wait for the next edge; returns its ticks_ms."""
        while True:
            t = self.get_nowait()
            if t is not None:
                return t
            await self._flag.wait()
