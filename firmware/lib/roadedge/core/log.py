# Bounded on-device log: a fixed ring of (ts, level, msg) records, echoed to
# the console and handed to an optional sink (the app sets one that publishes
# to re/<id>/log). A failing sink is counted, never raised: logging must not
# take the device down.
LEVELS = "DIWE"
MAX_MSG = 200  # characters kept per message (RAM bound)


class Log:
    def __init__(self, capacity=32, level="I", echo=True, clock=None, sink=None):
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self.level = level
        self.echo = echo
        self.clock = clock  # anything with now_s(); ts is 0 until it is set
        self.sink = sink  # callable(rec) with rec = (ts, level, msg); the app sets it
        self.dropped = 0  # records overwritten in the ring
        self.sink_errors = 0
        self.counts = {"D": 0, "I": 0, "W": 0, "E": 0}
        self._ring = [(0, "I", "")] * capacity
        self._head = 0  # next slot to write
        self._n = 0
        self._in_sink = False

    def _ts(self):
        c = self.clock
        if c is None:
            return 0
        try:
            ts = c.now_s()
        except Exception:
            return 0
        return 0 if ts is None else ts

    def enabled(self, level):
        return LEVELS.find(level) >= LEVELS.find(self.level)

    def log(self, level, msg):
        if level not in LEVELS or len(level) != 1:
            level = "E"
        if not self.enabled(level):
            return
        if not isinstance(msg, str):
            msg = str(msg)
        if len(msg) > MAX_MSG:
            msg = msg[:MAX_MSG - 3] + "..."
        rec = (self._ts(), level, msg)
        if self._n == self.capacity:
            self.dropped += 1
        else:
            self._n += 1
        self._ring[self._head] = rec
        self._head = (self._head + 1) % self.capacity
        self.counts[level] += 1
        if self.echo:
            print("[%s] %s %s" % (rec[0], level, msg))
        sink = self.sink
        # A sink that logs (e.g. the MQTT client reporting its own trouble)
        # must not recurse into itself.
        if sink is not None and not self._in_sink:
            self._in_sink = True
            try:
                sink(rec)
            except Exception:
                self.sink_errors += 1
            finally:
                self._in_sink = False

    def debug(self, msg):
        self.log("D", msg)

    def info(self, msg):
        self.log("I", msg)

    def warn(self, msg):
        self.log("W", msg)

    def error(self, msg):
        self.log("E", msg)

    def exc(self, e, context=""):
        """Log an exception as an error: type and message, one line."""
        self.log("E", "%s%s: %s" % (context + ": " if context else "", type(e).__name__, e))

    def tail(self, n=None):
        """The newest n records (all kept ones by default), oldest first."""
        if n is None or n > self._n:
            n = self._n
        out = []
        start = (self._head - n) % self.capacity
        for i in range(n):
            out.append(self._ring[(start + i) % self.capacity])
        return out

    def __len__(self):
        return self._n
