# Vehicle detector: detections from the HAL edge queue (the ISR only stamps
# ticks; this runs in a task), optional speed from the radar's serial output.
# Radar sentence (docs/visibility_meter.md): $RDSPD,<km/h>,<A|V>*HH
from roadedge.core.compat import ticks_diff
from roadedge.beacon.meter import unframe

DEFAULTS = {"debounce_ms": 80, "speed_valid_ms": 1500}


def parse_speed(line):
    """b'$RDSPD,082,A*HH' -> 82.0; None for a 'V' (void) sentence.
    Raises ValueError(reason) like meter.parse."""
    parts = unframe(line, 40).split(b",")
    if parts[0] != b"RDSPD" or len(parts) != 3:
        raise ValueError("sentence")
    if parts[2] == b"V":
        return None
    if parts[2] != b"A":
        raise ValueError("field")
    try:
        v = float(parts[1])
    except ValueError:
        raise ValueError("field")
    if not 0 <= v <= 300:
        raise ValueError("range")
    return v


class SpeedMemory:
    """Latest radar speed, valid for valid_ms around a detection."""

    def __init__(self, valid_ms=1500):
        self.valid_ms = valid_ms
        self.kmh = None
        self.at = 0

    def put(self, now_ticks, kmh):
        self.kmh, self.at = kmh, now_ticks

    def speed_at(self, ticks):
        if self.kmh is None or abs(ticks_diff(ticks, self.at)) > self.valid_ms:
            return None
        return self.kmh


class Detector:
    """Runs the detector tasks; on_detect(ticks, speed_kmh or None)."""

    def __init__(self, hal, cfg, counters, on_detect, radar_uart=None):
        c = dict(DEFAULTS)
        c.update(cfg or {})
        self.edges = hal.edges("detector", rising=True, debounce_ms=c["debounce_ms"], capacity=16)
        self.radar = radar_uart
        self.speed = SpeedMemory(c["speed_valid_ms"])
        self.ctr = counters
        self.on_detect = on_detect

    async def edge_loop(self):
        while True:
            t = await self.edges.get()
            self.ctr["detections"] = self.ctr.get("detections", 0) + 1
            self.on_detect(t, self.speed.speed_at(t))

    def radar_line(self, raw, now_ticks):
        try:
            v = parse_speed(raw)
        except ValueError as e:
            k = "radar_bad_" + str(e)
            self.ctr[k] = self.ctr.get(k, 0) + 1
            return
        if v is not None:
            self.speed.put(now_ticks, v)

    async def radar_loop(self):
        from roadedge.core.compat import ticks_ms

        r = self.radar
        if r is None:
            return
        while True:
            raw = await r.readline()
            if raw:
                self.radar_line(raw, ticks_ms())

    def tasks(self):
        return (self.edge_loop(), self.radar_loop()) if self.radar else (self.edge_loop(),)
