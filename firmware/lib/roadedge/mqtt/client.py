"""Resilient asyncio MQTT 3.1.1 client for MicroPython (also runs on CPython).

    c = MQTTClient("vsl-k012-n", "10.0.0.2", user="vsl-k012-n", password=pw,
                   will=("re/vsl-k012-n/status", b"offline", 1, True),
                   birth=("re/vsl-k012-n/status", b"online", 1, True))
    c.on_message = lambda topic, payload, retained: ...
    c.subscribe("re/vsl-k012-n/cmd/#", 1)
    asyncio.create_task(c.run())         # connection manager, until c.close()
    c.publish("re/vsl-k012-n/tele", b"{...}")   # never blocks

Tasks: run() is the writer and connection manager; it starts one reader task
and one clock task that live as long as run() does and serve every
connection in turn. The clock wakes the writer every tick and holds the
deadlines: a session past one is ended by closing its socket, which wakes
whatever waits on it. The reader looks for a new session's socket every
10 ms (no Event kept for that). Every socket operation is under a deadline,
except name resolution on MicroPython (synchronous there: configure brokers
by IP address on boards).

I/O: on MicroPython the client works the non-blocking socket (or TLS
socket) itself: it waits for readable/writable in asyncio's own I/O queue
(_io, what asyncio's stream module does inside) and calls readinto/write
directly, so the stream module is never loaded. CPython gets the same calls
from mqtt/cpython_io.py (asyncio streams), which a board never imports.

Timings (keepalive k s): PINGREQ at least every k/2 s; nothing at all from
the broker for k s (a live broker answers each ping at once) = link dead,
noticed within k s + one tick (min(k/4, 1 s)), inside the 1.5 k bound
(bench/mqtt measures it). Connecting (TCP/TLS + CONNACK) is bounded by
connect_timeout_ms, a write the socket does not take by write_timeout_ms
(each to within a tick).

QoS 1: at most `window` PUBLISHes await a PUBACK; one unacknowledged for
ack_timeout_ms is resent with DUP (stats["retransmits"]); after a reconnect
every unacknowledged one is resent first, in order. At-least-once: consumers
dedupe. Reconnect: exponential backoff backoff_ms[0] .. backoff_ms[1], jitter
in the upper half of each step, from the bottom again after a CONNACK.

Link gate: set_link(False) (the device's radio lost the network) drops the
session at once, closing its socket (stats["link_down"]); no connection is tried until
set_link(True); the queue is kept.

Outbound queue (queue_size slots, QoS 0 and 1, kept across reconnects):
1. not full: accepted (publish() returns True);
2. full, new message QoS 1: the OLDEST QUEUED QoS 0 is evicted
   (stats["dropped"], stats["evicted"]) and the new one accepted;
3. otherwise the NEW message is refused (False; "dropped", "refused").
Over max_packet: refused ("too_large"). Producers that must lose nothing
await wait_space() first.

Memory pressure (issue 18): a MemoryError anywhere in a session drops it and
counts stats["mem_errors"] and oom_streak (consecutive, reset by the next
PUBACK or PINGRESP); a MemoryError in an app callback is counted the same way
(and in "cb_errors") but keeps the session: a reconnect needs more memory, not
less. From _OOM_SHED (2) in a row the client sheds what QoS 0 promises no delivery
of: new QoS 0 publishes are refused and every queued QoS 0 (oldest first)
dropped, each counted in stats["shed"] (and "dropped"); queued or
unacknowledged QoS 1 is never shed. From _OOM_WEDGED (5) in a row wedged() is
true: the device app then reports unhealthy and its watchdog resets the board.
A reconnect allocates no large block, so a heap cut into small holes still
carries it: the coroutines of a session (run's, the reader's, the clock's)
are made once, at run(), the socket is opened by a plain function (no
open_connection coroutine, 248 bytes), and a packet is encoded and written
in one synchronous step (_send; the coroutine _wait only when the socket or
the reader holds it up); what a new session costs is a socket and a few
small objects. Before, every session called fresh coroutines of 200-330
bytes and a fragmented heap refused every reconnect for good (issue 18; the
"fragmented" case in tests/test_mqtt_client.py).

Broker input is untrusted: a truncated, oversized, malformed or
out-of-protocol packet closes the connection (stats["malformed"]) and
reconnects; nothing raises out of run().

Birth and will: `will` goes in CONNECT; `birth` is published after every
CONNACK, behind the session's SUBSCRIBEs (so "online" means commands are
heard) and before the resent backlog; close() publishes the will itself
before DISCONNECT, since a clean DISCONNECT suppresses it.

RAM: one max_packet buffer serves both ways: the socket reads straight into
it and the reader frames packets there (max_packet bounds an incoming packet,
its header included); what is not whole yet is moved to the front and held,
and the writer encodes behind it (encode and write are one synchronous step,
what the socket does not take is copied out, so they never overlap).
Parallel rings for queue and window; settings in two tuples (an attribute
each costs heap). A PUBLISH leaves in one write: written as header then
payload, Nagle held the payload until the broker's delayed ACK and QoS 1
throughput collapsed (commit 9aa1234).
"""
import asyncio
from random import getrandbits

