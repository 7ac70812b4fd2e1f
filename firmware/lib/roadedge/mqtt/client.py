"""Resilient asyncio MQTT 3.1.1 client for MicroPython (also runs on CPython).

    c = MQTTClient("vsl-k012-n", "10.0.0.2", user="vsl-k012-n", password=pw,
                   will=("re/vsl-k012-n/status", b"offline", 1, True),
                   birth=("re/vsl-k012-n/status", b"online", 1, True))
    c.on_message = lambda topic, payload, retained: ...
    c.subscribe("re/vsl-k012-n/cmd/#", 1)
    asyncio.create_task(c.run())         # connection manager, until c.close()
    c.publish("re/vsl-k012-n/tele", b"{...}")   # never blocks

Per connection a reader task, a clock task (wakes the writer every tick) and
the writer loop in run(); every socket operation is an asyncio stream call
under a deadline, except name resolution on MicroPython (synchronous there:
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

Memory pressure (issue 18): a MemoryError anywhere in a session drops it,
counts stats["mem_errors"] and oom_streak (consecutive, reset by the next
PUBACK or PINGRESP), and releases a block reserved at start so the reconnect
finds room even in a fragmented heap (re-armed once the link works). From
OOM_SHED in a row the client sheds what QoS 0 promises no delivery of: new
QoS 0 publishes are refused and every queued QoS 0 (oldest first) dropped,
each counted in stats["shed"] (and "dropped"); queued or unacknowledged
QoS 1 is never shed. From OOM_WEDGED in a row wedged() is true: the device
app then reports unhealthy and its watchdog resets the board.

Broker input is untrusted: a truncated, oversized, malformed or
out-of-protocol packet closes the connection (stats["malformed"]) and
reconnects; nothing raises out of run().

Birth and will: `will` goes in CONNECT; `birth` is published after every
CONNACK (before the resent backlog); close() publishes the will itself before
DISCONNECT, since a clean DISCONNECT suppresses it.

RAM: one max_packet buffer serves both ways (the reader frames an incoming
packet at its start, the writer encodes behind it: encode and write are one
synchronous step, so they never overlap), a 128-byte read chunk, parallel
rings for queue and window. A PUBLISH leaves in one write: written as header
then payload, Nagle held the payload until the broker's delayed ACK and QoS 1
throughput collapsed (commit 9aa1234).
"""
import asyncio
import random

from roadedge.core.compat import IS_MICROPYTHON, const, ticks_ms, ticks_diff, sleep_ms, gc_collect, mem_free
from roadedge.mqtt import packet as pk

_RESERVE = const(1024)  # bytes held back for the reconnect after a MemoryError
OOM_SHED = const(2)  # MemoryErrors in a row before QoS 0 is shed
OOM_WEDGED = const(5)  # ... before wedged(): the watchdog's turn

_STATS = ("connects", "disconnects", "conn_fail", "refused_connack", "published", "acked", "dropped",
          "evicted", "refused", "too_large", "shed", "mem_errors", "retransmits", "malformed",
          "received", "pings", "cb_errors", "sub_failed", "errors", "link_down")


def _wait_ms(aw, ms):
    if IS_MICROPYTHON:
        return asyncio.wait_for_ms(aw, ms)  # type: ignore[attr-defined]
    return asyncio.wait_for(aw, ms / 1000)


class _Drop(Exception):
    """The session ends for the reason given (link down, refused, silent...)."""


