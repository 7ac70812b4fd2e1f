# HAL pieces that need no hardware: the edge queue (ISR ring), bounded UART
# line splitting, and the machine-module port driven by a fake `machine`.
import asyncio

import fwtest
from roadedge.hal.edges import EdgeQueue
from roadedge.hal.lines import LineSplitter
from roadedge.hal.mcu import McuHAL
from roadedge import hal


def test_edge_queue_fifo_and_overflow_counted():
    q = EdgeQueue(capacity=3)
    for t in (10, 20, 30, 40, 50):
        q.stamp(t)
    assert q.pending() == 3 and q.dropped == 2
    assert [q.get_nowait(), q.get_nowait(), q.get_nowait(), q.get_nowait()] == [10, 20, 30, None]
    # the ring keeps working across many wraps of its indices
    for t in range(100):
        q.stamp(t)
        assert q.get_nowait() == t
    assert q.dropped == 2


def test_edge_queue_debounce():
    q = EdgeQueue(capacity=8, debounce_ms=50)
    for t in (1000, 1010, 1049, 1050, 1200):
        q.stamp(t)
    assert [q.get_nowait() for _ in range(3)] == [1000, 1050, 1200]
    assert q.bounced == 2


async def test_edge_queue_get_waits_for_a_stamp():
    q = EdgeQueue()

    async def later():
        await asyncio.sleep(0.01)
        q.stamp(1234)

    asyncio.create_task(later())
    assert await asyncio.wait_for(q.get(), 5) == 1234


def test_edge_queue_rejects_zero_capacity():
    fwtest.raises(ValueError, EdgeQueue, 0)


def test_lines_split_across_chunks():
    s = LineSplitter(maxlen=16)
    s.feed(b"$GPRMC,1")
    assert s.pop() is None
    s.feed(b"*00\r\n$GP")
    s.feed(b"GGA\r\n")
    assert s.pop() == b"$GPRMC,1*00\r\n"
    assert s.pop() == b"$GPGGA\r\n"
    assert s.pop() is None and s.cut == 0


def test_lines_overlong_cut_and_counted():
    s = LineSplitter(maxlen=8)
    s.feed(b"0123456789abcdef\nok\n")
    assert s.pop() == b"01234567"
    assert s.pop() == b"ok\n"
    assert s.cut == 1
    # an overlong line spread over chunks is skipped up to its newline
    s.feed(b"xxxxxxxxxx")
    s.feed(b"yyyy")
    s.feed(b"y\nz\n")
    assert s.pop() == b"xxxxxxxx" and s.pop() == b"z\n" and s.cut == 2


def test_lines_backlog_bounded():
    s = LineSplitter(maxlen=8, depth=2)
    s.feed(b"a\nb\nc\n")
    assert s.dropped == 1
    assert s.pop() == b"b\n" and s.pop() == b"c\n"


class _FakePin:
    OUT = 1
    IN = 0
    PULL_UP = 2
    PULL_DOWN = 3
    IRQ_RISING = 4
    IRQ_FALLING = 8
    made = []

    def __init__(self, n, mode=None, pull=None, value=None):
        self.n = n
        self.mode = mode
        self.pull = pull
        self.v = 0 if value is None else value
        self.handler = None
        self.trigger = 0
        _FakePin.made.append(self)

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v

    def irq(self, handler=None, trigger=0):
        self.handler = handler
        self.trigger = trigger


class _FakePWM:
    def __init__(self, pin):
        self.pin = pin
        self.f = 0
        self.d = -1

    def freq(self, f):
        self.f = f

    def duty_u16(self, d):
        self.d = d


class _FakeSPI:
    log = []  # (bytes written, chip-select level while writing)

    def __init__(self, bus_id, baudrate=0, sck=None, mosi=None, miso=None):
        self.bus_id = bus_id
        self.cs = None

    def write(self, buf):
        _FakeSPI.log.append((bytes(buf), self.cs.v if self.cs else None))


class _FakeMachine:
    Pin = _FakePin
    PWM = _FakePWM
    SPI = _FakeSPI
    PWRON_RESET = 1
    WDT_RESET = 3
    SOFT_RESET = 5

    def __init__(self):
        self.cause = 3

    def reset_cause(self):
        return self.cause


