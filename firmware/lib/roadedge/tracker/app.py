# The tracker role: a thin shell around the pure tracker modules. Reads the
# GNSS UART (nmea), decides reports (reporting), keeps them in the flash ring
# and sends them oldest first with delete-after-PUBACK (forward), runs the SOS
# latch (sos) and dispatch/duty status (duty), reads the battery and the
# ignition (power), drives the LED/buzzer, publishes state and events.
from roadedge import wire
from roadedge.core import config, state
from roadedge.core.compat import sleep_ms, ticks_ms, ticks_diff
from roadedge.core.store import RecordLog
from roadedge.tracker import nmea, reporting, forward, sos, duty, power
from roadedge.tracker.model import TrackerModel, pick

try:
    import asyncio
except ImportError:  # pragma: no cover
    import uasyncio as asyncio  # type: ignore

DEFAULTS = {}
DEFAULTS.update(reporting.DEFAULTS)
DEFAULTS.update(sos.DEFAULTS)
DEFAULTS.update(duty.DEFAULTS)
DEFAULTS.update(power.DEFAULTS)
DEFAULTS.update(nmea.DEFAULTS)  # GNSS validity rules
DEFAULTS.update({
    "tid": "",  # OwnTracks tracker id (2 chars); default: last 2 of the device id
    "store_records": 12000,  # flash ring capacity (32 B + 8 B header each: ~480 KB)
    "seg_bytes": 16384,
    "send_window": 8,  # reports per publish batch during catch-up
    "poll_ms": 20,  # buttons and ignition
    "batt_s": 30,
    "rtc_s": 600,  # how often GNSS time is written to the hardware RTC
    "state_s": 300,
})
STATE_FILE = "tracker.json"


class MqttLink:
    """forward.Forwarder's link over the platform MQTT client. The client
    keeps QoS 1 messages across reconnects and resends them itself, so 'all
    acknowledged' = nothing queued and nothing in flight."""

    def __init__(self, mqtt, topic):
        self.m = mqtt
        self.topic = topic

    def connected(self):
        return self.m is not None and self.m.is_connected()

    def publish(self, payload):
        return self.m.publish(self.topic, payload, 1, False)

    async def confirm(self):
        m = self.m
        while m.queued() or m.in_flight():
            await sleep_ms(50)
        return True


