# The machine-module HAL shared by the rp2 and esp32 ports. The port passes
# its own `machine`/`network` modules in, so this file imports no hardware
# module itself (and can be exercised with fakes). Names -> GPIO numbers come
# from cfg["pins"], cfg["uarts"], cfg["spi"], cfg["i2c"].
from roadedge.core.compat import sleep_ms, ticks_diff, ticks_ms
from roadedge.hal.edges import EdgeQueue
from roadedge.hal.lines import LineReader

try:
    import asyncio
except ImportError:  # pragma: no cover
    import uasyncio as asyncio  # type: ignore


class _PWM:
    def __init__(self, pwm, freq):
        self._p = pwm
        self._p.freq(freq)
        self._d = 0.0
        self._p.duty_u16(0)

    def duty(self, x=None):
        if x is None:
            return self._d
        x = 0.0 if x < 0 else (1.0 if x > 1 else float(x))
        self._d = x
        self._p.duty_u16(int(x * 65535))
        return x


class _SPI:
    """One write() = one transaction framed by chip-select (as the sim port):
    a MAX7219 chain latches its shift registers on the rising CS (LOAD) edge."""

    def __init__(self, bus, cs):
        self.bus = bus
        self.cs = cs

    def write(self, buf):
        cs = self.cs
        if cs is None:
            self.bus.write(buf)
            return
        cs.value(0)
        try:
            self.bus.write(buf)
        finally:
            cs.value(1)


class _UART(LineReader):
    def __init__(self, uart, maxlen):
        super().__init__(maxlen)
        self._u = uart
        self._s = asyncio.StreamReader(uart)  # type: ignore[call-arg]

    async def _more(self):
        d = await self._s.read(64)
        if d:
            self._sp.feed(d)

    def write(self, data):
        return self._u.write(data)


class McuHAL:
    def __init__(self, cfg, machine, network, port):
        self.cfg = cfg
        self.port = port
        self._m = machine
        self._net = network
        self._pins = cfg.get("pins") or {}
        self._wlan = None
        self._edge_pins = []  # keep IRQ'd pins alive

    def _gpio(self, name):
        g = self._pins.get(name)
        if g is None:
            raise KeyError("pin %r is not in the board config (%s)" % (name, ", ".join(sorted(self._pins))))
        return g

    def _bus(self, kind, name):
        b = (self.cfg.get(kind) or {}).get(name)
        if b is None:
            raise KeyError("%s %r is not in the board config" % (kind, name))
        return b

    async def start(self):
        pass

    def output(self, name):
        return self._m.Pin(self._gpio(name), self._m.Pin.OUT)

    def input(self, name, pull=None):
        P = self._m.Pin
        p = {"up": P.PULL_UP, "down": P.PULL_DOWN}.get(pull) if pull else None
        return P(self._gpio(name), P.IN, p)

    def edges(self, name, rising=True, falling=False, debounce_ms=0, capacity=16):
        P = self._m.Pin
        pin = P(self._gpio(name), P.IN)
        q = EdgeQueue(capacity, debounce_ms)
        trig = (P.IRQ_RISING if rising else 0) | (P.IRQ_FALLING if falling else 0)
        stamp = q.stamp  # bound once: the ISR must not allocate

        def isr(_pin):
            stamp(ticks_ms())

        pin.irq(handler=isr, trigger=trig)
        self._edge_pins.append(pin)
        return q

    def pwm(self, name, freq=1000):
        return _PWM(self._m.PWM(self._m.Pin(self._gpio(name))), freq)

    def adc(self, name):
        return self._m.ADC(self._m.Pin(self._gpio(name)))

    def uart(self, name, maxlen=128):
        u = self._bus("uarts", name)
        kw = {"baudrate": u.get("baud", 9600)}
        if "tx" in u:
            kw["tx"] = self._m.Pin(u["tx"])
        if "rx" in u:
            kw["rx"] = self._m.Pin(u["rx"])
        return _UART(self._m.UART(u.get("id", 1), **kw), maxlen)

    def spi(self, name):
        s = self._bus("spi", name)
        P = self._m.Pin
        bus = self._m.SPI(s.get("id", 0), baudrate=s.get("baud", 1000000),
                          sck=P(s["sck"]), mosi=P(s["mosi"]), miso=P(s["miso"]) if "miso" in s else None)
        cs = P(s["cs"], P.OUT, value=1) if "cs" in s else None
        return _SPI(bus, cs)

    def i2c(self, name):
        s = self._bus("i2c", name)
        P = self._m.Pin
        return self._m.I2C(s.get("id", 0), scl=P(s["scl"]), sda=P(s["sda"]), freq=s.get("freq", 400000))

    def watchdog(self, timeout_ms):
        return self._m.WDT(timeout=timeout_ms)

    def set_rtc(self, unix_s):
        import time

        t = time.gmtime(int(unix_s))
        # RTC.datetime: (year, month, day, weekday, hours, minutes, seconds, subseconds)
        self._m.RTC().datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0))

    def reset(self):
        self._m.reset()

    def reset_cause(self):
        m = self._m
        c = m.reset_cause()
        if c == getattr(m, "PWRON_RESET", -1):
            return "power_on"
        if c == getattr(m, "WDT_RESET", -1):
            return "watchdog"
        if c == getattr(m, "SOFT_RESET", -1) or c == getattr(m, "HARD_RESET", -2):
            return "soft"
        return "unknown"

    async def net_up(self, cfg=None, timeout_ms=20000):
        """Join the Wi-Fi of cfg["network"]; False after timeout_ms (the app retries)."""
        cfg = cfg or self.cfg
        n = cfg.get("network") or {}
        if not n.get("ssid"):
            return False
        if self._wlan is None:
            self._wlan = self._net.WLAN(self._net.STA_IF)
        w = self._wlan
        if w.isconnected():
            return True
        w.active(True)
        try:
            w.connect(n["ssid"], n.get("password", ""))
        except OSError:
            return False
        t0 = ticks_ms()
        while not w.isconnected():
            if ticks_diff(ticks_ms(), t0) > timeout_ms:
                try:
                    w.disconnect()
                except OSError:
                    pass
                return False
            await sleep_ms(200)
        return True

    def net_ok(self):
        return self._wlan is not None and self._wlan.isconnected()

    def close(self):
        for p in self._edge_pins:
            p.irq(handler=None)
        self._edge_pins = []
