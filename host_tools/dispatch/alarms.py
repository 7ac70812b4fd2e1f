"""Alarms only this console can raise, from data only it holds (pure: no I/O, no clock; now_ms is passed in).

Fed with the console's view (units, signs, beacons, the zone controllers' state, the deployment's roads):
- overspeed: a unit faster than the limit the nearest sign upstream of it shows (signs stand at a km
  marker and face traffic driving towards higher km; the sign's `limit` is what its face shows; it holds
  to the end of the sign's section, or sign_reach_km for a sign without one);
- in_fog: a unit inside fog below 100 m (Art. 81: 40 km/h, hazard lamps), from the beacons' visibility;
- sign_over_law: a sign showing more than Art. 81 allows for the worst visibility reported at it (its own
  meter, the zone controller's reading for it, beacons within SIGN_VIS_RADIUS_KM);
- fog_uncovered: a fog section (visibility below 200 m) with no free patrol unit within N minutes by road
  (roadnet.RoadNetwork ranking: ETA along the roads);
- section_alarm: a section's beacons showing the section alarm (all red after an incident).

Each rule returns the conditions that hold now; AlarmRules turns them into raise / clear transitions once
a condition has held (or been absent) for its type's time, so one stray fix or reading does not alarm.
Device values are untrusted: a value of the wrong type or out of range is absent, never an exception
(and a rule that still fails on something unforeseen is counted in `errors`, the other rules still run).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from roadedge import wire

from .fog_extent import fog_segments, visibility
from .sanitize import number, position

TYPES = ("overspeed", "in_fog", "sign_over_law", "fog_uncovered", "section_alarm")


@dataclass
class AlarmConfig:
    overspeed_tolerance_kmh: float = 5.0  # GNSS speed is good to ~1 km/h; a small margin against rounding
    sign_reach_km: float = 3.0  # a sign without a section: its limit applies this far (or to the next sign)
    on_road_m: float = 40.0  # a fix farther than this from every road is not on the road
    fix_max_age_s: float = 60.0  # older fixes judge nothing about speed or fog
    fog_vis_m: float = 100.0  # in_fog: Art. 81's 40 km/h band
    sign_vis_radius_km: float = 0.1  # beacons this close to a sign report its visibility
    uncovered_vis_m: float = 200.0  # a section is in fog once Art. 81 applies (< 200 m)
    uncovered_eta_s: float = 600.0  # N minutes by road
    patrol_fix_age_s: float = 300.0  # a unit not heard from for longer is not counted as near
    coverage_every_s: float = 15.0  # the road search for fog_uncovered runs at most this often
    hold_s: dict = field(default_factory=lambda: {"overspeed": 10.0, "in_fog": 5.0, "sign_over_law": 30.0,
                                                  "fog_uncovered": 60.0, "section_alarm": 0.0})
    clear_s: dict = field(default_factory=lambda: {"overspeed": 10.0, "in_fog": 10.0, "sign_over_law": 10.0,
                                                   "fog_uncovered": 60.0, "section_alarm": 5.0})


@dataclass
class Placed:
    """A fixed device with its place in the deployment (road, km marker, lat/lon, section) and live data."""
    id: str
    road: str | None
    km: float | None
    lat: float | None = None
    lon: float | None = None
    section: str | None = None
    status: str | None = None
    state: dict | None = None


@dataclass
class View:
    units: list[dict]  # device rows (store.devices, checked by sanitize.PageFilter.device)
    signs: list[Placed]
    beacons: list[Placed]
    ctl: dict = field(default_factory=dict)  # zone -> the controller's retained state
    busy: set = field(default_factory=set)  # units sent somewhere or in distress: not free to cover fog
    scenario: object = None  # host_tools.deployment.scenario.Scenario (roads, sections)
    net: object = None  # roadnet.RoadNetwork
    _units_on_road: list | None = field(default=None, repr=False)  # worked out once per round (units_on_road)


@dataclass
class Condition:
    key: str
    type: str
    device: str
    text: str
    detail: dict = field(default_factory=dict)


CLEARED = {"overspeed": "{dev} is back within the sign's limit", "in_fog": "{dev} is out of the thick fog",
           "sign_over_law": "{dev} no longer shows more than Art. 81 allows",
           "fog_uncovered": "a patrol unit is within reach of fog section {dev} (or its fog lifted)",
           "section_alarm": "section alarm over on section {dev}"}


def cleared_text(c: Condition) -> str:
    return CLEARED.get(c.type, "{dev}: condition over").format(dev=c.device)


# ---- geometry ---------------------------------------------------------------------------------------
@dataclass
class OnRoad:
    road: str
    km: float
    off_m: float
    forward: bool | None  # driving towards higher km; None when the heading does not say


def _state(d) -> dict:
    st = d.get("state") if isinstance(d, dict) else getattr(d, "state", None)
    return st if isinstance(st, dict) else {}


def _fresh_unit(u: dict, now_s: float, max_age: float):
    """(lat, lon) of a unit whose fix is recent enough, else None."""
    if not isinstance(u, dict) or u.get("status") == "offline":
        return None
    lat, lon = position(u.get("lat"), u.get("lon"))
    tst = number(u.get("tst"), 0, 2**40)
    if lat is None or tst is None or now_s - tst > max_age:
        return None
    return lat, lon


def locate(sc, lat: float, lon: float, cog, max_off_m: float, roads=None) -> OnRoad | None:
    """The road a point is on (nearest within max_off_m), its km marker there and the travel direction."""
    if sc is None:
        return None
    x, y = sc.proj.to_xy(lat, lon)
    best: OnRoad | None = None
    for rid in roads if roads is not None else sc.roads:
        pl = sc.roads.get(rid)
        if pl is None:
            continue
        s, off = pl.project(x, y)
        if off <= max_off_m and (best is None or off < best.off_m):
            c = number(cog, 0, 360)
            fwd = None
            if c is not None:
                diff = abs((c - pl.point_at_m(s)[2] + 180) % 360 - 180)
                fwd = True if diff < 60 else False if diff > 120 else None
            best = OnRoad(rid, pl.km0 + s / 1000, off, fwd)
    return best


def units_on_road(view: View, cfg: AlarmConfig, now_s: float) -> list[tuple[dict, OnRoad]]:
    """Units with a fresh fix on a road of the deployment, where (computed once per view)."""
    if view._units_on_road is None:
        out = []
        for u in view.units:
            at = _fresh_unit(u, now_s, cfg.fix_max_age_s)
            where = locate(view.scenario, at[0], at[1], u.get("cog"), cfg.on_road_m) if at else None
            if where is not None:
                out.append((u, where))
        view._units_on_road = out
    return view._units_on_road


def _limit_shown(sign: Placed):
    """The limit on a sign's face (km/h), None when blank, unknown or the sign is offline."""
    if sign.status == "offline":
        return None
    lim = number(_state(sign).get(wire.F_LIMIT), 1, 300)
    return lim