class TrackerApp:
    def __init__(self, dev):
        self.dev = dev
        p = config.section(dev.cfg, "tracker", DEFAULTS)
        self.p = p
        config.in_range(p, "tracker", "store_records", 10, 100000)
        config.in_range(p, "tracker", "min_period_s", 1, 3600)
        config.in_range(p, "tracker", "emergency_period_s", 1, 3600)
        config.in_range(p, "tracker", "send_window", 1, 32)
        tid = p["tid"] or dev.id[-2:]
        config.require(0 < len(tid) <= 2 and all(c.isalpha() or c.isdigit() for c in tid), "tracker.tid",
                       "1-2 letters or digits")
        self.tid = tid
        hal = dev.hal
        pins = dev.cfg.get("pins") or {}
        self.gnss = hal.uart("gnss")
        self.sos_btn = hal.input("sos_button", "up") if "sos_button" in pins else None
        self.accept_btn = hal.input("accept_button", "up") if "accept_button" in pins else None
        self.ign_in = hal.input("ignition") if "ignition" in pins else None
        self.batt_adc = hal.adc("battery") if "battery" in pins else None
        self.led = hal.output("led") if "led" in pins else None
        self.buzzer = hal.output("buzzer") if "buzzer" in pins else None
        self.dec = nmea.Decoder(pick(p, nmea.DEFAULTS))
        self.path = dev.data_dir + "/" + STATE_FILE
        self.model = m = TrackerModel(p, tid, state.read_json(self.path, None))
        self.sos, self.duty, self.ign = m.sos, m.duty, m.ign
        seg, nseg = forward.store_geometry(p["store_records"], p["seg_bytes"])
        self.store = RecordLog(dev.data_dir + "/track", seg, nseg)
        self.fwd = forward.Forwarder(self.store, tid, p["send_window"])
        self.link = MqttLink(dev.mqtt, wire.location_topic(dev.id))
        self._wake = asyncio.Event()
        self._rtc_at = None
        self._accept_down = None
        self._dropped_reported = self.store.dropped

    # --- helpers -------------------------------------------------------------
    def _count(self, name, n=1):
        c = self.dev.counters
        c[name] = c.get(name, 0) + n

    def _save(self):
        try:
            state.write_json(self.path, self.model.stored())
        except OSError:
            self._count("state_write_errors")

    def _events(self, evs):
        for kind, fields in evs:
            self.dev.event(kind, fields)

    def state(self):
        return self.model.state(self.fwd.backlog(), self.fwd.dropped(), self.dev.now_s())

    def publish_state(self):
        self.dev.publish("state", self.state(), 1, True)

    def telemetry(self):
        t = {"nmea": self.dec.counters(), "backlog": self.fwd.backlog(), "dropped": self.fwd.dropped(),
             "sent": self.fwd.sent, "batt": self.model.batt}
        return t

    # --- reports -------------------------------------------------------------
    def _report(self, fix, reason):
        r = self.model.record(fix, self.dev.next_seq(), reason)
        try:
            self.fwd.add(r, self.link.connected())
        except (OSError, ValueError) as e:
            self._count("store_errors")
            self.dev.log.error("track store: %r" % (e,))
            return
        self._count("reports")
        self._wake.set()

    def on_fix(self, fix, at_ticks):
        why, evs, changed = self.model.fix(fix)
        self.dev.clock.set(fix.unix * 1000 + fix.ms, "gnss", at_ticks)
        if self._rtc_at is None or ticks_diff(at_ticks, self._rtc_at) >= self.p["rtc_s"] * 1000:
            self._rtc_at = at_ticks
            try:
                self.dev.hal.set_rtc(fix.unix)
            except Exception:
                self._count("rtc_errors")
        if why:
            self._report(fix, why)
        self._events(evs)
        if evs:
            self._save()
        if changed:
            self.publish_state()

    async def gnss_task(self):
        dec = self.dec
        u = self.gnss
        t_rmc = ticks_ms()
        while True:
            line = await u.readline()
            if dec.lines & 63 == 0:  # the device clock dates GGA-only epochs and checks week rollover
                dec.set_clock(self.dev.now_s())
            kind = dec.feed(line)
            if kind == nmea.RMC or kind == nmea.GGA and dec.rmc_time != dec.gga_time:
                t_rmc = ticks_ms()  # no PPS: the epoch's first timed sentence stands for it
            f = dec.take_fix()
            if f is not None:
                self.on_fix(f, t_rmc)

    async def send_task(self):
        """Store and forward: oldest first, deleted after the PUBACK."""
        was_up = False
        while True:
            up = self.link.connected()
            if up and not was_up:
                self._on_reconnect()
            if not up:
                self.fwd.link_down()
            was_up = up
            if up and self.fwd.backlog():
                n = await self.fwd.pump_once(self.link, self.dev.now_s())
                if n:
                    self._count("sent", n)
                    continue
            if self.store.dropped != self._dropped_reported:
                lost = self.store.dropped - self._dropped_reported
                self._dropped_reported = self.store.dropped
                self.dev.event("store_overflow", {"dropped": lost, "total": self.store.dropped})
                self.publish_state()
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), 0.5)
            except asyncio.TimeoutError:
                pass

    def _on_reconnect(self):
        self.publish_state()
        if self.sos.latched:  # re-sent on every reconnect until acknowledged
            self._events([self.model.sos_event()])

    # --- SOS ---------------------------------------------------------------
    def raise_sos(self):
        evs, report = self.model.raise_sos(self.dev.now_s())
        self._save()
        self._count("sos")
        self.dev.log.warn("SOS %d raised" % self.sos.id)
        self._events(evs)
        if report:
            self._report(self.model.last_fix, reporting.SOS)
        self.publish_state()

    def _command(self, name):
        def handler(args):
            code, detail, evs = self.model.command(ticks_ms(), name, args)
            if code == "ok":
                self._save()
                self._events(evs)
                self.publish_state()
            return code, detail
        return handler

    # --- buttons, ignition, battery, indicators ----------------------------
    async def io_task(self):
        poll = self.p["poll_ms"]
        next_batt = ticks_ms()
        next_state = ticks_ms()
        while True:
            now = ticks_ms()
            if self.sos_btn is not None and self.sos.button(self.sos_btn.value() == 0, now):
                self.raise_sos()
            if self.accept_btn is not None:
                self._accept_poll(self.accept_btn.value() == 0, now)
            if self.ign_in is not None:
                evs = self.model.ignition(self.ign_in.value(), now, self.dev.uptime_s())
                if evs:
                    self._events(evs)
                    self._save()
                    self.publish_state()
            if self.batt_adc is not None and ticks_diff(now, next_batt) >= 0:
                next_batt = now + self.p["batt_s"] * 1000
                mv = power.battery_mv(self.batt_adc.read_u16(), self.p["vref"], self.p["divider"])
                self.model.batt = power.percent(mv)
            if ticks_diff(now, next_state) >= 0:
                next_state = now + self.p["state_s"] * 1000
                self.publish_state()
            led, buzz = self.model.indicator(now)
            if self.led is not None:
                self.led.value(led)
            if self.buzzer is not None:
                self.buzzer.value(buzz)
            await sleep_ms(poll)

    def _accept_poll(self, pressed, now):
        # debounced short press: pressed for >= debounce_ms, acts on release
        if pressed:
            if self._accept_down is None:
                self._accept_down = now
            return
        down = self._accept_down
        self._accept_down = None
        if down is not None and ticks_diff(now, down) >= self.p["debounce_ms"]:
            evs = self.model.accept(now)
            if evs:
                self._events(evs)
                self._save()
                self.publish_state()


def start(dev):
    app = TrackerApp(dev)
    for name in ("sos_ack", "dispatch"):
        dev.on_command(name, app._command(name))
    dev.on_telemetry(app.telemetry)
    dev.spawn(app.gnss_task(), "gnss")
    dev.spawn(app.send_task(), "forward")
    dev.spawn(app.io_task(), "tracker_io")
    app.publish_state()
    return None
