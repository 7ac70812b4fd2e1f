# Sim port: the board's hardware is served by the host simulator
# (sim/hw.py HardwareServer) as JSON lines. Device -> host messages carry
# what the firmware drives (outputs, PWM, UART TX, SPI, watchdog); host ->
# device messages carry what the world feeds in (inputs, ADC, UART RX, link
# state). Inputs are cached locally so reads never wait on the socket.
#
# Transport seam: SimHAL talks to a `link` with hello(msg) -> welcome dict,
# send(msg) and start(receive) -- SocketLink (TCP, default) or any object
# the in-process CPython simulator binds directly to a DeviceHW.
import json
import sys
from binascii import unhexlify

from roadedge.core.compat import IS_MICROPYTHON, ThreadSafeFlag, const, ticks_diff, ticks_ms
from roadedge.hal.lines import LineSplitter

try:
    import asyncio
except ImportError:  # pragma: no cover
    import uasyncio as asyncio  # type: ignore

# exit status of a sim device that asked for a reset: the supervisor restarts it
EXIT_RESET = 75
# exit status of a sim device whose hardware server went away
EXIT_POWER_OFF = 76
_OUTBOX = const(64)  # queued messages to the server; beyond this they are dropped and counted
_RX_MAX = const(2048)  # longest JSON line accepted from the server


class SimLinkError(Exception):
    pass


class SocketLink:
    """JSON lines over TCP to the HardwareServer."""

    def __init__(self, addr, timeout_s=5):
        host, _, port = addr.rpartition(":")
        if not host or not port.isdigit():
            raise SimLinkError("sim.hw must be host:port, got %r" % addr)
        self.host = host
        self.port = int(port)
        self.timeout_s = timeout_s
        self._r = None
        self._w = None
        self._sp = LineSplitter(_RX_MAX, 16)
        self._out = []
        self._flag = ThreadSafeFlag()
        self.dropped = 0
        self.closed = False
        self._tasks = []

    async def hello(self, msg):
        try:
            self._r, self._w = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.timeout_s)
            self._w.write(json.dumps(msg).encode() + b"\n")
            await self._w.drain()
            return await asyncio.wait_for(self._welcome(), self.timeout_s)
        except (OSError, asyncio.TimeoutError) as e:
            raise SimLinkError("hardware server %s:%d unreachable: %r" % (self.host, self.port, e))

    async def _welcome(self):
        while True:
            line = self._sp.pop()
            if line is not None:
                return json.loads(line)
            d = await self._r.read(512)  # type: ignore[union-attr]
            if not d:
                raise SimLinkError("hardware server closed during hello")
            self._sp.feed(d)

    def send(self, msg):
        if self.closed:
            return
        if len(self._out) >= _OUTBOX:
            self.dropped += 1
            return
        self._out.append(json.dumps(msg).encode() + b"\n")
        self._flag.set()

    def start(self, receive):
        if not self._tasks and self._r is not None:
            self._tasks.append(asyncio.create_task(self._reader(receive)))
            self._tasks.append(asyncio.create_task(self._writer()))

    async def _reader(self, receive):
        sp = self._sp
        try:
            while True:
                line = sp.pop()
                while line is not None:
                    try:
                        receive(json.loads(line))
                    except ValueError:
                        pass  # a cut line from the server: skip it
                    line = sp.pop()
                d = await self._r.read(512)  # type: ignore[union-attr]
                if not d:
                    break
                sp.feed(d)
        except OSError:
            pass
        self.closed = True
        receive({"op": "lost"})
        # The simulated board lost its power: end the process, so a simulator
        # that died leaves no orphan devices behind.
        print("roadedge: hardware server closed the link: powering off")
        sys.exit(EXIT_POWER_OFF)

    async def _writer(self):
        w = self._w
        while True:
            while self._out:
                w.write(self._out.pop(0))  # type: ignore[union-attr]
                await w.drain()  # type: ignore[union-attr]
            await self._flag.wait()

    def flush_blocking(self):
        """Best effort: push what is queued before the process exits (reset)."""
        w = self._w
        if w is None:
            return
        try:
            if IS_MICROPYTHON:
                s = getattr(w, "s")  # the Stream's socket
                s.setblocking(True)
                while self._out:
                    s.send(self._out.pop(0))
            else:
                import os

                fd = w.get_extra_info("socket").fileno()  # type: ignore[union-attr]
                while self._out:
                    os.write(fd, self._out.pop(0))
        except Exception:  # exiting anyway; the host also sees the exit status
            pass

    def close(self):
        for t in self._tasks:
            t.cancel()
        self._tasks = []
        if self._w is not None:
            try:
                self._w.close()
            except OSError:
                pass
        self.closed = True


class _WDT:
    def __init__(self, hal, timeout_ms):
        self._hal = hal
        hal._send({"op": "wdt", "ms": timeout_ms})

    def feed(self):
        self._hal._send({"op": "feed"})


def _io():
    from roadedge.hal import sim_io

    return sim_io