from roadedge.core.compat import IS_MICROPYTHON, const, ticks_ms, ticks_diff, sleep_ms, gc_collect
from roadedge.mqtt import packet as pk

# packet types (the codec's, as private consts: no heap)
_CONNACK = const(2)
_PUBLISH = const(3)
_PUBACK = const(4)
_SUBACK = const(9)
_PINGRESP = const(13)
_OOM_SHED = const(2)  # MemoryErrors in a row before QoS 0 is shed
_OOM_WEDGED = const(5)  # ... before wedged(): the watchdog's turn (private consts: no heap)

_STATS = ("connects", "disconnects", "conn_fail", "refused_connack", "published", "acked", "dropped",
          "evicted", "refused", "too_large", "shed", "mem_errors", "retransmits", "malformed",
          "received", "pings", "cb_errors", "sub_failed", "link_down")

if IS_MICROPYTHON:
    import socket
    from asyncio import core as _core  # type: ignore[attr-defined]

    def _open(host, port, ctx, sni):
        """A non-blocking socket connecting to the broker (TLS-wrapped with
        ctx): no coroutine, no stream object (issue 18)."""
        ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
        s = socket.socket(ai[0], ai[1], ai[2])
        s.setblocking(False)
        try:
            s.connect(ai[-1])
        except OSError as e:
            from errno import EINPROGRESS

            if e.errno != EINPROGRESS:
                s.close()
                raise
        if ctx:
            s = ctx.wrap_socket(s, server_hostname=sni, do_handshake_on_connect=False)
            s.setblocking(False)
        return s

    def _io(s, w):
        """Await s readable (w false) or writable: asyncio's own I/O queue,
        as its stream module does it."""
        yield _core._io_queue.queue_write(s) if w else _core._io_queue.queue_read(s)
else:
    from roadedge.mqtt.cpython_io import _open, _io  # type: ignore[assignment] # noqa: F401 - CPython's streams


