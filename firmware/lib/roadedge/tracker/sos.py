# SOS: a debounced long press latches an alarm that stays set (across broker
# outages and reboots: the shell persists state()) until the dispatcher's
# acknowledgement arrives. Pure: button levels and times come in, decisions
# and indicator levels go out.
#
# Indicator patterns (LED, buzzer) so the rider sees what the centre knows:
#   latched, not yet acknowledged: LED fast blink (4 Hz), short beep every 2 s
#   acknowledged: LED steady on for ack_show_ms, no sound, then idle (off)

from roadedge.core.compat import ticks_diff

DEFAULTS = {"long_press_ms": 2000, "debounce_ms": 50, "ack_show_ms": 10000}


class SOS:
    def __init__(self, params=None, saved=None):
        p = dict(DEFAULTS)
        if params:
            p.update(params)
        self.long_press_ms = p["long_press_ms"]
        self.debounce_ms = p["debounce_ms"]
        self.ack_show_ms = p["ack_show_ms"]
        self.latched = False
        self.id = 0  # increments per alarm; the ack names it
        self.since = 0  # unix s when latched
        self.acked_by = ""
        self._down = None  # ticks when the press began
        self._up = None  # ticks when a release began (bounce filter)
        self._fired = False  # this press already raised an alarm
        self._acked_at = None  # ticks of the last ack (indicator)
        if isinstance(saved, dict):
            self.latched = saved.get("latched") is True
            i = saved.get("id")
            self.id = i if type(i) is int and i >= 0 else 0
            s = saved.get("since")
            self.since = s if type(s) is int else 0

    def state(self):
        return {"latched": self.latched, "id": self.id, "since": self.since}

    def button(self, pressed, now_ms):
        """Feed the button level (True = pressed) every poll. Returns True
        exactly once per long press: the moment an alarm must be raised."""
        if pressed:
            self._up = None
            if self._down is None:
                self._down = now_ms
            elif not self._fired and ticks_diff(now_ms, self._down) >= self.long_press_ms:
                self._fired = True
                return True
            return False
        if self._down is not None:
            if self._up is None:
                self._up = now_ms
            elif ticks_diff(now_ms, self._up) >= self.debounce_ms:
                self._down = None
                self._up = None
                self._fired = False
        return False

    def trigger(self, now_s):
        """Raise (or re-raise) the alarm. A press while latched keeps the same
        id, so the centre's acknowledgement still matches."""
        if not self.latched:
            self.latched = True
            self.id += 1
            self.since = now_s
        return self.id

    def ack(self, sos_id, by, now_ms):
        """Dispatcher acknowledgement: (code, detail). sos_id None = the current alarm."""
        if not self.latched:
            return "refused", "no_alarm"
        if sos_id is not None and sos_id != self.id:
            return "refused", "stale_id"
        self.latched = False
        self.acked_by = by
        self._acked_at = now_ms
        return "ok", None

    def indicator(self, now_ms):
        """(led 0/1, buzzer 0/1) for this instant."""
        if self.latched:
            led = 1 if (now_ms // 125) % 2 == 0 else 0
            buzz = 1 if now_ms % 2000 < 150 else 0
            return led, buzz
        if self._acked_at is not None and ticks_diff(now_ms, self._acked_at) < self.ack_show_ms:
            return 1, 0
        return 0, 0