# ---- rules ----------------------------------------------------------------------------------------
def overspeed(view: View, cfg: AlarmConfig, now_s: float) -> list[Condition]:
    sc = view.scenario
    if sc is None:
        return []
    by_road: dict[str, list[Placed]] = {}
    for s in view.signs:
        if isinstance(s.road, str) and number(s.km, -1e6, 1e6) is not None:
            by_road.setdefault(s.road, []).append(s)
    section_end = {s.get("id"): s.get("to_km") for s in sc.sections if isinstance(s, dict)}
    out = []
    for u, where in units_on_road(view, cfg, now_s):
        vel = number(u.get("vel"), 0, 1000)
        if vel is None or where.road not in by_road or where.forward is not True:
            continue  # signs face traffic towards higher km; the other carriageway has none of ours
        up = [s for s in by_road[where.road] if s.km <= where.km]  # type: ignore[operator]
        if not up:
            continue
        sign = max(up, key=lambda s: s.km)  # the last sign the unit passed
        # its limit holds to the end of the section it is for (the fog restriction), else sign_reach_km
        end = number(section_end.get(sign.section), -1e6, 1e6)
        if where.km > (end if end is not None else sign.km + cfg.sign_reach_km):  # type: ignore[operator]
            continue
        lim = _limit_shown(sign)
        if lim is None or vel <= lim + cfg.overspeed_tolerance_kmh:
            continue
        uid = str(u.get("id"))
        out.append(Condition(f"overspeed:{uid}", "overspeed", uid,
                             f"{uid} at {vel:.0f} km/h where {sign.id} shows {lim:g} km/h "
                             f"({where.road} km {where.km:.2f})",
                             {"vel": vel, "limit": lim, "sign": sign.id, "road": where.road,
                              "km": round(where.km, 3)}))
    return out


def _online_beacons(view: View) -> list[Placed]:
    return [b for b in view.beacons if b.status != "offline" and isinstance(b.road, str)
            and number(b.km, -1e6, 1e6) is not None]