class MQTTClient:
    def __init__(self, client_id, host, port=1883, user=None, password=None, keepalive=30,
                 tls=False, ca=None, clean=True, will=None, birth=None, queue_size=32, window=4,
                 max_packet=4096, backoff_ms=(500, 30000), ack_timeout_ms=10000,
                 connect_timeout_ms=None, write_timeout_ms=None, server_hostname=None):
        if not client_id or queue_size < 1 or window < 1 or not 2 <= keepalive <= 65535:
            raise ValueError("client_id, queue_size, window >= 1, keepalive 2..65535 s")
        self.keepalive = keepalive
        self.will = will
        self.birth = birth
        # what a connect needs, in one tuple (an attribute each costs heap)
        self._conn = (host, port, tls, ca, server_hostname or host, client_id, clean, user, password)
        self.backoff_ms = backoff_ms
        self.ack_timeout_ms = ack_timeout_ms
        ka = keepalive * 1000
        self._ka_ms = ka
        self._tick_ms = min(ka // 4, 1000)
        self.connect_timeout_ms = connect_timeout_ms or min(ka, 15000)
        self.write_timeout_ms = write_timeout_ms or min(ka, 15000)
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
        self._reserve = bytearray(_RESERVE)
        self._wake = asyncio.Event()
        self._space = asyncio.Event()
        self._up = asyncio.Event()
        self._stop = asyncio.Event()
        self._link = asyncio.Event()  # the network link is up (set_link)
        self._link.set()
        self._w = self._fail = self._connack = None
        self._connected = self._closed = False
        self._last_rx = self._last_ping = self._attempt = 0

    # --- public API --------------------------------------------------------

    def is_connected(self):
        return self._connected

    def wedged(self):
        """True after OOM_WEDGED MemoryErrors in a row: only a reset helps."""
        return self.oom_streak >= OOM_WEDGED

    async def wait_connected(self, timeout_ms=None):
        """True once connected (at once if already); False on timeout."""
        if not self._connected:
            try:
                await (self._up.wait() if timeout_ms is None else _wait_ms(self._up.wait(), timeout_ms))
            except asyncio.TimeoutError:
                pass
        return self._connected

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
            raise ValueError("qos must be 0 or 1")
        if isinstance(payload, str):
            payload = payload.encode()
        if topic == self._tn:
            tb = self._tb
        else:
            tb = topic.encode() if isinstance(topic, str) else bytes(topic)
            if not tb or b"+" in tb or b"#" in tb:
                raise ValueError("bad publish topic %r" % (topic,))
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
        self._stop.set()
        self._wake.set()
        self._link.set()

    def set_link(self, up):
        """The network link under the client went down or came back. Down: the
        session is dropped at once and no connection tried until it is back;
        what is published meanwhile stays queued."""
        if up:
            self._link.set()
        elif self._link.is_set():
            self._link.clear()
            self.stats["link_down"] += 1
            self._fail = _Drop("network link down")
            self._wake.set()

    async def run(self):
        """Connection manager: connect, serve, reconnect with backoff, until close()."""
        self._attempt = 0
        while not self._closed:
            if not self._link.is_set():
                await self._link.wait()
                self._attempt = 0  # a fresh link: start the backoff from the bottom
                continue
            try:
                await self._session()
            except MemoryError:  # outside the session's own handling (teardown, callbacks)
                self._oom()
            except Exception as e:  # noqa: BLE001 - never leave run()
                self.stats["errors"] += 1
                self.last_error = type(e).__name__  # no formatting: it may be memory we lack
                gc_collect()
            if self._closed:
                break
            lo, hi = self.backoff_ms
            step = min(hi, lo << min(self._attempt, 16))
            self._attempt += 1
            try:
                await _wait_ms(self._stop.wait(), max(1, step - (random.getrandbits(16) * (step // 2) >> 16)))
            except asyncio.TimeoutError:
                pass
            except Exception:  # noqa: BLE001 - no memory for a timed wait: a plain sleep
                gc_collect()
                await sleep_ms(lo)

    # --- memory ------------------------------------------------------------

    def _oom(self, ok=False):
        """A MemoryError (or, ok=True, proof the session works: a PUBACK or PINGRESP)."""
        if ok:
            self.oom_streak = 0
            if self._reserve is None and not 0 <= mem_free() < 4 * _RESERVE:  # not the last KB
                try:
                    self._reserve = bytearray(_RESERVE)
                except MemoryError:
                    pass
            return
        self._reserve = None  # a contiguous block for the next connect's allocations
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

    async def _session(self):
        reached = False
        reason = "closed"
        tasks = ()
        host, port, tls, ca, sni, cid, clean, user, pw = self._conn
        try:
            self._fail = self._connack = None
            self._dec.reset()
            kw = {}
            if tls:
                import ssl

                if isinstance(ca, str):
                    with open(ca, "rb") as f:
                        ca = f.read()
                if IS_MICROPYTHON:
                    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                    ctx.verify_mode = ssl.CERT_REQUIRED if ca else ssl.CERT_NONE
                    if ca:
                        ctx.load_verify_locations(cadata=bytes(ca))
                else:
                    ctx = ssl.create_default_context(cadata=ca) if ca else ssl.create_default_context()  # type: ignore
                kw["ssl"] = ctx
                kw["server_hostname"] = sni
            r, self._w = await _wait_ms(asyncio.open_connection(host, port, **kw), self.connect_timeout_ms)
            t0 = self._last_rx = self._last_ping = ticks_ms()
            tasks = (asyncio.create_task(self._read_loop(r)), asyncio.create_task(self._clock()))
            await self._put(0, cid, self.keepalive, clean, user, pw, self.will)
            while self._connack is None:  # the reader sets it
                if self._fail:
                    raise self._fail
                if ticks_diff(ticks_ms(), t0) > self.connect_timeout_ms:
                    raise _Drop("no CONNACK in %d ms" % self.connect_timeout_ms)
                await self._wake.wait()
                self._wake.clear()
            sp, rc = self._connack  # type: ignore[misc]
            if rc:  # checked before _fail: a broker refusing us closes the socket at once
                self.stats["refused_connack"] += 1
                raise _Drop("refused: " + pk.CONNACK_REASONS[rc])
            if self._fail:
                raise self._fail
            reached = True
            self._attempt = 0
            self._connected = True
            self.stats["connects"] += 1
            self._up.set()
            for s in self._subs:
                s[2] = False
            self._callback(self.on_connect, sp)
            await self._serve()
        except MemoryError:
            reason = "MemoryError"
            self._oom()
        except pk.MalformedPacket as e:
            self.stats["malformed"] += 1
            reason = "malformed: %s" % e
        except _Drop as e:
            reason = e.args[0]
        except asyncio.TimeoutError:
            reason = "timeout"
        except asyncio.CancelledError:
            await self._teardown(tasks)
            raise
        except Exception as e:  # noqa: BLE001 - OSError...: reconnect
            reason = "%s: %s" % (type(e).__name__, e)
        await self._teardown(tasks)
        self.last_error = reason
        if reached:
            self.stats["disconnects"] += 1
            self._callback(self.on_disconnect, reason)
        else:
            self.stats["conn_fail"] += 1

    async def _teardown(self, tasks):
        self._connected = False
        self._up.clear()
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except BaseException:  # noqa: BLE001 - CancelledError or the task's failure
                pass
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
            await sleep_ms(self._tick_ms)
            self._wake.set()

    async def _put(self, kind, *a):
        """Encode a packet into the shared buffer, behind the one the reader is
        framing (waiting until it fits), and send it: kind 0 CONNECT (a =
        connect's fields), 3 PUBLISH (a = topic, payload, flags, dup, pid),
        8 SUBSCRIBE (a = pid, topics), or None: a = (bytes,), or () to flush."""
        w = self._w
        if w is None:
            raise _Drop("not connected")
        if kind is None:
            data = a[0] if a else None
        else:
            dec = self._dec
            n = len(self._buf) if kind != 3 else pk.publish_size(len(a[0]), len(a[1]), a[2] & 1)
            while dec.held + n > len(self._buf):
                if self._fail:
                    raise self._fail
                await self._wake.wait()
                self._wake.clear()
            mv = memoryview(self._buf)[dec.held:]
            if kind == 3:
                data = mv[:pk.encode_publish(mv, a[0], a[1], a[2] & 1, a[2] & 2, a[3], a[4])]
            elif kind:
                data = mv[:pk.encode_subscribe(mv, *a)]
            else:
                data = mv[:pk.encode_connect(mv, *a)]
        if data is not None:
            # one synchronous step from encode to write: the buffer is free again after it
            w.write(data if IS_MICROPYTHON else bytes(data))
        elif not IS_MICROPYTHON:
            return
        # MicroPython's write() sends at once what the socket takes: only a
        # backlog needs the (allocating) timed drain.
        if not IS_MICROPYTHON or getattr(w, "out_buf", b"x"):
            await _wait_ms(w.drain(), self.write_timeout_ms)

    async def _put_tuple(self, m):
        t, p, q, r = m
        await self._put(3, pk._b(t), pk._b(p), (1 if q else 0) | (2 if r else 0), False,
                        self._next_pid() if q else 0)

    async def _serve(self):
        if self.birth:
            await self._put_tuple(self.birth)
        every = True  # first: everything unacknowledged, oldest first, with DUP
        qt, qp, qf = self._qt, self._qp, self._qf
        wid = self._wid
        cap = len(qt)
        wcap = len(wid)
        while True:
            now = ticks_ms()
            # Resend (DUP) unacked messages in order: all, or those past
            # ack_timeout_ms; from a snapshot of ids, as PUBACKs during the
            # awaits move the window.
            for i in range(self._wn):
                j = (self._wh + i) % wcap
                if every or wid[j] and ticks_diff(now, self._ws[j]) >= self.ack_timeout_ms:
                    for pid in [wid[(self._wh + k) % wcap] for k in range(self._wn)]:
                        if pid and pid in wid:
                            j = wid.index(pid)
                            if every or ticks_diff(ticks_ms(), self._ws[j]) >= self.ack_timeout_ms:
                                self._ws[j] = ticks_ms()
                                self.stats["retransmits"] += 1
                                await self._put(3, self._wt[j], self._wp[j], self._wf[j], True, pid)
                    break
            every = False
            if self._fail:
                raise self._fail
            if self._closed:
                try:
                    if self.will:
                        await self._put_tuple(self.will)
                    await self._put(None, pk.DISCONNECT_BYTES)
                except Exception:  # noqa: BLE001 - best effort on the way out
                    pass
                return
            if ticks_diff(ticks_ms(), self._last_rx) > self._ka_ms:
                raise _Drop("broker silent for %d s" % self.keepalive)
            await self._put(None)  # what the reader wrote (PUBACKs) and the socket did not take
            for s in self._subs:
                if not s[2]:
                    s[2] = True
                    await self._put(8, self._next_pid(), ((s[0], s[1]),))
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
                    wid[j], self._wt[j], self._wp[j], self._wf[j], self._ws[j] = pid, tb, p, f, ticks_ms()
                    self._wn += 1
                # Off the queue before the await: a failed send leaves a QoS 1
                # message in the window (resent on reconnect); a QoS 0 one is
                # gone, as QoS 0 promises no more.
                qt[i] = qp[i] = b""
                self._qh = (i + 1) % cap
                self._qn -= 1
                self._space.set()
                await self._put(3, tb, p, f, False, pid)
                self.stats["published"] += 1
                sent += 1
            if ticks_diff(ticks_ms(), self._last_ping) >= self._ka_ms // 2:
                self._last_ping = ticks_ms()
                await self._put(None, pk.PINGREQ_BYTES)
                self.stats["pings"] += 1
            if self._qn and (not qf[self._qh] & 1 or self._wn < wcap):
                await sleep_ms(0)  # more could go now; fairness: the device's other tasks run
            else:
                await self._wake.wait()  # publish, packet in, tick, close...
                self._wake.clear()

    def _next_pid(self):
        while True:
            self._pid = self._pid % 65535 + 1
            if self._pid not in self._wid:
                return self._pid

    # --- reading -----------------------------------------------------------

    async def _read_loop(self, reader):
        chunk = self._chunk
        mv = memoryview(chunk)
        dec = self._dec
        wid = self._wid
        try:
            while True:
                if IS_MICROPYTHON:
                    n = await reader.readinto(chunk)
                    if n is None:
                        continue  # TLS: readable, but no whole record yet (handshake)
                else:
                    data = await reader.read(len(chunk))
                    n = len(data)
                    chunk[:n] = data
                if not n:
                    if dec.state or dec.ready:
                        raise pk.MalformedPacket("connection closed inside a packet (truncated)")
                    raise _Drop("connection closed by broker")
                self._last_rx = ticks_ms()
                pos = 0
                while pos < n:
                    pos = dec.feed(mv, pos, n)
                    if not dec.ready:
                        continue
                    kind = dec.kind
                    if self._connack is None and kind != pk.CONNACK:
                        raise pk.MalformedPacket("expected CONNACK, got type %d" % kind)
                    v = pk.parse(kind, dec.flags, dec.body)
                    pid = 0
                    if kind == pk.CONNACK:
                        if self._connack is not None:
                            raise pk.MalformedPacket("second CONNACK")
                        self._connack = v
                    elif kind == pk.PUBLISH:
                        if v[2] == 2:  # type: ignore[index]
                            raise pk.MalformedPacket("QoS 2 PUBLISH but we never subscribe above 1")
                        self.stats["received"] += 1
                        self._callback(self.on_message, v[0], bytes(v[1]), v[3])  # type: ignore[index]
                        pid = v[5]  # type: ignore[index]
                    elif kind == pk.SUBACK:
                        self.stats["sub_failed"] += v[1].count(0x80)  # type: ignore[index]
                    elif kind == pk.PUBACK and v in wid:
                        wcap = len(wid)
                        j = wid.index(v)
                        wid[j] = 0
                        self._wt[j] = self._wp[j] = b""
                        self.stats["acked"] += 1
                        while self._wn and not wid[self._wh]:
                            self._wh = (self._wh + 1) % wcap
                            self._wn -= 1
                    # (a PUBACK for an id not in flight: a late duplicate, harmless)
                    if kind == pk.PUBACK or kind == pk.PINGRESP:
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
                        a = self._ack
                        a[2] = pid >> 8  # type: ignore[operator]
                        a[3] = pid & 255  # type: ignore[operator]
                        w.write(a if IS_MICROPYTHON else bytes(a))  # type: ignore[union-attr]
        except Exception as e:  # noqa: BLE001 - handed to the writer loop, which reconnects
            self._fail = e
            self._wake.set()

    def _callback(self, cb, *args):
        if cb is not None:
            try:
                cb(*args)
            except MemoryError:
                raise
            except Exception as e:  # noqa: BLE001 - a callback bug must not kill the link
                self.stats["cb_errors"] += 1
                self.last_error = "callback: %r" % (e,)