class SimHAL:
    port = "sim"

    def __init__(self, cfg, link=None):
        self.cfg = cfg
        self.id = cfg.get("id", "?")
        self._pins = cfg.get("pins") or {}
        self._uarts_cfg = cfg.get("uarts") or {}
        self._inputs = {}
        self._pulls = {}
        self._adc = {}
        self._i2c = {}
        self._edges = {}
        self._uarts = {}
        self._said = {}
        self._net = False
        self._net_flag = ThreadSafeFlag()
        self._started = False
        self.lost = False
        if link is None:
            hw = (cfg.get("sim") or {}).get("hw")
            if not hw:
                raise SimLinkError("board 'sim' needs sim.hw = \"host:port\" of the hardware server")
            link = SocketLink(hw)
        self.link = link
        self._reset_cause = "unknown"

    def _apply_state(self, w):
        self._net = bool(w.get("net", True))
        for k, v in (w.get("in") or {}).items():
            self._inputs[k] = v
        for k, v in (w.get("adc") or {}).items():
            self._adc[k] = v
        for k, v in (w.get("i2c") or {}).items():
            self._i2c[k] = unhexlify(v)

    # -- link
    async def start(self):
        """Connect to the simulated board (hello/welcome) and start the link I/O.
        Outputs set before this are queued and go out once connected."""
        if self._started:
            return
        w = await self.link.hello({"op": "hello", "id": self.id, "pins": list(self._pins),
                                   "uarts": list(self._uarts_cfg)})
        self._reset_cause = w.get("reset_cause", "power_on")
        self._apply_state(w)
        self._started = True
        self.link.start(self._receive)

    def _send(self, msg):
        self.link.send(msg)

    def _receive(self, m):
        op = m.get("op")
        name = m.get("name")
        if op == "in":
            v = 1 if m.get("v") else 0
            old = self._level(name)
            self._inputs[name] = v
            if v != old:
                t = ticks_ms()
                for q, rising, falling in self._edges.get(name, ()):
                    if (v and rising) or (not v and falling):
                        q.stamp(t)
        elif op == "adc":
            self._adc[name] = int(m.get("v", 0)) & 0xFFFF
        elif op == "uart":
            u = self._uarts.get(name)
            if u is not None:
                u._rx(unhexlify(m.get("data", "")))
        elif op == "net":
            self._net = bool(m.get("up"))
            self._net_flag.set()
        elif op == "i2c_mem":
            key = "%s/%d/%d" % (name, m.get("addr", 0), m.get("reg", 0))
            self._i2c[key] = unhexlify(m.get("data", ""))
        elif op == "lost":
            # hardware server gone: the board is unpowered in the simulation
            self.lost = True
            self._net = False
            self._net_flag.set()

    def _need(self, table, name, what):
        if name not in table:
            raise KeyError("%s %r is not in the board config (%s)" % (what, name, ", ".join(sorted(table))))

    # -- HAL API
    def output(self, name):
        self._need(self._pins, name, "pin")
        return _io().Out(self, name)

    def input(self, name, pull=None):
        self._need(self._pins, name, "pin")
        if pull == "up":
            # an undriven pin with a pull-up reads 1, as on the board
            self._pulls[name] = 1
            self._send({"op": "pull", "name": name, "up": True})
        return _io().In(self, name)

    def _level(self, name):
        return self._inputs.get(name, self._pulls.get(name, 0))

    def edges(self, name, rising=True, falling=False, debounce_ms=0, capacity=16):
        self._need(self._pins, name, "pin")
        from roadedge.hal.edges import EdgeQueue

        q = EdgeQueue(capacity, debounce_ms)
        self._edges.setdefault(name, []).append((q, rising, falling))
        return q

    def pwm(self, name, freq=1000):
        self._need(self._pins, name, "pin")
        return _io().PWM(self, name, freq)

    def adc(self, name):
        self._need(self._pins, name, "pin")
        return _io().ADC(self, name)

    def uart(self, name, maxlen=128):
        self._need(self._uarts_cfg, name, "uart")
        u = self._uarts.get(name)
        if u is None:
            u = self._uarts[name] = _io().UART(self, name, maxlen)
        return u

    def spi(self, name):
        return _io().SPI(self, name)

    def i2c(self, name):
        return _io().I2C(self, name)

    def watchdog(self, timeout_ms):
        return _WDT(self, timeout_ms)

    def set_rtc(self, unix_s):
        self._send({"op": "rtc", "t": unix_s})

    def reset(self):
        self._send({"op": "reset"})
        flush = getattr(self.link, "flush_blocking", None)
        if flush:
            flush()
        sys.exit(EXIT_RESET)

    async def net_up(self, cfg=None, timeout_ms=10000):
        await self.start()
        t0 = ticks_ms()
        while not self._net:
            left = timeout_ms - ticks_diff(ticks_ms(), t0)
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self._net_flag.wait(), left / 1000)
            except asyncio.TimeoutError:
                return False
        return True

    def net_ok(self):
        return self._net

    def reset_cause(self):
        return self._reset_cause

    def close(self):
        self.link.close()

