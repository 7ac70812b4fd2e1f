# Bounded line splitting for UARTs: a line longer than maxlen is cut to
# maxlen (the rest up to the newline is discarded) and counted; at most
# `depth` complete lines wait for the reader, older ones are dropped and
# counted. Pure: fed bytes, returns lines, no I/O.


class LineSplitter:
    def __init__(self, maxlen=128, depth=8):
        self.maxlen = maxlen
        self.depth = depth
        self._cur = bytearray()
        self._skip = False
        self._lines = []
        self.cut = 0
        self.dropped = 0

    def feed(self, data):
        start = 0
        n = len(data)
        while start < n:
            i = data.find(b"\n", start)
            end = n if i < 0 else i + 1
            if not self._skip:
                room = self.maxlen - len(self._cur)
                take = end - start
                if take > room:
                    self._cur.extend(data[start:start + room])
                    self.cut += 1
                    self._push()
                    self._skip = True
                else:
                    self._cur.extend(data[start:end])
                    if i >= 0:
                        self._push()
            if i >= 0:
                self._skip = False
            start = end

    def _push(self):
        if len(self._lines) >= self.depth:
            self._lines.pop(0)
            self.dropped += 1
        self._lines.append(bytes(self._cur))
        self._cur = bytearray()

    def pop(self):
        """The oldest complete line (bytes, with its newline if it had one) or None."""
        if self._lines:
            return self._lines.pop(0)
        return None


class LineReader:
    """A UART as the roles see it: lines from a bounded LineSplitter (cut and
    dropped counted there). Each port's UART feeds self._sp in _more()."""

    def __init__(self, maxlen):
        self._sp = LineSplitter(maxlen, 8)

    @property
    def cut(self):
        return self._sp.cut

    @property
    def dropped(self):
        return self._sp.dropped

    async def readline(self):
        while True:
            line = self._sp.pop()
            if line is not None:
                return line
            await self._more()

    async def _more(self):
        """Wait until more bytes have been fed to self._sp (the port's part)."""
        raise NotImplementedError