class _FakeWLAN:
    def __init__(self, _if):
        self.up = False
        self.joined = None

    def isconnected(self):
        return self.joined is not None

    def active(self, on):
        self.up = on

    def connect(self, ssid, pw):
        if pw == "right":
            self.joined = ssid

    def disconnect(self):
        self.joined = None


class _FakeNetwork:
    STA_IF = 0
    WLAN = _FakeWLAN


CFG = {"id": "t-1", "board": "pico_w", "pins": {"lamp": 15, "btn": 14, "fan": 16}}


def test_mcu_port_maps_names_to_gpio():
    m = _FakeMachine()
    h = McuHAL(CFG, m, _FakeNetwork(), "rp2")
    lamp = h.output("lamp")
    assert lamp.n == 15 and lamp.mode == _FakePin.OUT
    assert h.input("btn", pull="up").pull == _FakePin.PULL_UP
    e = fwtest.raises(KeyError, h.output, "horn")
    assert "lamp" in str(e)
    p = h.pwm("fan", freq=200)
    assert p.duty(0.5) == 0.5 and p._p.d == 32767 and p._p.f == 200
    assert p.duty(3) == 1.0 and p.duty() == 1.0
    assert h.reset_cause() == "watchdog"
    m.cause = 1
    assert h.reset_cause() == "power_on"


def test_mcu_port_edge_isr_stamps_queue():
    h = McuHAL(CFG, _FakeMachine(), _FakeNetwork(), "rp2")
    q = h.edges("btn", rising=True, falling=True, capacity=2)
    pin = _FakePin.made[-1]
    assert pin.trigger == _FakePin.IRQ_RISING | _FakePin.IRQ_FALLING
    for _ in range(3):
        pin.handler(pin)
    assert q.pending() == 2 and q.dropped == 1
    h.close()
    assert pin.handler is None


async def test_mcu_port_wifi_join_and_timeout():
    h = McuHAL(dict(CFG, network={"ssid": "road", "password": "right"}), _FakeMachine(), _FakeNetwork(), "rp2")
    assert not h.net_ok()
    assert await h.net_up()
    assert h.net_ok()
    bad = McuHAL(dict(CFG, network={"ssid": "road", "password": "wrong"}), _FakeMachine(), _FakeNetwork(), "rp2")
    assert not await bad.net_up(timeout_ms=300)
    assert not await McuHAL(CFG, _FakeMachine(), _FakeNetwork(), "rp2").net_up()  # no ssid configured


def test_open_refuses_unknown_board():
    e = fwtest.raises(hal.HALError, hal.open, {"board": "arduino"})
    assert "arduino" in str(e)


def test_sim_port_needs_hw_address():
    from roadedge.hal.sim import SimLinkError

    fwtest.raises(SimLinkError, hal.open, {"id": "s", "board": "sim"})
    fwtest.raises(SimLinkError, hal.open, {"id": "s", "board": "sim", "sim": {"hw": "nohost"}})


def test_mcu_port_spi_write_is_one_chip_select_framed_transaction():
    cfg = {"id": "t-2", "board": "pico_w", "pins": {},
           "spi": {"display": {"id": 0, "sck": 18, "mosi": 19, "cs": 17}, "bare": {"id": 1, "sck": 10, "mosi": 11}}}
    h = McuHAL(cfg, _FakeMachine(), _FakeNetwork(), "rp2")
    d = h.spi("display")
    cs = _FakePin.made[-1]
    assert cs.n == 17 and cs.mode == _FakePin.OUT and cs.v == 1  # idle high: the chain holds its registers
    d.bus.cs = cs
    del _FakeSPI.log[:]
    d.write(b"\x0c\x01")
    assert _FakeSPI.log == [(b"\x0c\x01", 0)]  # written while selected
    assert cs.v == 1  # released: the MAX7219 latches on this rising edge
    h.spi("bare").write(b"\x01")
    assert _FakeSPI.log[-1] == (b"\x01", None)
