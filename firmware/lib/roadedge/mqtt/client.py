"""Resilient asyncio MQTT 3.1.1 client for MicroPython (also runs on CPython).

    c = MQTTClient("vsl-k012-n", "10.0.0.2", user="vsl-k012-n", password=pw,
                   will=("re/vsl-k012-n/status", b"offline", 1, True),
                   birth=("re/vsl-k012-n/status", b"online", 1, True))
    c.on_message = lambda topic, payload, retained: ...
    c.subscribe("re/vsl-k012-n/cmd/#", 1)
    asyncio.create_task(c.run())         # connection manager, until c.close()
    c.publish("re/vsl-k012-n/tele", b"{...}")   # never blocks

Nothing here blocks the event loop: one reader task and one writer loop per
connection, every socket operation is an asyncio stream call under a
deadline. The one exception is name resolution (getaddrinfo) on MicroPython,
which the port does synchronously: configure brokers by IP address on boards.

Timings (keepalive k seconds, set in CONNECT):
- PINGREQ at least every k/2 s, whatever else is sent.
- Read deadline: if nothing at all arrives from the broker for k s (a live
  broker answers each ping at once) the link is declared dead: the writer
  loop sleeps until exactly that deadline, so a dead or silent broker is
  noticed k s after its last byte (plus scheduling delay), inside the
  1.5 * k bound. bench/mqtt measures it. Connecting (TCP/TLS + CONNACK) is bounded by
  connect_timeout_ms, every write by write_timeout_ms.
- QoS 1: at most `window` PUBLISHes await a PUBACK. One unacknowledged for
  ack_timeout_ms is resent with DUP set (counted in stats["retransmits"]);
  after a reconnect every unacknowledged one is resent first, in the original
  order, before anything new. Delivery is at-least-once: consumers dedupe.
- Reconnect: exponential backoff from backoff_ms[0] doubling to backoff_ms[1],
  with jitter (the wait is a random point in the upper half of the step);
  it restarts from the bottom after a connection reached CONNACK.

Link gate: the device app calls set_link(False) when its radio loses the
network: the session is dropped at once (stats["link_down"]) and no
connection is tried until set_link(True); the queue is kept.

Outbound queue and drop policy (queue_size slots, shared by QoS 0 and 1,
kept across reconnects, so messages published while offline go out later):
1. queue not full: accepted (publish() returns True);
2. full, new message QoS 1: the OLDEST QUEUED QoS 0 message is evicted to
   make room (stats["dropped"] and stats["evicted"] +1) and the new one is
   accepted;
3. full and nothing to evict (or the new message is QoS 0): the NEW message
   is refused: publish() returns False, stats["dropped"] and
   stats["refused"] +1. Messages already accepted are never dropped.
A message larger than max_packet is refused too (stats["too_large"]).
Producers that must not lose anything await `c.wait_space()` before publishing.

Broker input is untrusted: a truncated, oversized (over max_packet),
malformed or out-of-protocol packet closes the connection, counts
stats["malformed"] and reconnects with backoff; it never raises out of run().

Birth and will: `will` is registered in CONNECT; `birth` is published right
after every CONNACK (before the resent backlog). close() publishes the will
message itself before DISCONNECT, since a clean DISCONNECT suppresses it.

Memory: fixed buffers allocated once (decoder body of max_packet, an encode
buffer of max_packet, a 256-byte read chunk, queue and window slots); per
message only the caller's payload and the topic bytes are held. The encode
buffer earns its RAM: a PUBLISH leaves in one write. Written as header then
payload, Nagle holds the payload back until the broker ACKs the header
(delayed ACK, up to ~40 ms a message): tried, bench/mqtt's 20,000-message
QoS 1 run went from about a second to minutes.
"""
import asyncio
import random

from roadedge.core.compat import IS_MICROPYTHON, ticks_ms, ticks_diff, sleep_ms, gc_collect
from roadedge.mqtt import packet as pk