def in_fog(view: View, cfg: AlarmConfig, now_s: float) -> list[Condition]:
    sc = view.scenario
    if sc is None:
        return []
    segs = fog_segments(sc, [(b, _state(b)) for b in _online_beacons(view) if b.road in sc.roads], cfg.fog_vis_m)
    if not segs:
        return []
    out = []
    for u, where in units_on_road(view, cfg, now_s):
        for s in segs:
            if s["road"] == where.road and s["from_km"] <= where.km <= s["to_km"]:
                uid = str(u.get("id"))
                out.append(Condition(f"in_fog:{uid}", "in_fog", uid,
                                     f"{uid} is in fog below {cfg.fog_vis_m:g} m (down to {s['min_vis']:.0f} m) "
                                     f"on {where.road} at km {where.km:.2f}",
                                     {"vis_m": s["min_vis"], "road": where.road, "km": round(where.km, 3)}))
                break
    return out


def _ctl_signs(ctl: dict):
    """(sign id, entry) from every zone controller's state (a list of signs, or a map by id)."""
    for z in (ctl or {}).values():
        signs = z.get("signs") if isinstance(z, dict) else None
        items = signs.items() if isinstance(signs, dict) else \
            ((s.get("id"), s) for s in signs if isinstance(s, dict)) if isinstance(signs, list) else ()
        for sid, s in items:
            if isinstance(sid, str) and isinstance(s, dict):
                yield sid, s


def sign_over_law(view: View, cfg: AlarmConfig, now_s: float) -> list[Condition]:
    ctl_vis: dict[str, float] = {}
    for sid, s in _ctl_signs(view.ctl):
        v = number(s.get(wire.F_VIS), 0, 1e6)
        if v is not None and s.get("no_data") is not True:
            ctl_vis[sid] = min(v, ctl_vis.get(sid, v))
    beacons = _online_beacons(view)
    out = []
    for sign in view.signs:
        lim = _limit_shown(sign)
        if lim is None:
            continue
        seen = []  # (visibility, who reported it)
        own = number(_state(sign).get(wire.F_VIS), 0, 1e6)
        if own is not None:
            seen.append((own, "its own meter"))
        if sign.id in ctl_vis:
            seen.append((ctl_vis[sign.id], "the zone controller"))
        km = number(sign.km, -1e6, 1e6)
        if km is not None:
            for b in beacons:
                v = visibility(_state(b))
                if v is not None and b.road == sign.road and abs(b.km - km) <= cfg.sign_vis_radius_km:  # type: ignore[operator]
                    seen.append((v, f"beacon {b.id}"))
        if not seen:
            continue
        vis, who = min(seen, key=lambda p: p[0])
        law = wire.art81_limit(vis)
        if law is None or lim <= law:
            continue
        out.append(Condition(f"sign_over_law:{sign.id}", "sign_over_law", sign.id,
                             f"{sign.id} shows {lim:g} km/h; Art. 81 allows at most {law} km/h at {vis:.0f} m "
                             f"visibility (reported by {who})",
                             {"limit": lim, "law": law, "vis_m": vis, "by": who}))
    return out


def free_units(view: View, cfg: AlarmConfig, now_s: float) -> list[tuple[str, float, float]]:
    """Patrol units that could be sent: heard from recently, online, on patrol, not busy, no SOS."""
    out = []
    for u in view.units:
        at = _fresh_unit(u, now_s, cfg.patrol_fix_age_s)
        if at is None or u.get("id") in view.busy:
            continue
        st = _state(u)
        sos = st.get("sos")
        if isinstance(sos, dict) and sos.get("latched") is True:
            continue
        if st.get(wire.F_DUTY) not in (None, "patrol"):
            continue
        out.append((str(u.get("id")), at[0], at[1]))
    return out


