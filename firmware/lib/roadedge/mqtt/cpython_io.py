# The MQTT client's socket calls on CPython (tests, in-process simulation),
# over asyncio streams. client.py imports it only there: a board works its
# non-blocking socket through asyncio's I/O queue instead (client._open,
# client._io) and never loads this code (issue 18: bytecode costs heap).
# The same calls as a MicroPython socket: readinto(buf) -> bytes read, 0 at
# EOF, None if nothing yet; write(data) -> bytes taken, None if none; close().
import asyncio

_HIGH = 65536  # bytes the transport may buffer before write() takes no more


class _Sock:
    def __init__(self, host, port, ctx, sni):
        self.a = (host, port, ctx, sni)
        self.r = self.w = self.f = None
        self.d = b""  # read from the stream, not yet taken by readinto
        self.eof = self.closed = False

    def readinto(self, buf):
        d = self.d
        if not d:
            return 0 if self.eof else None
        n = min(len(buf), len(d))
        buf[:n] = d[:n]
        self.d = d[n:]
        return n

    def write(self, data):
        if self.closed or self.w is None:
            raise OSError(9, "closed")
        if self.w.transport.get_write_buffer_size() > _HIGH:
            return None
        self.w.write(bytes(data))
        return len(data)

    def close(self):
        self.closed = True
        if self.w is not None:
            self.w.close()
        elif self.f is not None:
            self.f.cancel()


def _open(host, port, ctx, sni):
    """The connection is made by the first _io(s, 1), as a non-blocking connect completes."""
    return _Sock(host, port, ctx, sni)


async def _io(s, w):
    """Until s is readable (w false: data or EOF in s.d) or writable (connected, transport drained)."""
    if s.closed:
        raise OSError(9, "closed")
    if s.w is None:  # the writer's first call connects; the reader's waits for that
        if s.f is None:
            host, port, ctx, sni = s.a
            kw = {"ssl": ctx, "server_hostname": sni} if ctx else {}
            s.f = asyncio.ensure_future(asyncio.open_connection(host, port, **kw))
        try:
            s.r, s.w = await s.f
        except asyncio.CancelledError:
            if not s.closed:  # our own task cancelled, not the connect by close()
                raise
            raise OSError(9, "closed")
        if s.closed:
            s.w.close()
    elif w:
        await s.w.drain()
    elif not s.d and not s.eof:
        s.d = await s.r.read(4096)
        s.eof = not s.d
