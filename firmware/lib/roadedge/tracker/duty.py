# Dispatch on the bike and duty status. Pure: commands, button presses,
# fixes and ignition come in with their times; events and indicator levels go
# out. Status: patrol -> dispatched (rider accepted) -> on_scene (arrived:
# within arrive_m of the incident and slow) -> patrol when the centre closes
# or cancels the incident; off_duty after the ignition has been off for
# off_duty_after_s, back to patrol when it comes on.
from roadedge.core.compat import ticks_diff
from roadedge.tracker.reporting import distance_m

DEFAULTS = {"arrive_m": 150, "arrive_speed_kmh": 10, "off_duty_after_s": 1800, "alert_repeat_ms": 3000}

STATUSES = ("patrol", "dispatched", "on_scene", "off_duty")
_MAX_TEXT = 120
_MAX_ID = 32


def _e7(v):
    # degrees (number) -> 1e-7 degree int, None when not a sane coordinate
    if type(v) not in (int, float):
        return None
    return int(round(v * 10000000))


class Duty:
    def __init__(self, params=None, saved=None):
        p = dict(DEFAULTS)
        if params:
            p.update(params)
        self.arrive_m = p["arrive_m"]
        self.arrive_speed = p["arrive_speed_kmh"] * 10
        self.off_after = p["off_duty_after_s"]
        self.alert_repeat_ms = p["alert_repeat_ms"]
        self.status = "patrol"
        self.incident = None  # dict: id, lat, lon (1e-7), prio, text, accepted
        self._ign_off_since = None
        self._alert_since = None
        if isinstance(saved, dict):
            if saved.get("status") in STATUSES:
                self.status = saved["status"]
            inc = saved.get("incident")
            if isinstance(inc, dict) and isinstance(inc.get("id"), str):
                self.incident = inc

    def state(self):
        return {"status": self.status, "incident": self.incident}

    def dispatch(self, args, now_ms):
        """The `dispatch` command: a new incident {incident, lat, lon, prio,
        text} or {incident, action: "close"|"cancel"}. (code, detail)."""
        if not isinstance(args, dict):
            return "bad_args", "args must be an object"
        iid = args.get("incident")
        if not isinstance(iid, str) or not 0 < len(iid) <= _MAX_ID:
            return "bad_args", "incident: string of 1..%d" % _MAX_ID
        action = args.get("action", "new")
        if action in ("close", "cancel"):
            if self.incident is None or self.incident["id"] != iid:
                return "refused", "not_current_incident"
            self.incident = None
            self._alert_since = None
            if self.status != "off_duty":
                self.status = "patrol"
            return "ok", None
        if action != "new":
            return "bad_args", "action: new, close or cancel"
        lat = _e7(args.get("lat"))
        lon = _e7(args.get("lon"))
        if lat is None or lon is None or not -900000000 <= lat <= 900000000 or not -1800000000 <= lon <= 1800000000:
            return "bad_args", "lat/lon: degrees"
        prio = args.get("prio", 3)
        if type(prio) is not int or not 1 <= prio <= 5:
            return "bad_args", "prio: 1..5"
        text = args.get("text", "")
        if not isinstance(text, str) or len(text) > _MAX_TEXT:
            return "bad_args", "text: string up to %d" % _MAX_TEXT
        if self.incident is not None and self.incident["id"] != iid and self.incident.get("accepted"):
            return "refused", "busy:" + self.incident["id"]
        self.incident = {"id": iid, "lat": lat, "lon": lon, "prio": prio, "text": text, "accepted": False}
        self._alert_since = now_ms
        return "ok", None

    def pending(self):
        return self.incident is not None and not self.incident["accepted"]

    def accept(self, now_ms):
        """Rider pressed accept: the event to publish, or None if nothing pending."""
        inc = self.incident
        if inc is None or inc["accepted"]:
            return None
        inc["accepted"] = True
        self._alert_since = None
        self.status = "dispatched"
        return {"type": "dispatch_accept", "incident": inc["id"], "prio": inc["prio"]}

    def on_fix(self, lat, lon, speed_kmh10):
        """Arrival check; returns a duty event or None."""
        inc = self.incident
        if self.status != "dispatched" or inc is None:
            return None
        if speed_kmh10 <= self.arrive_speed and distance_m(lat, lon, inc["lat"], inc["lon"]) <= self.arrive_m:
            self.status = "on_scene"
            return {"type": "duty", "status": "on_scene", "incident": inc["id"]}
        return None

    def ignition(self, on, now_s):
        """Feed the ignition level; returns a duty event on a status change."""
        if on:
            self._ign_off_since = None
            if self.status == "off_duty":
                self.status = "dispatched" if self.incident and self.incident.get("accepted") else "patrol"
                return {"type": "duty", "status": self.status}
            return None
        if self._ign_off_since is None:
            self._ign_off_since = now_s
        if self.status == "patrol" and now_s - self._ign_off_since >= self.off_after:
            self.status = "off_duty"
            return {"type": "duty", "status": "off_duty"}
        return None

    def indicator(self, now_ms):
        """(led, buzzer) while a dispatch waits for the rider: double beep
        every alert_repeat_ms, LED slow blink."""
        if self._alert_since is None:
            return 0, 0
        ph = ticks_diff(now_ms, self._alert_since) % self.alert_repeat_ms
        buzz = 1 if ph < 120 or 240 <= ph < 360 else 0
        led = 1 if (now_ms // 500) % 2 == 0 else 0
        return led, buzz