def fog_uncovered(view: View, cfg: AlarmConfig, now_s: float) -> list[Condition]:
    sc, net = view.scenario, view.net
    if sc is None or net is None:
        return []
    worst: dict[str, tuple[float, Placed]] = {}
    for b in _online_beacons(view):
        v = visibility(_state(b))
        if v is None or v >= cfg.uncovered_vis_m or not isinstance(b.section, str):
            continue
        if position(b.lat, b.lon)[0] is not None and (b.section not in worst or v < worst[b.section][0]):
            worst[b.section] = (v, b)
    if not worst:
        return []
    units = free_units(view, cfg, now_s)
    names = {s.get("id"): s.get("name") for s in sc.sections if isinstance(s, dict)}
    out = []
    for sec, (vis, b) in sorted(worst.items()):
        ranked = net.rank(b.lat, b.lon, units) if units else []
        best = ranked[0] if ranked and math.isfinite(ranked[0].eta_s) else None
        if best is not None and best.eta_s <= cfg.uncovered_eta_s:
            continue
        name = f" ({names[sec]})" if names.get(sec) else ""
        near = (f"nearest free unit {best.unit}, {best.eta_s / 60:.0f} min by road" if best else
                "no free patrol unit can reach it by road")
        out.append(Condition(f"fog_uncovered:{sec}", "fog_uncovered", sec,
                             f"fog section {sec}{name} (visibility {vis:.0f} m) has no patrol unit within "
                             f"{cfg.uncovered_eta_s / 60:g} min by road: {near}",
                             {"vis_m": vis, "unit": best.unit if best else None,
                              "eta_s": round(best.eta_s) if best else None, "lat": b.lat, "lon": b.lon}))
    return out


def section_alarm(view: View, cfg: AlarmConfig, now_s: float) -> list[Condition]:
    red: dict[str, list] = {}
    total: dict[str, int] = {}
    for b in view.beacons:
        sec = b.section if isinstance(b.section, str) else b.id
        total[sec] = total.get(sec, 0) + 1
        if b.status != "offline" and _state(b).get("mode") == "section_alarm":
            red.setdefault(sec, []).append(b)
    out = []
    for sec, bs in sorted(red.items()):
        mid = sorted(bs, key=lambda b: b.id)[len(bs) // 2]  # where an incident raised from the alarm is placed
        out.append(Condition(f"section_alarm:{sec}", "section_alarm", sec,
                             f"section alarm on section {sec}: {len(bs)} of {total[sec]} beacons show the whole "
                             f"section red", {"beacons": len(bs), "lat": mid.lat, "lon": mid.lon}))
    return out


RULES = {"overspeed": overspeed, "in_fog": in_fog, "sign_over_law": sign_over_law, "fog_uncovered": fog_uncovered,
         "section_alarm": section_alarm}


class AlarmRules:
    """Conditions -> alarm transitions, each after its type's hold / clear time."""

    def __init__(self, cfg: AlarmConfig | None = None) -> None:
        self.cfg = cfg or AlarmConfig()
        self.active: dict[str, Condition] = {}
        self.errors: dict[str, int] = {}
        self._since: dict[str, float] = {}  # condition seen, not yet raised: since when
        self._absent: dict[str, float] = {}  # raised, not seen any more: since when
        self._coverage: tuple[float, list[Condition]] = (-math.inf, [])

    def resume(self, open_alarms: list[Condition]) -> None:
        """Alarms still open in the log (after a console restart): not raised again, cleared when over."""
        for c in open_alarms:
            self.active[c.key] = c

    def conditions(self, now_s: float, view: View) -> list[Condition]:
        out: list[Condition] = []
        view._units_on_road = None  # fix ages are judged at now_s
        for name, rule in RULES.items():
            if name == "fog_uncovered":
                at, last = self._coverage
                if now_s - at < self.cfg.coverage_every_s:
                    out += last
                    continue
            try:
                got = rule(view, self.cfg, now_s)
            except Exception:  # unforeseen data: this rule says nothing this round, the others still run
                self.errors[name] = self.errors.get(name, 0) + 1
                got = self._coverage[1] if name == "fog_uncovered" else \
                    [c for c in self.active.values() if c.type == name]  # hold what is raised
            if name == "fog_uncovered":
                self._coverage = (now_s, got)
            out += got
        return out

    def evaluate(self, now_ms: int, view: View) -> list[tuple[str, Condition]]:
        """[("raise" | "clear", Condition)] for this moment."""
        now = now_ms / 1000
        current = {c.key: c for c in self.conditions(now, view)}
        out: list[tuple[str, Condition]] = []
        for key, c in current.items():
            self._absent.pop(key, None)
            if key in self.active:
                continue
            since = self._since.setdefault(key, now)
            if now - since >= self.cfg.hold_s.get(c.type, 0.0):
                self.active[key] = c
                del self._since[key]
                out.append(("raise", c))
        for key in [k for k in self._since if k not in current]:
            del self._since[key]
        for key, c in list(self.active.items()):
            if key in current:
                continue
            gone = self._absent.setdefault(key, now)
            if now - gone >= self.cfg.clear_s.get(c.type, 0.0):
                del self.active[key]
                del self._absent[key]
                out.append(("clear", c))
        return out
