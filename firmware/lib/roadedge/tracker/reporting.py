# Smart reporting: which fixes become reports. Pure: fed with fixes and the
# GNSS time, returns a reason code (0 = do not report). Defaults follow the
# patrol tracker practice (domain sheet): while moving report at the latest
# every 300 s, or after 100 m, a 10 degree heading change or a 10 km/h speed
# change; stopped (< 5 km/h for > 120 s) hourly; while an emergency (SOS) is
# active also at least every emergency_period_s; never more often than
# min_period_s.
from roadedge.core.compat import const

DEFAULTS = {
    "min_period_s": 5,
    "max_period_s": 300,
    "min_distance_m": 100,
    "heading_deg": 10,
    "speed_change_kmh": 10,
    "heading_min_speed_kmh": 5,  # below this the course is noise
    "stop_speed_kmh": 5,
    "stop_after_s": 120,
    "stop_period_s": 3600,
    "emergency_period_s": 10,
}

FIRST = const(1)
TIME = const(2)
DISTANCE = const(3)
HEADING = const(4)
SPEED = const(5)
STOP = const(6)
START = const(7)
SOS = const(8)
EMERGENCY = const(9)
MANUAL = const(10)

REASONS = ("", "first", "time", "distance", "heading", "speed", "stop", "start", "sos", "emergency", "manual")

_M_PER_E7 = 0.011131949  # metres per 1e-7 degree of latitude


def distance_m(lat1, lon1, lat2, lon2):
    """Equirectangular distance between two 1e-7 degree points; exact enough
    for report thresholds (hundreds of metres) and cheap on single floats."""
    dy = (lat2 - lat1) * _M_PER_E7
    k = _cos_e7((lat1 + lat2) // 2)
    dx = (lon2 - lon1) * _M_PER_E7 * k
    return (dx * dx + dy * dy) ** 0.5


def _cos_e7(lat_e7):
    import math

    return math.cos(lat_e7 * 1.7453292519943295e-09)


def heading_delta(a, b):
    """Smallest angle between two courses in 0.01 degrees."""
    d = (a - b) % 36000
    return 36000 - d if d > 18000 else d


class Reporter:
    """decide(now_s, lat, lon, kmh10, course, emergency) -> reason (0 = no);
    the shell then stores the report and calls reported(...) with the same
    values. Units: lat/lon 1e-7 deg, speed 0.1 km/h, course 0.01 deg (-1 =
    unknown), time unix seconds from GNSS."""

    def __init__(self, params=None):
        p = dict(DEFAULTS)
        if params:
            p.update(params)
        self.min_period = p["min_period_s"]
        self.max_period = p["max_period_s"]
        self.min_dist = p["min_distance_m"]
        self.heading = p["heading_deg"] * 100
        self.speed_change = p["speed_change_kmh"] * 10
        self.heading_min_speed = p["heading_min_speed_kmh"] * 10
        self.stop_speed = p["stop_speed_kmh"] * 10
        self.stop_after = p["stop_after_s"]
        self.stop_period = p["stop_period_s"]
        self.emergency_period = p["emergency_period_s"]
        self.last_t = None  # last report
        self.last_lat = 0
        self.last_lon = 0
        self.last_speed = 0
        self.last_course = -1
        self.slow_since = None  # first fix below stop speed
        self.stopped = False

    def _update_stop(self, now, speed):
        """Returns STOP when the stop is confirmed now, START when moving again."""
        if speed < self.stop_speed:
            if self.slow_since is None:
                self.slow_since = now
            if not self.stopped and now - self.slow_since > self.stop_after:
                self.stopped = True
                return STOP
            return 0
        self.slow_since = None
        if self.stopped:
            self.stopped = False
            return START
        return 0

    def decide(self, now, lat, lon, speed, course, emergency=False):
        change = self._update_stop(now, speed)
        if self.last_t is None:
            return FIRST
        dt = now - self.last_t
        if dt < self.min_period:
            # stop/start transitions wait for the min period; keep them pending
            if change == STOP:
                self.stopped = False
            elif change == START:
                self.stopped = True
            return 0
        if change:
            return change
        # an emergency adds a report at least every emergency_period; it never
        # holds back one the other rules would send (a moving rider in SOS)
        if emergency and dt >= self.emergency_period:
            return EMERGENCY
        if self.stopped:
            return TIME if dt >= self.stop_period else 0
        if dt >= self.max_period:
            return TIME
        if distance_m(self.last_lat, self.last_lon, lat, lon) >= self.min_dist:
            return DISTANCE
        if (course >= 0 and self.last_course >= 0 and speed >= self.heading_min_speed
                and heading_delta(course, self.last_course) >= self.heading):
            return HEADING
        d = speed - self.last_speed
        if d >= self.speed_change or -d >= self.speed_change:
            return SPEED
        return 0

    def reported(self, now, lat, lon, speed, course):
        self.last_t = now
        self.last_lat = lat
        self.last_lon = lon
        self.last_speed = speed
        if course >= 0:
            self.last_course = course
