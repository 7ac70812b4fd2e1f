# The tracker role: a thin shell around the pure tracker modules. Reads the
# GNSS UART (nmea), decides reports (reporting), keeps them in the flash ring
# and sends them oldest first with delete-after-PUBACK (forward), runs the SOS
# latch (sos) and dispatch/duty status (duty), reads the battery and the
# ignition (power), drives the LED/buzzer, publishes state and events.
from roadedge.core import config, state
from roadedge.core.compat import sleep_ms, ticks_ms, ticks_diff
from roadedge.core.store import RecordLog
from roadedge.tracker import nmea, reporting, record, forward, sos, duty, power

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
TOPIC_PREFIX = "owntracks/roadedge/"


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
        self.dec = nmea.Decoder(_pick(p, nmea.DEFAULTS))
        self.rep = reporting.Reporter(_pick(p, reporting.DEFAULTS))
        self.path = dev.data_dir + "/" + STATE_FILE
        saved = state.read_json(self.path, None)
        if not isinstance(saved, dict):
            saved = {}
        self.sos = sos.SOS(_pick(p, sos.DEFAULTS), saved.get("sos"))
        self.duty = duty.Duty(_pick(p, duty.DEFAULTS), saved.get("duty"))
        self.ign = power.Ignition(_pick(p, power.DEFAULTS))
        seg, nseg = forward.store_geometry(p["store_records"], p["seg_bytes"])
        self.store = RecordLog(dev.data_dir + "/track", seg, nseg)
        self.fwd = forward.Forwarder(self.store, tid, p["send_window"])
        self.link = MqttLink(dev.mqtt, TOPIC_PREFIX + dev.id)
        self.batt = -1
        self.last_fix = None
        self.fix_ok = False
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
            state.write_json(self.path, {"sos": self.sos.state(), "duty": self.duty.state()})
        except OSError:
            self._count("state_write_errors")

    def _event(self, ev):
        ev["seq"] = self.dev.next_seq()
        ev["ts"] = self.dev.now_s()
        self.dev.publish("event", ev, 1)

    def state(self):
        s = self.sos
        inc = self.duty.incident
        return {"duty": self.duty.status, "incident": inc["id"] if inc else None,
                "sos": {"latched": s.latched, "id": s.id, "since": s.since},
                "ign": self.ign.on, "batt": self.batt, "fix": self.fix_ok, "tid": self.tid,
                "backlog": self.fwd.backlog(), "dropped": self.fwd.dropped(), "ts": self.dev.now_s()}

    def publish_state(self):
        self.dev.publish("state", self.state(), 1, True)

    def telemetry(self):
        t = {"nmea": self.dec.counters(), "backlog": self.fwd.backlog(), "dropped": self.fwd.dropped(),
             "sent": self.fwd.sent, "batt": self.batt}
        return t

    # --- reports -------------------------------------------------------------
    def _report(self, fix, reason):
        r = record.from_fix(fix, self.dev.next_seq(), self.batt, self.sos.latched, self.ign.on, reason)
        try:
            self.fwd.add(r, self.link.connected())
        except (OSError, ValueError) as e:
            self._count("store_errors")
            self.dev.log.error("track store: %r" % (e,))
            return
        self._count("reports")
        self._wake.set()

    def on_fix(self, fix, at_ticks):
        self.last_fix = fix
        if not self.fix_ok:
            self.fix_ok = True
            self.publish_state()
        self.dev.clock.set(fix.unix * 1000 + fix.ms, "gnss", at_ticks)
        if self._rtc_at is None or ticks_diff(at_ticks, self._rtc_at) >= self.p["rtc_s"] * 1000:
            self._rtc_at = at_ticks
            try:
                self.dev.hal.set_rtc(fix.unix)
            except Exception:
                self._count("rtc_errors")
        v = fix.speed_kmh10()
        why = self.rep.decide(fix.unix, fix.lat, fix.lon, v, fix.course, self.sos.latched)
        if why:
            self._report(fix, why)
            self.rep.reported(fix.unix, fix.lat, fix.lon, v, fix.course)
        ev = self.duty.on_fix(fix.lat, fix.lon, v)
        if ev:
            self._event(ev)
            self._save()
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
                self._event({"type": "store_overflow", "dropped": lost, "total": self.store.dropped})
                self.publish_state()
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), 0.5)
            except asyncio.TimeoutError:
                pass

    def _on_reconnect(self):
        self.publish_state()
        if self.sos.latched:  # re-sent on every reconnect until acknowledged
            self._sos_event()

    # --- SOS ---------------------------------------------------------------
    def _sos_event(self):
        s = self.sos
        ev = {"type": "sos", "id": s.id, "since": s.since, "duty": self.duty.status}
        f = self.last_fix
        if f is not None:
            ev["lat"] = float(record.e7_str(f.lat))
            ev["lon"] = float(record.e7_str(f.lon))
        self._event(ev)

    def raise_sos(self):
        self.sos.trigger(self.dev.now_s())
        self._save()
        self._count("sos")
        self.dev.log.warn("SOS %d raised" % self.sos.id)
        self._sos_event()
        f = self.last_fix
        if f is not None:
            self._report(f, reporting.SOS)
        self.publish_state()

    def cmd_sos_ack(self, args):
        sid = args.get("id")
        if sid is not None and type(sid) is not int:
            return "bad_args", "id: integer"
        by = args.get("by", "")
        if not isinstance(by, str) or len(by) > 32:
            return "bad_args", "by: string up to 32"
        code, detail = self.sos.ack(sid, by, ticks_ms())
        if code == "ok":
            self._save()
            self._event({"type": "sos_ack", "id": self.sos.id, "by": by})
            self.publish_state()
        return code, detail

    def cmd_dispatch(self, args):
        code, detail = self.duty.dispatch(args, ticks_ms())
        if code == "ok":
            self._save()
            self.publish_state()
        return code, detail

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
            if self.ign_in is not None and self.ign.feed(self.ign_in.value(), now):
                self._event({"type": "ignition", "on": self.ign.on})
                self.publish_state()
            if self.ign_in is not None:
                ev = self.duty.ignition(self.ign.on, self.dev.uptime_s())
                if ev:
                    self._event(ev)
                    self._save()
                    self.publish_state()
            if self.batt_adc is not None and ticks_diff(now, next_batt) >= 0:
                next_batt = now + self.p["batt_s"] * 1000
                mv = power.battery_mv(self.batt_adc.read_u16(), self.p["vref"], self.p["divider"])
                self.batt = power.percent(mv)
            if ticks_diff(now, next_state) >= 0:
                next_state = now + self.p["state_s"] * 1000
                self.publish_state()
            led, buzz = self.sos.indicator(now)
            if not led and not buzz:
                led, buzz = self.duty.indicator(now)
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
            ev = self.duty.accept(now)
            if ev:
                self._event(ev)
                self._save()
                self.publish_state()


def _pick(p, keys):
    out = {}
    for k in keys:
        out[k] = p[k]
    return out


def start(dev):
    app = TrackerApp(dev)
    dev.on_command("sos_ack", app.cmd_sos_ack)
    dev.on_command("dispatch", app.cmd_dispatch)
    dev.on_telemetry(app.telemetry)
    dev.spawn(app.gnss_task(), "gnss")
    dev.spawn(app.send_task(), "forward")
    dev.spawn(app.io_task(), "tracker_io")
    app.publish_state()
    return None
