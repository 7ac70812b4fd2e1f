# Forward-scatter visibility meter: line protocol decoder (pure), meter
# health (pure, time passed in) and a thin poller over a HAL UART.
# Protocol: docs/visibility_meter.md.
import asyncio
from roadedge.core.compat import ticks_ms, ticks_diff, sleep_ms

# status flag bits in the reply
WINDOW = 0x01  # window contamination: warning, reading still valid
HEATER = 0x02  # heater fault: warning, reading still valid
EMITTER = 0x04  # transmitter fault: reading unusable
RECEIVER = 0x08  # receiver fault: reading unusable
POWER = 0x10  # supply out of range: reading unusable
WARMUP = 0x20  # warming up / averaging incomplete: no reading yet
FAULT_MASK = EMITTER | RECEIVER | POWER
FLAG_NAMES = ((WINDOW, "window"), (HEATER, "heater"), (EMITTER, "emitter"), (RECEIVER, "receiver"),
              (POWER, "power"), (WARMUP, "warmup"))
MOR_MAX = 20000
MAX_LINE = 64

DEFAULTS = {"addr": 1, "poll_s": 5.0, "reply_ms": 1500, "miss_polls": 1}


def checksum(body):
    """XOR of the bytes between '$' and '*' (as in NMEA 0183)."""
    c = 0
    for b in body:
        c ^= b
    return c


def frame(body):
    """b'VMPOL,01' -> b'$VMPOL,01*5D\\r\\n'"""
    return b"$" + body + b"*" + (b"%02X" % checksum(body)) + b"\r\n"


def poll_command(addr):
    return frame(b"VMPOL,%02d" % addr)


def flag_names(flags):
    return [n for bit, n in FLAG_NAMES if flags & bit]


def unframe(line, max_len):
    """b'$BODY*HH' (surrounding space ignored) -> b'BODY', its checksum
    verified. Raises ValueError("format") or ValueError("checksum")."""
    line = line.strip()
    if len(line) > max_len or len(line) < 4 or line[0:1] != b"$" or line[-3:-2] != b"*":
        raise ValueError("format")
    body = line[1:-3]
    try:
        cs = int(line[-2:], 16)
    except ValueError:
        raise ValueError("format")
    if checksum(body) != cs:
        raise ValueError("checksum")
    return body


def parse(line):
    """Decode one reply line (bytes). Returns (addr, mor_m or None, flags).
    Raises ValueError("<reason>") with reason one of: format, checksum,
    sentence, field, range."""
    parts = unframe(line, MAX_LINE).split(b",")
    if parts[0] != b"VMMOR":
        raise ValueError("sentence")
    if len(parts) != 4:
        raise ValueError("field")
    try:
        addr = int(parts[1])
        flags = int(parts[3], 16)
        mor = None if parts[2] == b"/////" else int(parts[2])
    except ValueError:
        raise ValueError("field")
    if not 0 <= addr <= 99 or not 0 <= flags <= 0xFF or (mor is not None and not 0 <= mor <= MOR_MAX):
        raise ValueError("range")
    return addr, mor, flags


def reply_line(addr, mor, flags):
    """Encode a reply (used by the virtual meter and tests)."""
    m = b"/////" if mor is None else b"%d" % mor
    return frame(b"VMMOR,%02d," % addr + m + b",%02X" % flags)


OK = "ok"
INIT = "init"  # no reading yet since boot: safe mode, no fault report
SILENT = "silent"
FAULT = "fault"


class MeterHealth:
    """Pure meter state. usable() is False in init/silent/fault; a reply
    with a fault flag is a fault at once, an unanswered poll (miss_polls in a
    row) is silence. Times are monotonic ms."""

    def __init__(self, miss_polls=1):
        self.status = INIT
        self.reason = None
        self.mor = None
        self.flags = 0
        self.miss_polls = miss_polls
        self._misses = 0
        self._answered = False

    def usable(self):
        return self.status == OK

    def _set(self, status, reason):
        if status == self.status and reason == self.reason:
            return False
        self.status, self.reason = status, reason
        return True

    def polled(self):
        """A poll went out."""
        self._answered = False

    def reply(self, mor, flags):
        """A well-formed reply arrived; return True when status changed."""
        self.flags = flags
        if flags & FAULT_MASK:
            self.mor = None
            self._answered = True
            return self._set(FAULT, ",".join(flag_names(flags & FAULT_MASK)))
        if mor is None:
            # warming up: no reading, not yet an answer (silence timer runs)
            return False
        self.mor = mor
        self._answered = True
        self._misses = 0
        return self._set(OK, None)

    def reply_due(self):
        """The reply window of the last poll closed; True when status changed."""
        if self._answered:
            return False
        self._misses += 1
        if self._misses >= self.miss_polls:
            self.mor = None
            return self._set(SILENT, "no_reply" if not self.flags & WARMUP else "warmup")
        return False


class MeterPoller:
    """Polls the meter on its UART and feeds MeterHealth. on_change(health)
    runs on every status change; on_reading(mor, flags) on every reading."""

    def __init__(self, uart, cfg, counters, on_reading, on_change):
        c = dict(DEFAULTS)
        c.update(cfg or {})
        self.cfg = c
        self.uart = uart
        self.poll_ms = int(c["poll_s"] * 1000)
        self.reply_ms = min(int(c["reply_ms"]), self.poll_ms // 2)
        self.health = MeterHealth(c["miss_polls"])
        self.ctr = counters
        self.on_reading = on_reading
        self.on_change = on_change
        self._poll = poll_command(c["addr"])

    def _count(self, name):
        self.ctr[name] = self.ctr.get(name, 0) + 1

    def line(self, raw):
        """Handle one received line (also used directly by tests)."""
        try:
            addr, mor, flags = parse(raw)
        except ValueError as e:
            self._count("meter_bad_" + str(e))
            return
        if addr != self.cfg["addr"]:
            self._count("meter_bad_addr")
            return
        self._count("meter_replies")
        changed = self.health.reply(mor, flags)
        if changed:
            self.on_change(self.health)
        if mor is not None and not flags & FAULT_MASK:
            self.on_reading(mor, flags)

    async def read_loop(self):
        while True:
            raw = await self.uart.readline()
            if raw:
                self.line(raw)

    async def poll_loop(self):
        while True:
            t0 = ticks_ms()
            self.health.polled()
            self.uart.write(self._poll)
            self._count("meter_polls")
            await sleep_ms(self.reply_ms)
            if self.health.reply_due():
                self.on_change(self.health)
            left = self.poll_ms - ticks_diff(ticks_ms(), t0)
            if left > 0:
                await sleep_ms(left)

    def tasks(self):
        return (self.read_loop(), self.poll_loop())


_ = asyncio  # the loops are scheduled by the app with dev.spawn
