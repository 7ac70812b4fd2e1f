"""Resilient asyncio MQTT 3.1.1 client for MicroPython (also runs on CPython).

    c = MQTTClient("vsl-k012-n", "10.0.0.2", user="vsl-k012-n", password=pw,
                   will=("re/vsl-k012-n/status", b"offline", 1, True),
                   birth=("re/vsl-k012-n/status", b"online", 1, True))
    c.on_message = lambda topic, payload, retained: ...
    c.subscribe("re/vsl-k012-n/cmd/#", 1)
    asyncio.create_task(c.run())         # connection manager, until c.close()
    c.publish("re/vsl-k012-n/tele", b"{...}")   # never blocks

Tasks: run() is the writer and connection manager; it starts one reader task
and one clock task (wakes the writer every tick) that live as long as run()
does and serve every connection in turn. Every socket operation is under a
deadline, except name resolution on MicroPython (synchronous there:
configure brokers by IP address on boards).

Timings (keepalive k s): PINGREQ at least every k/2 s; nothing at all from
the broker for k s (a live broker answers each ping at once) = link dead,
noticed within k s + one tick (min(k/4, 1 s)), inside the 1.5 k bound
(bench/mqtt measures it). Connecting (TCP/TLS + CONNACK) is bounded by
connect_timeout_ms, every write by write_timeout_ms.

QoS 1: at most `window` PUBLISHes await a PUBACK; one unacknowledged for
ack_timeout_ms is resent with DUP (stats["retransmits"]); after a reconnect
every unacknowledged one is resent first, in order. At-least-once: consumers
dedupe. Reconnect: exponential backoff backoff_ms[0] .. backoff_ms[1], jitter
in the upper half of each step, from the bottom again after a CONNACK.

Link gate: set_link(False) (the device's radio lost the network) drops the
session at once (stats["link_down"]); no connection is tried until
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
less. From OOM_SHED in a row the client sheds what QoS 0 promises no delivery
of: new QoS 0 publishes are refused and every queued QoS 0 (oldest first)
dropped, each counted in stats["shed"] (and "dropped"); queued or
unacknowledged QoS 1 is never shed. From OOM_WEDGED in a row wedged() is
true: the device app then reports unhealthy and its watchdog resets the board.
A reconnect allocates no large block, so a heap cut into small holes still
carries it: the coroutines of a session (run's, the reader's, the clock's)
are made once, at run(), and on MicroPython the client connects its own
non-blocking socket rather than through open_connection (whose coroutine is
248 bytes), and a packet is encoded and written in one synchronous step
(_send; the coroutine _put, 232 bytes a call, only when it has to wait for
room or a backlog); what a new session costs is a socket, its stream and a
few small objects. Before, every session called fresh coroutines of 200-330 bytes and a
fragmented heap refused every reconnect for good (issue 18; the "fragmented"
case in tests/test_mqtt_client.py).

Broker input is untrusted: a truncated, oversized, malformed or
out-of-protocol packet closes the connection (stats["malformed"]) and
reconnects; nothing raises out of run().

Birth and will: `will` goes in CONNECT; `birth` is published after every
CONNACK, behind the session's SUBSCRIBEs (so "online" means commands are
heard) and before the resent backlog; close() publishes the will itself
before DISCONNECT, since a clean DISCONNECT suppresses it.

RAM: one max_packet buffer serves both ways (the reader frames an incoming
packet at its start, the writer encodes behind it: encode and write are one
synchronous step, so they never overlap), a 128-byte read chunk, parallel
rings for queue and window; settings in two tuples (an attribute each costs
heap). A PUBLISH leaves in one write: written as header then payload, Nagle
held the payload until the broker's delayed ACK and QoS 1 throughput
collapsed (commit 9aa1234).
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
OOM_SHED = const(2)  # MemoryErrors in a row before QoS 0 is shed
OOM_WEDGED = const(5)  # ... before wedged(): the watchdog's turn

_STATS = ("connects", "disconnects", "conn_fail", "refused_connack", "published", "acked", "dropped",
          "evicted", "refused", "too_large", "shed", "mem_errors", "retransmits", "malformed",
          "received", "pings", "cb_errors", "sub_failed", "errors", "link_down")


def _wait_ms(aw, ms):
    if IS_MICROPYTHON:
        return asyncio.wait_for_ms(aw, ms)  # type: ignore[attr-defined]
    return asyncio.wait_for(aw, ms / 1000)


# MicroPython's asyncio has one Stream class that reads and writes (its stubs
# know it only as StreamReader): the client's own connect wraps the socket in it.
_Stream = getattr(asyncio, "StreamReader")


class _Drop(Exception):
    """The session ends for the reason given (link down, refused, silent...)."""


class MQTTClient:
    def __init__(self, client_id, host, port=1883, user=None, password=None, keepalive=30,
                 tls=False, ca=None, clean=True, will=None, birth=None, queue_size=32, window=4,
                 max_packet=4096, backoff_ms=(500, 30000), ack_timeout_ms=10000,
                 connect_timeout_ms=None, write_timeout_ms=None, server_hostname=None):
        if not client_id or queue_size < 1 or window < 1 or not 2 <= keepalive <= 65535:
            raise ValueError("client_id, sizes >= 1, keepalive 2..65535")
        ka = keepalive * 1000
        self._conn = (host, port, tls, ca, server_hostname or host, client_id, clean, user, password, keepalive)
        # ms: backoff floor and cap, ack timeout, connect and write deadlines, keepalive
        self._ms = (backoff_ms[0], backoff_ms[1], ack_timeout_ms, connect_timeout_ms or min(ka, 15000),
                    write_timeout_ms or min(ka, 15000), ka)
        self.will = will
        self.birth = birth
        self.on_message = self.on_connect = self.on_disconnect = None
        self.stats = {k: 0 for k in _STATS}
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
        self._tn, self._tb = None, b""  # last topic and its bytes: one object for a stream of messages
        self._buf = bytearray(max_packet)
        self._dec = pk.Decoder(self._buf)
        self._chunk = bytearray(128)
        self._ack = bytearray(b"\x40\x02\x00\x00")  # PUBACK
        self._wake = asyncio.Event()  # the writer: publish, packet in, tick, close...
        self._space = asyncio.Event()  # a queue slot came free
        self._up = asyncio.Event()  # connected
        self._rx = asyncio.Event()  # the reader: a new session's stream is in _r
        self._r = self._w = self._fail = self._connack = None
        self._closed = False
        self._link = True  # the network link is up (set_link)
        self._last_rx = self._last_ping = 0

    # --- public API --------------------------------------------------------

    def is_connected(self):
        return self._up.is_set()

    def wedged(self):
        """True after OOM_WEDGED MemoryErrors in a row: only a reset helps."""
        return self.oom_streak >= OOM_WEDGED

    async def wait_connected(self, timeout_ms=None):
        """True once connected (at once if already); False on timeout."""
        up = self._up
        t0 = ticks_ms()
        while not up.is_set():
            if timeout_ms is None:
                await up.wait()
                break
            left = timeout_ms - ticks_diff(ticks_ms(), t0)
            if left <= 0:
                break
            await sleep_ms(min(left, 20))  # (no wait_for: it allocates a task)
        return up.is_set()

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
        if topic == self._tn:
            tb = self._tb
        else:
            tb = topic.encode() if isinstance(topic, str) else bytes(topic)
            if not tb or b"+" in tb or b"#" in tb:
                raise ValueError("topic")
            self._tn, self._tb = topic, tb
        if pk.publish_size(len(tb), len(payload), qos) > len(self._buf):
            return self._drop("too_large")
        if not qos and self.oom_streak >= OOM_SHED:
            return self._drop("shed")
        cap = len(self._qt)
        if self._qn >= cap and (not qos or not self._evict("evicted")):
            return self._drop("refused")
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
                self._fail = _Drop("link down")
                self._wake.set()
        self._link = up

    async def run(self):
        """Connection manager and writer: connect, serve, reconnect with
        backoff, until close(). One coroutine for every session (see RAM in
        the module header): a session allocates no coroutine of its own."""
        host, port, tls, ca, sni, cid, clean, user, pw, ka_s = self._conn
        lo, hi, ack_ms, conn_ms, _wr, ka = self._ms
        stats = self.stats
        wake = self._wake
        qt, qp, qf = self._qt, self._qp, self._qf
        wid, wt, wp, wf, ws = self._wid, self._wt, self._wp, self._wf, self._ws
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
                    self._dec.reset()
                    ctx = None
                    if tls:  # rarely used: its code is loaded only then
                        from roadedge.mqtt.tls import context

                        ctx = context(ca)
                    if IS_MICROPYTHON:
                        # Connected here, not by open_connection: its coroutine
                        # (248 B) was the block a fragmented heap no longer had.
                        # A non-blocking connect, polled for writability.
                        import socket
                        import select
                        from errno import EINPROGRESS

                        ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
                        s = socket.socket(ai[0], ai[1], ai[2])
                        r = self._w = _Stream(s)  # its wait_closed closes s
                        s.setblocking(False)
                        try:
                            s.connect(ai[-1])
                        except OSError as e:
                            if e.errno != EINPROGRESS:
                                raise
                        pl = select.poll()
                        pl.register(s, select.POLLOUT)
                        t0 = ticks_ms()
                        while not pl.poll(0):
                            if ticks_diff(ticks_ms(), t0) > conn_ms:
                                raise _Drop("connect timeout")
                            await sleep_ms(10)
                        pl = None
                        if ctx:
                            s = ctx.wrap_socket(s, server_hostname=sni, do_handshake_on_connect=False)
                            s.setblocking(False)
                            r = self._w = _Stream(s)
                    else:
                        kw = {"ssl": ctx, "server_hostname": sni} if ctx else {}
                        r, self._w = await _wait_ms(asyncio.open_connection(host, port, **kw), conn_ms)
                    self._r = r
                    self._rx.set()
                    t0 = self._last_rx = self._last_ping = ticks_ms()
                    if not self._send(0):
                        await self._put(0)
                    while self._connack is None:  # the reader sets it
                        if self._fail:
                            raise self._fail
                        if ticks_diff(ticks_ms(), t0) > conn_ms:
                            raise _Drop("no CONNACK")
                        if not self._send(None):  # a TLS handshake keeps CONNECT in the stream
                            await self._put(None)
                        await wake.wait()
                        wake.clear()
                    sp, rc = self._connack  # type: ignore[misc]
                    if rc:  # checked before _fail: a broker refusing us closes the socket at once
                        stats["refused_connack"] += 1
                        raise _Drop("refused: rc %d" % rc)
                    if self._fail:
                        raise self._fail
                    reached = True
                    attempt = 0
                    stats["connects"] += 1
                    self._up.set()
                    for s in self._subs:
                        s[2] = False
                    self._callback(self.on_connect, sp)
                    born = not self.birth
                    every = True  # first: everything unacknowledged, oldest first, with DUP
                    while True:
                        for s in self._subs:
                            if not s[2]:
                                s[2] = True
                                pid = self._next_pid()
                                if not self._send(8, s[0], s[1], 0, pid):
                                    await self._put(8, s[0], s[1], 0, pid)
                        if not born:
                            # Behind the SUBSCRIBEs: the broker takes a client's packets in
                            # order, so whoever sees "online" can command the device at once.
                            born = True
                            t, p, q, rt = self.birth
                            t, p, f, pid = pk._b(t), pk._b(p), (1 if q else 0) | (2 if rt else 0), self._next_pid() if q else 0
                            if not self._send(3, t, p, f, pid):
                                await self._put(3, t, p, f, pid)
                        now = ticks_ms()
                        # Resend (DUP) unacked messages in order: all, or those past
                        # ack_timeout_ms; from a snapshot of ids, as PUBACKs during the
                        # awaits move the window.
                        for i in range(self._wn):
                            j = (self._wh + i) % wcap
                            if every or wid[j] and ticks_diff(now, ws[j]) >= ack_ms:
                                for pid in [wid[(self._wh + k) % wcap] for k in range(self._wn)]:
                                    if pid and pid in wid:
                                        j = wid.index(pid)
                                        if every or ticks_diff(ticks_ms(), ws[j]) >= ack_ms:
                                            ws[j] = ticks_ms()
                                            stats["retransmits"] += 1
                                            if not self._send(3, wt[j], wp[j], wf[j] | 4, pid):
                                                await self._put(3, wt[j], wp[j], wf[j] | 4, pid)
                                break
                        every = False
                        if self._fail:
                            raise self._fail
                        if self._closed:
                            try:
                                if self.will:
                                    t, p, q, rt = self.will
                                    t, p, f = pk._b(t), pk._b(p), (1 if q else 0) | (2 if rt else 0)
                                    pid = self._next_pid() if q else 0
                                    await self._put(3, t, p, f, pid)
                                await self._put(None, b"\xe0\x00")
                                await self._put(None)  # all of it out before the socket closes
                            except Exception:  # noqa: BLE001 - best effort on the way out
                                pass
                            break
                        if ticks_diff(ticks_ms(), self._last_rx) > ka:
                            raise _Drop("broker silent for %d s" % ka_s)
                        if not self._send(None):  # what the reader wrote (PUBACKs) and the socket did not take
                            await self._put(None)
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
                                wid[j], wt[j], wp[j], wf[j], ws[j] = pid, tb, p, f, ticks_ms()
                                self._wn += 1
                            # Off the queue before the await: a failed send leaves a QoS 1
                            # message in the window (resent on reconnect); a QoS 0 one is
                            # gone, as QoS 0 promises no more.
                            qt[i] = qp[i] = b""
                            self._qh = (i + 1) % cap
                            self._qn -= 1
                            self._space.set()
                            if not self._send(3, tb, p, f, pid):
                                await self._put(3, tb, p, f, pid)
                            stats["published"] += 1
                            sent += 1
                        if ticks_diff(ticks_ms(), self._last_ping) >= ka // 2:
                            self._last_ping = ticks_ms()
                            if not self._send(None, b"\xc0\x00"):
                                await self._put(None, b"\xc0\x00")
                            stats["pings"] += 1
                        if self._qn and (not qf[self._qh] & 1 or self._wn < wcap):
                            await sleep_ms(0)  # more could go now; fairness: the device's other tasks run
                        else:
                            if not self._send(None):  # nothing left in the stream while we sleep
                                await self._put(None)
                            await wake.wait()  # publish, packet in, tick, close...
                            wake.clear()
                except MemoryError:
                    reason = "MemoryError"
                    self._oom()
                except pk.MalformedPacket as e:
                    stats["malformed"] += 1
                    reason = "malformed: %s" % e
                except _Drop as e:
                    reason = e.args[0]
                except asyncio.TimeoutError:
                    reason = "timeout"
                except Exception as e:  # noqa: BLE001 - OSError...: reconnect
                    reason = "%s: %s" % (type(e).__name__, e)
                try:
                    await self._hangup()
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
                step = min(hi, lo << min(attempt, 16))
                attempt += 1
                # jitter in the upper half; slept in slices so close() and a
                # lost link are seen at once
                t0 = ticks_ms()
                step -= getrandbits(16) * (step // 2) >> 16
                while not self._closed and self._link and ticks_diff(ticks_ms(), t0) < step:
                    await sleep_ms(min(50, step))
        finally:
            await self._hangup()
            for t in tasks:
                t.cancel()

    # --- memory ------------------------------------------------------------

    def _oom(self, ok=False):
        """A MemoryError (or, ok=True, proof the session works: a PUBACK or PINGRESP)."""
        if ok:
            self.oom_streak = 0
            return
        self.stats["mem_errors"] += 1
        self.oom_streak += 1
        self.last_error = "MemoryError"
        if self.oom_streak >= OOM_SHED:
            self._evict("shed", True)
        gc_collect()

    def _drop(self, why):
        self.stats[why] += 1
        self.stats["dropped"] += 1
        return False

    def _evict(self, why, every=False):
        """Drop the oldest queued QoS 0 message (every one if every); True if any."""
        qt, qp, qf = self._qt, self._qp, self._qf
        cap = len(qt)
        hit = False
        i = 0
        while i < self._qn:
            if qf[(self._qh + i) % cap] & 1:
                i += 1
                continue
            for j in range(i, self._qn - 1):  # shift the later ones down, keeping order
                a = (self._qh + j) % cap
                b = (a + 1) % cap
                qt[a], qp[a], qf[a] = qt[b], qp[b], qf[b]
            a = (self._qh + self._qn - 1) % cap
            qt[a] = qp[a] = b""
            self._qn -= 1
            self._space.set()
            self._drop(why)
            hit = True
            if not every:
                break
        return hit

    # --- session -----------------------------------------------------------

    async def _hangup(self):
        """End the session's socket; the reader, woken by the close, stands by
        for the next one (the streams' own methods, no task to cancel)."""
        self._up.clear()
        self._r = None
        w = self._w
        self._w = None
        if w is not None:
            try:
                w.close()
                # (MicroPython closes the socket in wait_closed, without waiting)
                await (w.wait_closed() if IS_MICROPYTHON else _wait_ms(w.wait_closed(), 1000))
            except Exception:  # noqa: BLE001 - closing a broken socket may fail either way
                pass

    async def _clock(self):
        while True:
            await sleep_ms(min(self._ms[5] // 4, 1000))
            self._wake.set()

    def _send(self, kind, t=None, p=None, f=0, pid=0):
        """Send a packet in one synchronous step when that can be done now (no
        coroutine per packet: a fragmented heap may hold no block for one,
        issue 18): True = sent. False = await _put() with the same arguments
        instead (the reader holds the room, earlier bytes still wait in the
        stream, or CPython, whose writes always want a drain)."""
        w = self._w
        if w is None:
            raise _Drop("not connected")
        if not IS_MICROPYTHON or getattr(w, "out_buf", b""):
            return False
        data = t if kind is None else self._enc(kind, t, p, f, pid)
        if data is None:
            return kind is None  # nothing to flush, or no room yet
        w.write(data)
        return True

    async def _put(self, kind, t=None, p=None, f=0, pid=0):
        """Send a packet (see _enc), waiting for room behind the packet the
        reader is framing and for the socket to take it: kind None sends t
        (bytes) or, t None, flushes what waits in the stream."""
        w = self._w
        if w is None:
            raise _Drop("not connected")
        data = t
        if kind is not None:
            while True:
                data = self._enc(kind, t, p, f, pid)
                if data is not None:
                    break
                if self._fail:
                    raise self._fail
                await self._wake.wait()
                self._wake.clear()
        if data is not None:
            # one synchronous step from encode to write: the buffer is free again after it
            w.write(data if IS_MICROPYTHON else bytes(data))
        elif not IS_MICROPYTHON:
            return
        # MicroPython's write() sends at once what the socket takes: only a
        # backlog needs the (allocating) timed drain.
        if not IS_MICROPYTHON or getattr(w, "out_buf", b"x"):
            await _wait_ms(w.drain(), self._ms[4])

    def _enc(self, kind, t, p, f, pid):
        """Encode into the shared buffer behind the packet the reader holds:
        kind 0 CONNECT, 3 PUBLISH (topic and payload bytes, flags: bit 0 QoS 1,
        bit 1 retain, bit 2 DUP; pid), 8 SUBSCRIBE (topic, qos, -, pid). The
        encoded bytes, or None while there is no room."""
        buf = self._buf
        held = self._dec.held
        if held + (pk.publish_size(len(t), len(p), f & 1) if kind == 3 else len(buf)) > len(buf):
            return None
        mv = memoryview(buf)[held:]
        if kind == 3:
            n = pk.encode_publish(mv, t, p, f & 1, f & 2, f & 4, pid)
        elif kind:
            n = pk.encode_subscribe(mv, pid, ((t, p),))
        else:
            c = self._conn
            n = pk.encode_connect(mv, c[5], c[9], c[6], c[7], c[8], self.will)
        return mv[:n]

    def _next_pid(self):
        while True:
            self._pid = self._pid % 65535 + 1
            if self._pid not in self._wid:
                return self._pid

    # --- reading -----------------------------------------------------------

    async def _reader(self):
        """Frames and handles what the broker sends, for each session's stream
        in turn (_r, announced by _rx); a failure goes to the writer in _fail."""
        chunk = self._chunk
        mv = memoryview(chunk)
        dec = self._dec
        wid = self._wid
        while True:
            await self._rx.wait()
            self._rx.clear()
            r = self._r
            if r is None:  # that session already ended
                continue
            try:
                while True:
                    if IS_MICROPYTHON:
                        n = await r.readinto(chunk)
                        if r is not self._r:
                            break  # the session ended while we waited
                        if n is None:
                            continue  # TLS: readable, but no whole record yet (handshake)
                    else:
                        data = await r.read(len(chunk))
                        if r is not self._r:
                            break
                        n = len(data)
                        chunk[:n] = data
                    if not n:
                        if dec.state or dec.ready:
                            raise pk.MalformedPacket("truncated")
                        raise _Drop("connection closed by broker")
                    self._last_rx = ticks_ms()
                    pos = 0
                    while pos < n:
                        pos = dec.feed(mv, pos, n)
                        if not dec.ready:
                            continue
                        kind = dec.kind
                        if self._connack is None and kind != _CONNACK:
                            raise pk.MalformedPacket("not CONNACK first")
                        v = pk.parse(kind, dec.flags, dec.body)
                        pid = 0
                        if kind == _CONNACK:
                            if self._connack is not None:
                                raise pk.MalformedPacket("second CONNACK")
                            self._connack = v
                        elif kind == _PUBLISH:
                            if v[2] == 2:  # type: ignore[index]
                                raise pk.MalformedPacket("QoS 2")  # we never subscribe above 1
                            self.stats["received"] += 1
                            self._callback(self.on_message, v[0], bytes(v[1]), v[3])  # type: ignore[index]
                            pid = v[5]  # type: ignore[index]
                        elif kind == _SUBACK:
                            self.stats["sub_failed"] += v[1].count(0x80)  # type: ignore[index]
                        elif kind == _PUBACK and v in wid:
                            wcap = len(wid)
                            j = wid.index(v)
                            wid[j] = 0
                            self._wt[j] = self._wp[j] = b""
                            self.stats["acked"] += 1
                            while self._wn and not wid[self._wh]:
                                self._wh = (self._wh + 1) % wcap
                                self._wn -= 1
                        # (a PUBACK for an id not in flight: a late duplicate, harmless)
                        if kind == _PUBACK or kind == _PINGRESP:
                            self._oom(True)  # the session works
                        dec.reset()
                        self._wake.set()
                        if pid:
                            # PUBACK in one synchronous write (never inside another
                            # packet's bytes); not while MicroPython's Stream drains
                            # a backlog: its drain() ends with out_buf = b"", which
                            # would lose what we add.
                            w = self._w
                            while IS_MICROPYTHON and getattr(w, "out_buf", b""):
                                await sleep_ms(1)
                            if r is not self._r:
                                break
                            a = self._ack
                            a[2] = pid >> 8  # type: ignore[operator]
                            a[3] = pid & 255  # type: ignore[operator]
                            w.write(a if IS_MICROPYTHON else bytes(a))  # type: ignore[union-attr]
            except Exception as e:  # noqa: BLE001 - handed to the writer loop, which reconnects
                if r is self._r:
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