def _wait_ms(aw, ms):
    if IS_MICROPYTHON:
        return asyncio.wait_for_ms(aw, ms)  # type: ignore[attr-defined]
    return asyncio.wait_for(aw, ms / 1000)


class _LinkDown(Exception):
    pass


class _Refused(Exception):
    pass


def _load_ca(ca):
    """CA certificate(s) as DER bytes, from bytes or a file path."""
    if ca is None:
        return None
    if isinstance(ca, (bytes, bytearray)):
        return bytes(ca)
    with open(ca, "rb") as f:
        return f.read()


class MQTTClient:
    def __init__(self, client_id, host, port=1883, user=None, password=None, keepalive=30,
                 tls=False, ca=None, clean=True, will=None, birth=None, queue_size=32, window=4,
                 max_packet=4096, backoff_ms=(500, 30000), ack_timeout_ms=10000,
                 connect_timeout_ms=None, write_timeout_ms=None, server_hostname=None):
        if not client_id:
            raise ValueError("client_id is required")
        if queue_size < 1 or window < 1:
            raise ValueError("queue_size and window must be >= 1")
        if not 2 <= keepalive <= 65535:
            raise ValueError("keepalive must be 2..65535 s (dead-broker detection needs it)")
        self.client_id = client_id
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.keepalive = keepalive
        self.tls = tls
        self.ca = ca
        self.server_hostname = server_hostname
        self.clean = clean
        self.will = will
        self.birth = birth
        self.max_packet = max_packet
        self.backoff_ms = backoff_ms
        self.ack_timeout_ms = ack_timeout_ms
        ka_ms = keepalive * 1000
        self._ka_ms = ka_ms
        self._ping_ms = ka_ms // 2
        self._tick_ms = min(ka_ms // 4, 1000)
        self.connect_timeout_ms = connect_timeout_ms or min(ka_ms, 15000)
        self.write_timeout_ms = write_timeout_ms or min(ka_ms, 15000)

        self.on_message = None
        self.on_connect = None
        self.on_disconnect = None

        self.stats = {"connects": 0, "disconnects": 0, "conn_fail": 0, "refused_connack": 0,
                      "published": 0, "acked": 0, "dropped": 0, "evicted": 0, "refused": 0,
                      "too_large": 0, "retransmits": 0, "malformed": 0, "received": 0,
                      "pings": 0, "cb_errors": 0, "sub_failed": 0, "errors": 0, "link_down": 0}
        self.last_error = ""

        # Outbound queue: ring of preallocated slots [topic bytes, payload, qos, retain].
        self._q = [[None, None, 0, False] for _ in range(queue_size)]
        self._qhead = 0
        self._qlen = 0
        # In flight QoS 1: ring of slots [pid, topic, payload, retain, sent_ticks]; pid 0 = acked.
        self._win = [[0, None, None, False, 0] for _ in range(window)]
        self._whead = 0
        self._wlen = 0
        self._pid = 0
        self._subs = []  # [topic, qos, sent_on_this_connection]
        self._acks = []  # incoming QoS 1 ids the writer must PUBACK (bounded)
        self._ack_max = 16

        self._dec = pk.Decoder(max_packet)
        self._out = bytearray(max_packet)
        self._outmv = memoryview(self._out)
        self._chunk = bytearray(256)
        self._ackbuf = bytearray(4)

        self._closed = False
        self._connected = False
        self._wake = asyncio.Event()
        self._space = asyncio.Event()
        self._up = asyncio.Event()
        self._stop = asyncio.Event()
        self._link = asyncio.Event()  # the network link is up (set_link)
        self._link.set()
        self._ack_room = asyncio.Event()
        self._writer = None
        self._reader_task = None
        self._fail = None
        self._connack = None
        self._got_connack = asyncio.Event()
        self._last_rx = 0
        self._last_tx = 0
        self._last_ping = 0
        self._attempt = 0

    # --- public API --------------------------------------------------------

    def is_connected(self):
        return self._connected

    async def wait_connected(self, timeout_ms=None):
        """True once connected (at once if already); False on timeout."""
        if self._connected:
            return True
        if timeout_ms is None:
            await self._up.wait()
            return True
        try:
            await _wait_ms(self._up.wait(), timeout_ms)
            return True
        except asyncio.TimeoutError:
            return self._connected

    def queued(self):
        """Messages waiting to be sent (not counting those in flight)."""
        return self._qlen

    def in_flight(self):
        return self._wlen

    async def wait_space(self):
        """Wait until publish() would be accepted without dropping anything."""
        while self._qlen >= len(self._q):
            self._space.clear()
            await self._space.wait()

    def subscribe(self, topic, qos=1):
        """Remember a subscription; (re)sent on every connect. QoS capped at 1."""
        qos = 1 if qos else 0
        for s in self._subs:
            if s[0] == topic:
                s[1] = qos
                s[2] = False
                self._wake.set()
                return
        self._subs.append([topic, qos, False])
        self._wake.set()

    def publish(self, topic, payload, qos=0, retain=False):
        """Queue a message; never blocks. False = refused (see the drop policy)."""
        if self._closed:
            return False
        if qos not in (0, 1):
            raise ValueError("qos must be 0 or 1")
        if isinstance(payload, str):
            payload = payload.encode()
        tb = topic.encode() if isinstance(topic, str) else topic
        if not tb or b"+" in tb or b"#" in tb:
            raise ValueError("bad publish topic %r" % (topic,))
        st = self.stats
        if pk.publish_size(len(tb), len(payload), qos) > self.max_packet:
            st["too_large"] += 1
            st["dropped"] += 1
            return False
        q = self._q
        cap = len(q)
        if self._qlen >= cap:
            if qos == 0 or not self._evict_qos0():
                st["refused"] += 1
                st["dropped"] += 1
                return False
        slot = q[(self._qhead + self._qlen) % cap]
        slot[0] = tb
        slot[1] = payload
        slot[2] = qos
        slot[3] = retain
        self._qlen += 1
        self._wake.set()
        return True

    def close(self):
        """Stop: publish the will as a farewell, DISCONNECT, and let run() return."""
        self._closed = True
        self._stop.set()
        self._wake.set()
        self._link.set()

    def set_link(self, up):
        """The network link under the client went down or came back (the device
        app watches the radio). Down: the session is dropped at once (the socket
        is dead; waiting for the keepalive would only delay it) and no
        connection is tried until the link is back; what is published
        meanwhile stays queued."""
        if up:
            self._link.set()
        elif self._link.is_set():
            self._link.clear()
            self.stats["link_down"] += 1
            self._fail = _LinkDown("network link down")
            self._wake.set()
            self._got_connack.set()

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
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - e.g. MemoryError outside a session: never leave run()
                self.stats["errors"] += 1
                self.last_error = "%s: %s" % (type(e).__name__, e)
                gc_collect()
            if self._closed:
                break
            try:
                await self._backoff()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - no memory for a timed wait: a plain sleep
                gc_collect()
                await sleep_ms(self.backoff_ms[0])

    async def _session(self):
        reached = False
        reason = "closed"
        try:
            await self._connect()
            reached = True
            self._attempt = 0
            await self._serve()
        except pk.MalformedPacket as e:
            self.stats["malformed"] += 1
            reason = "malformed: %s" % e
        except _Refused as e:
            self.stats["refused_connack"] += 1
            reason = "refused: %s" % e
        except _LinkDown as e:
            reason = str(e)
        except asyncio.TimeoutError:
            reason = "timeout"
        except asyncio.CancelledError:
            await self._teardown()
            raise
        except Exception as e:  # noqa: BLE001 - OSError, MemoryError...: reconnect
            reason = "%s: %s" % (type(e).__name__, e)
            if isinstance(e, MemoryError):
                gc_collect()
        await self._teardown()
        self.last_error = reason
        if reached:
            self.stats["disconnects"] += 1
            self._callback(self.on_disconnect, reason)
        else:
            self.stats["conn_fail"] += 1

    async def _backoff(self):
        lo, hi = self.backoff_ms
        step = min(hi, lo << min(self._attempt, 16))
        self._attempt += 1
        half = step // 2
        delay = half + (random.getrandbits(16) * (step - half) >> 16)
        try:
            await _wait_ms(self._stop.wait(), max(delay, 1))
        except asyncio.TimeoutError:
            pass

    # --- connection --------------------------------------------------------

    def _ssl_context(self):
        import ssl

        ca = _load_ca(self.ca)
        if IS_MICROPYTHON:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            if ca:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(cadata=ca)
            else:
                ctx.verify_mode = ssl.CERT_NONE
            return ctx
        ctx = ssl.create_default_context(cadata=ca) if ca else ssl.create_default_context()  # type: ignore
        return ctx

    async def _connect(self):
        self._fail = None
        self._connack = None
        self._got_connack.clear()
        self._dec.reset()
        kw = {}
        if self.tls:
            kw["ssl"] = self._ssl_context()
            kw["server_hostname"] = self.server_hostname or self.host
        reader, writer = await _wait_ms(asyncio.open_connection(self.host, self.port, **kw),
                                        self.connect_timeout_ms)
        self._writer = writer
        self._last_rx = self._last_ping = ticks_ms()
        self._reader_task = asyncio.create_task(self._read_loop(reader))
        await self._send(pk.encode_connect(self.client_id, self.keepalive, self.clean,
                                           self.user, self.password, self.will))
        try:
            await _wait_ms(self._got_connack.wait(), self.connect_timeout_ms)
        except asyncio.TimeoutError:
            if self._fail:
                raise self._fail
            raise _LinkDown("no CONNACK in %d ms" % self.connect_timeout_ms)
        ack = self._connack
        if ack is not None and ack[1]:
            # checked before _fail: a broker refusing us closes the socket at once
            raise _Refused(pk.CONNACK_REASONS[ack[1]])
        if self._fail:
            raise self._fail
        sp = ack[0]  # type: ignore
        self._connected = True
        self.stats["connects"] += 1
        self._up.set()
        for s in self._subs:
            s[2] = False
        self._acks.clear()
        self._callback(self.on_connect, sp)

    async def _teardown(self):
        self._connected = False
        self._up.clear()
        t = self._reader_task
        self._reader_task = None
        if t is not None:
            t.cancel()
            try:
                await t
            except BaseException:  # noqa: BLE001 - CancelledError or the reader's failure
                pass
        w = self._writer
        self._writer = None
        if w is not None:
            try:
                w.close()
                await _wait_ms(w.wait_closed(), 1000)
            except Exception:  # noqa: BLE001 - closing a broken socket may fail either way
                pass

    async def _send(self, data):
        w = self._writer
        if w is None:
            raise _LinkDown("not connected")
        if IS_MICROPYTHON:
            w.write(data)
            # Stream.write() sends at once what the socket takes; only a backlog
            # needs the (allocating) timed drain.
            if getattr(w, "out_buf", b"x"):
                await _wait_ms(w.drain(), self.write_timeout_ms)
        else:
            w.write(bytes(data))
            await _wait_ms(w.drain(), self.write_timeout_ms)
        self._last_tx = ticks_ms()

    # --- session -----------------------------------------------------------

    async def _serve(self):
        if self.birth:
            t, p, q, r = self.birth
            await self._send_publish(t.encode() if isinstance(t, str) else t,
                                     p.encode() if isinstance(p, str) else p, q, r, False,
                                     self._next_pid() if q else 0)
        # Resend everything unacknowledged, oldest first, with DUP.
        await self._resend_due(True)
        while True:
            if self._fail:
                raise self._fail
            if self._closed:
                await self._farewell()
                return
            now = ticks_ms()
            if ticks_diff(now, self._last_rx) > self._ka_ms:
                raise _LinkDown("broker silent for %d s" % self.keepalive)
            await self._flush_acks()
            await self._flush_subs()
            # Retransmit the in-flight ones that waited too long for PUBACK.
            if self._wlen and ticks_diff(now, self._oldest_sent()) >= self.ack_timeout_ms:
                await self._resend_due(False)
            busy = await self._send_queued()
            if ticks_diff(ticks_ms(), self._last_ping) >= self._ping_ms:
                self._last_ping = ticks_ms()
                await self._send(pk.PINGREQ_BYTES)
                self.stats["pings"] += 1
            if busy:
                await sleep_ms(0)  # fairness: let the device's other tasks run
                continue
            now = ticks_ms()
            wait = min(self._ping_ms - ticks_diff(now, self._last_ping),
                       self._ka_ms + 1 - ticks_diff(now, self._last_rx), self._tick_ms)
            wait = max(1, wait)
            self._wake.clear()
            try:
                await _wait_ms(self._wake.wait(), wait)
            except asyncio.TimeoutError:
                pass

    async def _send_queued(self):
        """Send up to one window's worth from the queue; True if more could go now."""
        q = self._q
        cap = len(q)
        win = self._win
        wcap = len(win)
        sent = 0
        while self._qlen and sent < wcap:
            slot = q[self._qhead]
            qos = slot[2]
            if qos and self._wlen >= wcap:
                return False
            tb, payload, retain = slot[0], slot[1], slot[3]
            pid = 0
            if qos:
                pid = self._next_pid()
                w = win[(self._whead + self._wlen) % wcap]
                w[0] = pid
                w[1] = tb
                w[2] = payload
                w[3] = retain
                w[4] = ticks_ms()
                self._wlen += 1
            # Taken off the queue before the await: a failed send leaves a QoS 1
            # message in the window (resent on reconnect); a QoS 0 one is gone,
            # as QoS 0 promises no more.
            slot[0] = slot[1] = None
            self._qhead = (self._qhead + 1) % cap
            self._qlen -= 1
            self._space.set()
            await self._send_publish(tb, payload, qos, retain, False, pid)
            self.stats["published"] += 1
            sent += 1
        return self._qlen > 0 and (self._q[self._qhead][2] == 0 or self._wlen < wcap)

    async def _send_publish(self, tb, payload, qos, retain, dup, pid):
        n = pk.encode_publish(self._out, tb, payload, qos, retain, dup, pid)
        await self._send(self._outmv[:n])

    def _oldest_sent(self):
        win = self._win
        cap = len(win)
        t = ticks_ms()
        for i in range(self._wlen):
            s = win[(self._whead + i) % cap]
            if s[0] and ticks_diff(s[4], t) < 0:
                t = s[4]
        return t

    async def _resend_due(self, every):
        """Resend (DUP) unacked messages in order: all, or those past ack_timeout_ms.

        Works from a snapshot of packet ids: PUBACKs arriving during the awaits
        move the window, so slot positions are not stable across them."""
        win = self._win
        cap = len(win)
        pids = [win[(self._whead + i) % cap][0] for i in range(self._wlen)]
        for pid in pids:
            if not pid:
                continue
            for s in win:
                if s[0] == pid:
                    if every or ticks_diff(ticks_ms(), s[4]) >= self.ack_timeout_ms:
                        await self._resend(s)
                    break

    async def _resend(self, s):
        s[4] = ticks_ms()
        self.stats["retransmits"] += 1
        await self._send_publish(s[1], s[2], 1, s[3], True, s[0])

    async def _flush_acks(self):
        acks = self._acks
        while acks:
            pid = acks.pop(0)
            await self._send(pk.encode_pid(pk.PUBACK, pid, self._ackbuf))
        self._ack_room.set()

    async def _flush_subs(self):
        for s in self._subs:
            if not s[2]:
                s[2] = True
                await self._send(pk.encode_subscribe(self._next_pid(), ((s[0], s[1]),)))

    async def _farewell(self):
        try:
            if self.will:
                t, p, q, r = self.will
                await self._send_publish(t.encode() if isinstance(t, str) else t,
                                         p.encode() if isinstance(p, str) else p, q, r, False,
                                         self._next_pid() if q else 0)
            await self._send(pk.DISCONNECT_BYTES)
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass

    def _next_pid(self):
        win = self._win
        while True:
            self._pid = self._pid % 65535 + 1
            for s in win:
                if s[0] == self._pid:
                    break
            else:
                return self._pid

    def _evict_qos0(self):
        q = self._q
        cap = len(q)
        n = self._qlen
        for i in range(n):
            if q[(self._qhead + i) % cap][2] == 0:
                # shift the later ones down over the evicted slot, keeping order
                for j in range(i, n - 1):
                    a = q[(self._qhead + j) % cap]
                    b = q[(self._qhead + j + 1) % cap]
                    a[0], a[1], a[2], a[3] = b[0], b[1], b[2], b[3]
                last = q[(self._qhead + n - 1) % cap]
                last[0] = last[1] = None
                self._qlen -= 1
                self.stats["evicted"] += 1
                self.stats["dropped"] += 1
                return True
        return False

    # --- reading -----------------------------------------------------------

    async def _read_loop(self, reader):
        chunk = self._chunk
        mv = memoryview(chunk)
        dec = self._dec
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
                    if dec.mid_packet():
                        raise pk.MalformedPacket("connection closed inside a packet (truncated)")
                    raise _LinkDown("connection closed by broker")
                self._last_rx = ticks_ms()
                pos = 0
                while pos < n:
                    pos = dec.feed(mv, pos, n)
                    if dec.ready:
                        await self._handle(dec.kind, dec.flags, dec.body())
                        dec.reset()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - handed to the writer loop, which reconnects
            self._fail = e
            self._wake.set()
            self._got_connack.set()

    async def _handle(self, kind, flags, body):
        if self._connack is None:
            if kind != pk.CONNACK:
                raise pk.MalformedPacket("expected CONNACK, got type %d" % kind)
            self._connack = pk.parse_connack(body)
            self._got_connack.set()
            return
        if kind == pk.PUBLISH:
            topic, payload, qos, retain, _dup, pid = pk.parse_publish(flags, body)
            if qos == 2:
                raise pk.MalformedPacket("QoS 2 PUBLISH but we never subscribe above 1")
            self.stats["received"] += 1
            cb = self.on_message
            if cb is not None:
                try:
                    cb(topic, bytes(payload), retain)
                except Exception as e:  # noqa: BLE001 - a callback bug must not kill the link
                    self.stats["cb_errors"] += 1
                    self.last_error = "on_message: %r" % (e,)
            if qos:
                while len(self._acks) >= self._ack_max:
                    self._ack_room.clear()
                    self._wake.set()
                    await self._ack_room.wait()
                self._acks.append(pid)
                self._wake.set()
        elif kind == pk.PUBACK:
            self._acked(pk.parse_pid(body, "PUBACK"))
        elif kind == pk.SUBACK:
            _pid, codes = pk.parse_suback(body)
            for c in codes:
                if c == 0x80:
                    self.stats["sub_failed"] += 1
        elif kind == pk.PINGRESP or kind == pk.UNSUBACK:
            if kind == pk.UNSUBACK:
                pk.parse_pid(body, "UNSUBACK")
            elif len(body):
                raise pk.MalformedPacket("PINGRESP with a body")
        else:
            raise pk.MalformedPacket("unexpected packet type %d from broker" % kind)

    def _acked(self, pid):
        win = self._win
        cap = len(win)
        for i in range(self._wlen):
            s = win[(self._whead + i) % cap]
            if s[0] == pid:
                s[0] = 0
                s[1] = s[2] = None
                self.stats["acked"] += 1
                break
        else:
            return  # a late ack for a message already acked: harmless
        while self._wlen and win[self._whead][0] == 0:
            self._whead = (self._whead + 1) % cap
            self._wlen -= 1
        self._wake.set()

    def _callback(self, cb, arg):
        if cb is None:
            return
        try:
            cb(arg)
        except Exception as e:  # noqa: BLE001
            self.stats["cb_errors"] += 1
            self.last_error = "callback: %r" % (e,)