class MQTTClient:
    def __init__(self, client_id, host, port=1883, user=None, password=None, keepalive=30,
                 tls=False, ca=None, clean=True, will=None, birth=None, queue_size=32, window=4,
                 max_packet=4096, backoff_ms=(500, 30000), ack_timeout_ms=10000,
                 connect_timeout_ms=None, write_timeout_ms=None, server_hostname=None):
        if not client_id or queue_size < 1 or window < 1 or not 2 <= keepalive <= 65535:
            raise ValueError("client_id, sizes >= 1, keepalive 2..65535")
        ka = keepalive * 1000
        self._conn = (host, port, tls, ca, server_hostname or host, client_id, clean, user, password, keepalive,
                      will, birth)
        # ms: backoff floor and cap, ack timeout, connect and write deadlines, keepalive
        self._ms = (backoff_ms[0], backoff_ms[1], ack_timeout_ms, connect_timeout_ms or min(ka, 15000),
                    write_timeout_ms or min(ka, 15000), ka)
        self.on_message = self.on_connect = self.on_disconnect = None
        self.stats = dict.fromkeys(_STATS, 0)
        self.last_error = ""
        self.oom_streak = 0
        # Outbound queue ring: topic bytes, payload, flags (bit 0 QoS 1, bit 1 retain).
        self._qt = [b""] * queue_size
        self._qp = [b""] * queue_size
        self._qf = bytearray(queue_size)
        self._qh = self._qn = 0
        # QoS 1 in flight ring: packet id (0 = acked), topic, payload, flags, sent ticks.
        self._wid = [0] * window
        self._wt = [b""] * window
        self._wp = [b""] * window
        self._wf = bytearray(window)
        self._ws = [0] * window
        self._wh = self._wn = self._pid = 0
        self._subs = []  # [topic, qos, sent on this connection]
        self._tc = (None, b"")  # last topic and its bytes: one object for a stream of messages
        self._buf = bytearray(max_packet)
        self._n = 0  # the broker's bytes held at _buf's start (the reader's)
        self._wake = asyncio.Event()  # the writer: publish, packet in, tick, close...
        self._space = asyncio.Event()  # a queue slot came free
        self._s = self._rest = self._fail = self._connack = None
        self._closed = self._on = False  # _on: connected (a CONNACK accepted us)
        self._link = True  # the network link is up (set_link)
        self._last_rx = self._last_ping = self._wt0 = 0

    # --- public API --------------------------------------------------------

    def is_connected(self):
        return self._on

    def wedged(self):
        """True after _OOM_WEDGED MemoryErrors in a row: only a reset helps."""
        return self.oom_streak >= _OOM_WEDGED

    async def wait_connected(self, timeout_ms=None):
        """True once connected (at once if already); False on timeout."""
        t0 = ticks_ms()
        while not self._on and (timeout_ms is None or ticks_diff(ticks_ms(), t0) < timeout_ms):
            await sleep_ms(20)  # (polled: no Event to keep, no wait_for task)
        return self._on

    def queued(self):
        """Messages waiting to be sent (not counting those in flight)."""
        return self._qn

    def in_flight(self):
        return self._wn

    async def wait_space(self):
        """Wait until publish() would be accepted without dropping anything."""
        while self._qn >= len(self._qt):
            self._space.clear()
            await self._space.wait()

    def subscribe(self, topic, qos=1):
        """Remember a subscription; (re)sent on every connect. QoS capped at 1."""
        for s in self._subs:
            if s[0] == topic:
                self._subs.remove(s)
                break
        self._subs.append([topic, 1 if qos else 0, False])
        self._wake.set()

    def publish(self, topic, payload, qos=0, retain=False):
        """Queue a message; never blocks. False = refused (see the drop policy)."""
        if self._closed:
            return False
        if qos not in (0, 1):
            raise ValueError("qos")
        if isinstance(payload, str):
            payload = payload.encode()
        tn, tb = self._tc
        if topic != tn:
            tb = topic.encode() if isinstance(topic, str) else bytes(topic)
            if not tb or b"+" in tb or b"#" in tb:
                raise ValueError("topic")
            self._tc = (topic, tb)
        cap = len(self._qt)
        why = None
        if pk.publish_size(len(tb), len(payload), qos) > len(self._buf):
            why = "too_large"
        elif not qos and self.oom_streak >= _OOM_SHED:
            why = "shed"
        elif self._qn >= cap and (not qos or not self._evict("evicted")):
            why = "refused"
        if why:
            self.stats[why] += 1
            self.stats["dropped"] += 1
            return False
        i = (self._qh + self._qn) % cap
        self._qt[i] = tb
        self._qp[i] = payload
        self._qf[i] = qos | (2 if retain else 0)
        self._qn += 1
        self._wake.set()
        return True

    def close(self):
        """Stop: publish the will as a farewell, DISCONNECT, and let run() return."""
        self._closed = True
        self._wake.set()

    def set_link(self, up):
        """The network link under the client went down or came back. Down: the
        session is dropped at once and no connection tried until it is back;
        what is published meanwhile stays queued."""
        if not up:
            if self._link:
                self.stats["link_down"] += 1
                self._fail = Exception("link down")
                if self._s is not None:
                    self._s.close()  # wakes whoever waits on it
                self._wake.set()
        self._link = up

    async def run(self):
        """Connection manager and writer: connect, serve, reconnect with
        backoff, until close(). One coroutine for every session (see RAM in
        the module header): a session allocates no coroutine of its own."""
        c = self._conn
        stats = self.stats
        wake = self._wake
        qt, qp, qf = self._qt, self._qp, self._qf
        wid, ws = self._wid, self._ws
        cap, wcap = len(qt), len(wid)
        tasks = (asyncio.create_task(self._reader()), asyncio.create_task(self._clock()))
        attempt = 0
        try:
            while not self._closed:
                if not self._link:
                    attempt = 0  # a fresh link: start the backoff from the bottom
                    await sleep_ms(50)
                    continue
                reached = False
                reason = "closed"
                try:
                    self._fail = self._connack = None
                    ctx = None
                    if c[2]:  # TLS, rarely used: its code is loaded only then
                        from roadedge.mqtt.tls import context

                        ctx = context(c[3])
                    self._last_rx = self._last_ping = ticks_ms()  # (_last_ping: also when connecting began)
                    s = self._s = _open(c[0], c[1], ctx, c[4])
                    await _io(s, 1)  # type: ignore[misc] # connected (or failed: the first write says which)
                    while not self._send(0):
                        await self._wait()
                    while self._connack is None:  # the reader sets it
                        await self._wait()  # (a TLS handshake keeps CONNECT in _rest)
                    sp, rc = self._connack  # type: ignore[misc]
                    if rc:  # checked before _fail: a broker refusing us closes the socket at once
                        stats["refused_connack"] += 1
                        raise Exception("refused: rc %d" % rc)
                    if self._fail:
                        raise self._fail
                    reached = True
                    attempt = 0
                    stats["connects"] += 1
                    self._on = True
                    for s in self._subs:
                        s[2] = False
                    self._callback(self.on_connect, sp)
                    born = not self._conn[11]
                    every = True  # first: everything unacknowledged, oldest first, with DUP
                    while True:
                        for s in self._subs:
                            if not s[2]:
                                s[2] = True
                                pid = self._next_pid()
                                while not self._send(8, s[0], s[1], 0, pid):
                                    await self._wait()
                        if not born:
                            # Behind the SUBSCRIBEs: the broker takes a client's packets in
                            # order, so whoever sees "online" can command the device at once.
                            born = True
                            while not self._send(1, self._conn[11]):  # type: ignore[arg-type]
                                await self._wait()
                        # Resend (DUP) unacked messages in order: all, or those past
                        # ack_timeout_ms.
                        h = self._wh
                        for i in range(self._wn):
                            j = (h + i) % wcap  # (slots stay put: a PUBACK zeroes one, only we add)
                            pid = wid[j]
                            if pid and (every or ticks_diff(ticks_ms(), ws[j]) >= self._ms[2]):
                                ws[j] = ticks_ms()
                                stats["retransmits"] += 1
                                tb, p, f = self._wt[j], self._wp[j], self._wf[j] | 4
                                while not self._send(3, tb, p, f, pid):
                                    await self._wait()
                        every = False
                        if self._fail:
                            raise self._fail
                        if self._closed:
                            try:
                                if self._conn[10]:
                                    while not self._send(1, self._conn[10]):  # type: ignore[arg-type]
                                        await self._wait()
                                while not self._send(None, b"\xe0\x00"):
                                    await self._wait()
                                while self._rest:  # all of it out before the socket closes
                                    await self._wait()
                            except Exception:  # noqa: BLE001 - best effort on the way out
                                pass
                            break
                        # Up to one window's worth from the queue.
                        sent = 0
                        while self._qn and sent < wcap:
                            i = self._qh
                            f = qf[i]
                            if f & 1 and self._wn >= wcap:
                                break
                            tb, p = qt[i], qp[i]
                            pid = 0
                            if f & 1:
                                pid = self._next_pid()
                                j = (self._wh + self._wn) % wcap
                                wid[j], self._wt[j], self._wp[j], self._wf[j], ws[j] = pid, tb, p, f, ticks_ms()
                                self._wn += 1
                            # Off the queue before the await: a failed send leaves a QoS 1
                            # message in the window (resent on reconnect); a QoS 0 one is
                            # gone, as QoS 0 promises no more.
                            qt[i] = qp[i] = b""
                            self._qh = (i + 1) % cap
                            self._qn -= 1
                            self._space.set()
                            while not self._send(3, tb, p, f, pid):
                                await self._wait()
                            stats["published"] += 1
                            sent += 1
                        if ticks_diff(ticks_ms(), self._last_ping) >= self._ms[5] // 2:
                            self._last_ping = ticks_ms()
                            while not self._send(None, b"\xc0\x00"):
                                await self._wait()
                            stats["pings"] += 1
                        if self._qn and (not qf[self._qh] & 1 or self._wn < wcap):
                            await sleep_ms(0)  # more could go now; fairness: the device's other tasks run
                        elif self._rest:
                            await self._wait()  # the socket takes the rest first
                        else:
                            await wake.wait()  # publish, packet in, tick, close...
                            wake.clear()
                except Exception as e:  # noqa: BLE001 - whatever ends a session: reconnect
                    if not isinstance(e, MemoryError):
                        e = self._fail or e  # the first cause (the reader's, the clock's) over its echo
                    if isinstance(e, MemoryError):
                        reason = "MemoryError"
                        self._oom()
                    elif isinstance(e, pk.MalformedPacket):
                        stats["malformed"] += 1
                        reason = "malformed: %s" % e
                    elif type(e) is Exception:  # ours: the reason given (link down, refused, silent...)
                        reason = e.args[0]
                    else:
                        reason = "%s: %s" % (type(e).__name__, e)
                finally:
                    # the session's end (also when run() is cancelled): close its
                    # socket, which wakes whoever waits on it (the reader then
                    # stands by for the next one)
                    self._on = False
                    s = self._s
                    self._s = self._rest = None
                    self._n = self._wt0 = 0
                    if s is not None:
                        try:
                            s.close()
                        except Exception:  # noqa: BLE001 - closing a broken socket may fail either way
                            pass
                try:
                    self.last_error = reason
                    if reached:
                        stats["disconnects"] += 1
                        self._callback(self.on_disconnect, reason)
                    else:
                        stats["conn_fail"] += 1
                except MemoryError:  # (a callback's is handled in _callback)
                    self._oom()
                if self._closed:
                    break
                step = min(self._ms[1], self._ms[0] << min(attempt, 16))
                attempt += 1
                # jitter in the upper half; slept in slices so close() and a
                # lost link are seen at once
                t0 = ticks_ms()
                step -= getrandbits(16) * (step // 2) >> 16
                while not self._closed and self._link and ticks_diff(ticks_ms(), t0) < step:
                    await sleep_ms(min(50, step))
        finally:
            for t in tasks:
                t.cancel()

    # --- memory ------------------------------------------------------------

    def _oom(self):
        """A MemoryError (a PUBACK or PINGRESP, proof the session works, resets the streak)."""
        self.stats["mem_errors"] += 1
        self.oom_streak += 1
        self.last_error = "MemoryError"
        if self.oom_streak >= _OOM_SHED:
            self._evict("shed", True)
        gc_collect()

    def _evict(self, why, every=False):
        """Drop the oldest queued QoS 0 message (every one if every), the rest
        keeping their order; True if any."""
        qt, qp, qf = self._qt, self._qp, self._qf
        cap = len(qt)
        h = self._qh
        n = self._qn
        k = 0  # kept
        for i in range(n):
            a = (h + i) % cap
            if qf[a] & 1 or k < i and not every:  # QoS 1, or behind the one dropped
                b = (h + k) % cap
                qt[b], qp[b], qf[b] = qt[a], qp[a], qf[a]
                k += 1
        for i in range(k, n):
            a = (h + i) % cap
            qt[a] = qp[a] = b""
        self._qn = k
        n -= k
        self.stats[why] += n
        self.stats["dropped"] += n
        if n:
            self._space.set()
        return n > 0

    # --- session -----------------------------------------------------------

    async def _clock(self):
        """Every tick wakes the writer, and ends a session past a deadline by
        closing its socket (which wakes what waits on it): no CONNACK within
        connect_timeout_ms, nothing from the broker for keepalive, a write
        the socket has not taken for write_timeout_ms."""
        conn, wr, ka = self._ms[3:]
        while True:
            await sleep_ms(min(ka // 4, 1000))
            s = self._s
            if s is not None and not self._fail:
                now = ticks_ms()
                why = None
                if not self._on:
                    if ticks_diff(now, self._last_ping) > conn:  # (no ping before the CONNACK)
                        why = "connect timeout"
                elif ticks_diff(now, self._last_rx) > ka:
                    why = "broker silent for %d s" % (ka // 1000)
                if self._wt0 and ticks_diff(now, self._wt0) > wr:
                    why = "write timeout"
                if why:
                    self._fail = Exception(why)
                    s.close()
            self._wake.set()

    def _send(self, kind, t=b"", p=b"", f=0, pid=0):
        """Encode and write a packet in one synchronous step (no coroutine per
        packet: a fragmented heap may hold no block for one, issue 18), into
        the shared buffer behind the broker's bytes the reader holds: kind 0
        CONNECT, 1 birth or will (t: topic, payload, qos, retain), 3 PUBLISH
        (topic and payload bytes, flags: bit 0 QoS 1, bit 1 retain, bit 2 DUP;
        pid), 8 SUBSCRIBE (topic, qos, -, pid); None writes t as it is. What
        the socket does not take waits in _rest (a copy: the buffer is free
        again at once). False = not now (earlier bytes still wait, or no room
        behind the reader's): await _wait() and call again."""
        if self._rest:
            return False
        if kind is not None:
            if kind == 1:
                t, p, q, rt = t
                t, p, f = pk._b(t), pk._b(p), (1 if q else 0) | (2 if rt else 0)
                pid = self._next_pid() if q else 0  # (not in the window: never resent)
                kind = 3
            buf = self._buf
            held = self._n
            if held + (pk.publish_size(len(t), len(p), f & 1) if kind == 3 else len(buf)) > len(buf):
                return False
            mv = memoryview(buf)[held:]
            if kind == 3:
                n = pk.encode_publish(mv, t, p, f & 1, f & 2, f & 4, pid)
            elif kind:
                n = pk.encode_subscribe(mv, pid, ((t, p),))
            else:
                c = self._conn
                n = pk.encode_connect(mv, c[5], c[9], c[6], c[7], c[8], c[10])
            t = mv[:n]
        n = self._s.write(t) or 0  # type: ignore[union-attr]
        if n < len(t):
            self._rest = bytes(t[n:])
        return True

    async def _wait(self):
        """Until a _send() can go: the socket takes what waits in _rest (the
        clock bounds it: write_timeout_ms) or a wake (the reader freed the
        room, a packet came in, a tick). Raises what ended the session. (A
        coroutine per call: only when the socket or the reader holds us up.)"""
        if self._fail:
            raise self._fail
        r = self._rest
        if r:
            self._wt0 = ticks_ms() or 1
            await _io(self._s, 1)  # type: ignore[misc]
            self._wt0 = 0
            n = self._s.write(r) or 0  # type: ignore[union-attr]
            self._rest = r[n:] if n < len(r) else None
        else:
            await self._wake.wait()
            self._wake.clear()

    def _next_pid(self):
        while True:
            self._pid = self._pid % 65535 + 1
            if self._pid not in self._wid:
                return self._pid

    # --- reading -----------------------------------------------------------

    async def _reader(self):
        """Frames and handles what the broker sends, for each session's socket
        in turn (a new one in _s: looked for every 10 ms, no Event kept for
        it); a failure goes to the writer in _fail.
        The broker's bytes are read straight into the shared buffer: the _n
        at its start are held (a packet not yet whole), the writer encodes
        behind them."""
        buf = self._buf
        mv = memoryview(buf)
        cap = len(buf)
        wid = self._wid
        stats = self.stats
        last = None
        while True:
            s = self._s
            if s is None or s is last:
                await sleep_ms(10)
                continue
            last = s
            self._n = 0
            try:
                while True:
                    await _io(s, 0)  # type: ignore[misc]
                    if s is not self._s:
                        break  # the session ended while we waited
                    n = self._n
                    got = s.readinto(mv[n:] if n else buf)
                    if got is None:
                        continue  # TLS: readable, but no whole record yet (handshake)
                    if not got:
                        if n:
                            raise pk.MalformedPacket("truncated")
                        raise Exception("connection closed by broker")
                    self._last_rx = ticks_ms()
                    n += got
                    self._n = n  # all of it held while its packets are handled
                    p = 0
                    while p < n:
                        b = buf[p]
                        kind = b >> 4
                        # (a type a broker does not send fails in parse)
                        if (b & 6) == 6 if kind == _PUBLISH else b & 15:
                            raise pk.MalformedPacket("header 0x%x" % b)
                        i = p + 1
                        rem = sh = 0
                        while i < n:
                            b = buf[i]
                            i += 1
                            rem |= (b & 127) << sh
                            sh += 7
                            if not b & 128:
                                break
                            if sh > 21:
                                raise pk.MalformedPacket("length")
                        else:
                            break  # the length is not whole yet
                        if i - p + rem > cap:
                            raise pk.MalformedPacket("too large: %d > %d" % (i - p + rem, cap))
                        if i + rem > n:
                            break  # nor the body
                        if self._connack is None and kind != _CONNACK:
                            raise pk.MalformedPacket("not CONNACK first")
                        v = pk.parse(kind, buf[p] & 15, mv[i:i + rem])
                        p = i + rem
                        pid = 0
                        if kind == _CONNACK:
                            if self._connack is not None:
                                raise pk.MalformedPacket("second CONNACK")
                            self._connack = v
                        elif kind == _PUBLISH:
                            if v[2] == 2:  # type: ignore[index]
                                raise pk.MalformedPacket("QoS 2")  # we never subscribe above 1
                            stats["received"] += 1
                            self._callback(self.on_message, v[0], bytes(v[1]), v[3])  # type: ignore[index]
                            pid = v[5]  # type: ignore[index]
                        elif kind == _SUBACK:
                            stats["sub_failed"] += v[1].count(0x80)  # type: ignore[index]
                        elif kind == _PUBACK and v in wid:
                            j = wid.index(v)
                            wid[j] = 0
                            self._wt[j] = self._wp[j] = b""
                            stats["acked"] += 1
                            while self._wn and not wid[self._wh]:
                                self._wh = (self._wh + 1) % len(wid)
                                self._wn -= 1
                        # (a PUBACK for an id not in flight: a late duplicate, harmless)
                        if kind == _PUBACK or kind == _PINGRESP:
                            self.oom_streak = 0  # the session works: memory pressure over
                        self._wake.set()
                        if pid:
                            # PUBACK in one synchronous write, never inside another
                            # packet's bytes: not while the writer's wait in _rest
                            # (its 4 bytes a fresh object: incoming QoS 1 are rare commands)
                            a = bytes((0x40, 2, pid >> 8, pid & 255))  # type: ignore[operator]
                            while not self._send(None, a):
                                await sleep_ms(1)
                                if s is not self._s:
                                    raise Exception("")
                    if p:  # what is not whole yet moves to the front
                        n -= p
                        mv[:n] = mv[p:p + n]
                        self._n = n
            except Exception as e:  # noqa: BLE001 - handed to the writer loop, which reconnects
                if s is self._s and not self._fail:
                    self._fail = e
                    self._wake.set()

    def _callback(self, cb, *args):
        if cb is not None:
            try:
                cb(*args)
            except MemoryError:
                # the app's own allocation failed: counted, but the session is
                # kept (a reconnect would need more memory, not less)
                self.stats["cb_errors"] += 1
                self._oom()
            except Exception as e:  # noqa: BLE001 - a callback bug must not kill the link
                self.stats["cb_errors"] += 1
                self.last_error = "callback: %r" % (e,)
