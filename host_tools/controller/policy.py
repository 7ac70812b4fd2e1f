"""The zone controller's decision core. Pure: no I/O, no clock; `now` (unix s) is passed in.

The shell calls `update(now)` after every visibility report and on a short timer (about once a
second); nothing waits for a fixed interval. docs/fog-control.md says why each default is what it is.

1. each sign's visibility = the worst fresh reading among the meters/beacons that feed it (a sign with
   none fresh, e.g. its meter failed, takes the worst fresh reading of its neighbours' sources);
2. three Art. 81 bands (< 200, < 100, < 50 m) and the closure band are tracked independently
   (`Band`): a band is confirmed once visibility went below its threshold and has not cleared it
   (above threshold * (1 + hysteresis)) for `confirm_s`; it is released only after visibility stayed
   clear of it for `relax_s`. Fog moving between bands keeps every confirmation it has earned;
3. target = the Art. 81 limit of the highest confirmed band, capped by a supervisor's hold (veto);
4. the targets are tapered along the road so neighbours differ by at most one step: signs upstream
   (and downstream) of the fog show one step above it, so drivers step down in space, not in time;
5. tightening is commanded at once; relaxing moves every sign that may rise one step per `interval_s`.

Modes: automatic (recommendations are commanded), approve (they wait for a supervisor; a tightening
left unapproved for `approve_timeout_s` is applied), manual (only a supervisor's manual limits are
commanded, but never above the Art. 81 ceiling: a thickening fog lowers them). Every operator limit
must be in the signs' allowed set and at or below the Art. 81 maximum for the sign's visibility.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from roadedge.wire import ART81  # the one Art. 81 table, shared with the sign

from .zone import VIS_MAX_M, ZoneConfig

MODES = ("automatic", "approve", "manual")
SUPERVISOR = "supervisor"
ACTIONS = ("approve", "veto", "manual", "mode")
BAND_M = tuple(m for m, _lim in reversed(ART81))  # 200, 100, 50: level 1, 2, 3


class Band:
    """One visibility threshold with confirmation and release times (seconds on the worst reading)."""

    def __init__(self, below_m: float) -> None:
        self.below_m = below_m
        self.on = False
        self.below_since: float | None = None  # went below and has not cleared since
        self.clear_since: float | None = None  # above below_m * k since

    def feed(self, vis: float, now: float, k: float, confirm_s: float, relax_s: float) -> bool:
        """One fresh reading; True when `on` changed."""
        if vis < self.below_m:
            if self.below_since is None:
                self.below_since = now
            self.clear_since = None
        elif vis >= self.below_m * k:
            self.below_since = None
            if self.clear_since is None:
                self.clear_since = now
        else:  # between the threshold and its release threshold: neither confirms nor releases
            self.clear_since = None
        return self.judge(now, confirm_s, relax_s)

    def judge(self, now: float, confirm_s: float, relax_s: float) -> bool:
        if not self.on and self.below_since is not None and now - self.below_since >= confirm_s:
            self.on = True
            return True
        if self.on and self.clear_since is not None and now - self.clear_since >= relax_s:
            self.on = False
            return True
        return False

    def confirming(self, now: float) -> float | None:
        """Seconds visibility has been below while not yet confirmed."""
        return None if self.on or self.below_since is None else round(now - self.below_since, 1)

    def state(self) -> tuple:
        return (self.on, self.below_since, self.clear_since)

    def restore(self, st) -> None:
        self.on, self.below_since, self.clear_since = st


def art81_max(vis_m: float | None, normal: int) -> int:
    """The Art. 81 maximum for a visibility (normal limit when clear or unknown)."""
    if vis_m is not None:
        for below, lim in ART81:
            if vis_m < below:
                return lim
    return normal


@dataclass
class SignView:
    id: str
    km: float
    sources: list[str]
    vis_m: float | None = None
    vis_from: str = ""  # "own" sources or "neighbours"
    bands: list[Band] = field(default_factory=lambda: [Band(m) for m in BAND_M])
    closure_band: Band | None = None
    level: int = 0
    recommended: int | None = None
    pending: int | None = None  # waiting for a supervisor (approve mode)
    pending_since: float | None = None
    commanded: int | None = None  # last limit sent
    hold: int | None = None  # a veto's ceiling
    displayed: int | None = None  # what the sign reports it shows
    legend: str = ""
    source: str | None = None
    check: int | None = None
    closure: bool = False
    no_data: bool = True

    def snapshot(self, approve_timeout_s: float, now: float) -> dict:
        d = {k: getattr(self, k) for k in ("id", "km", "vis_m", "vis_from", "level", "recommended", "pending",
                                           "commanded", "hold", "displayed", "legend", "source", "check", "closure",
                                           "no_data")}
        # the console's countdown: when an unattended tightening will be applied
        d["approve_by"] = (None if self.pending_since is None or self.pending is None
                           or (self.commanded is not None and self.pending >= self.commanded)
                           else self.pending_since + approve_timeout_s)
        d["confirming_s"] = next((b.confirming(now) for b in reversed(self.bands) if b.confirming(now) is not None),
                                 None)
        return d


@dataclass
class Decision:
    """One thing the controller decided or a person did; `command` set when a sign must be told."""
    kind: str  # command | pending | closure | open | refused | mode | hold | release | no_data | level | timeout
    sign: str | None
    limit: int | None
    why: str
    inputs: dict = field(default_factory=dict)
    who: str = "controller"
    command: bool = False
    legend: str = ""
    hold: bool = False  # the limit is a supervisor's hold: the sign's own fallback must not exceed it


class ZonePolicy:
    def __init__(self, cfg: ZoneConfig, mode: str = "automatic") -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.cfg = cfg
        self.mode = mode
        self.signs = [SignView(s.id, s.km, list(s.sources)) for s in cfg.signs]
        for s in self.signs:
            s.closure_band = Band(cfg.closure_below_m)
        self.by_id = {s.id: s for s in self.signs}
        self.readings: dict[str, tuple[float, float]] = {}  # source id -> (vis_m, at)
        self.updates = 0
        # relaxing: the zone rises one step at most every interval_s; a controller that just started knows
        # no fog history (its limits may be restored from the audit), so it watches relax_s before any rise
        self.next_raise: float | None = None
        self.rejected = {"vis_range": 0}

    # --- inputs ------------------------------------------------------------
    def visibility(self, source: str, vis_m, now: float) -> bool:
        """A reading; False (and counted) when it is not a visibility in 0..VIS_MAX_M metres."""
        if isinstance(vis_m, bool) or not isinstance(vis_m, (int, float)) or not 0 <= vis_m <= VIS_MAX_M:
            self.rejected["vis_range"] += 1
            return False
        old = self.readings.get(source)
        if old is not None and now < old[1]:
            return True  # an older report arriving late never replaces a newer one
        self.readings[source] = (float(vis_m), now)
        return True

    def sign_state(self, sign: str, st: dict) -> bool:
        s = self.by_id.get(sign)
        if s is None or not isinstance(st, dict):
            return False
        lim = st.get("limit")
        s.displayed = lim if isinstance(lim, int) and not isinstance(lim, bool) else None
        leg, src, chk = st.get("legend"), st.get("source"), st.get("check")
        s.legend = leg if isinstance(leg, str) else ""
        s.source = src if isinstance(src, str) else None
        s.check = chk if isinstance(chk, int) else None
        if s.commanded is None and s.source == "central" and s.displayed is not None:
            s.commanded = s.displayed  # resume from what a previous run commanded
        return True

    def legend_for(self, limit: int | None) -> str:
        return self.cfg.legend if limit is not None and limit < self.cfg.normal_limit else ""

    def level_limit(self, level: int) -> int:
        return (self.cfg.normal_limit, 60, 40, 20)[level]

    def ceiling(self, s: SignView) -> int:
        """The Art. 81 maximum for the sign now: its confirmed level and its current worst reading."""
        return min(self.level_limit(s.level), art81_max(s.vis_m, self.cfg.normal_limit))

    # --- one evaluation --------------------------------------------------------
    def _fresh(self, sources: list[str], now: float) -> list[float]:
        age = self.cfg.vis_max_age_s
        return [self.readings[src][0] for src in sources
                if src in self.readings and 0 <= now - self.readings[src][1] <= age]

    def _sense(self, i: int, s: SignView, now: float, out: list[Decision]) -> None:
        cfg = self.cfg
        fresh = self._fresh(s.sources, now)
        s.vis_from = "own"
        if not fresh:  # blind: the worst of the neighbours' readings (fog does not stop at a failed meter)
            nb = [src for j in (i - 1, i + 1) if 0 <= j < len(self.signs) for src in self.signs[j].sources]
            fresh = self._fresh(nb, now)
            s.vis_from = "neighbours" if fresh else ""
        if not fresh:
            if not s.no_data:
                out.append(Decision("no_data", s.id, None, "no fresh visibility from " + ",".join(s.sources)
                                    + " or its neighbours; keeping the fog level"))
            s.no_data, s.vis_m = True, None
            return  # no decision from no data: the bands keep their state
        s.no_data = False
        s.vis_m = min(fresh)
        k = 1 + cfg.hysteresis_pct / 100
        for b in s.bands:
            b.feed(s.vis_m, now, k, cfg.confirm_s, cfg.relax_s)
        level = max((n + 1 for n, b in enumerate(s.bands) if b.on), default=0)
        if level != s.level:
            out.append(Decision("level", s.id, self.level_limit(level),
                                f"visibility {s.vis_m:g} m: Art. 81 level {s.level} -> {level}",
                                {"vis_m": s.vis_m, "vis_from": s.vis_from}))
            s.level = level
        cb = s.closure_band
        assert cb is not None
        cb.feed(s.vis_m, now, k, cfg.confirm_s, cfg.relax_s)
        if cb.on != s.closure:
            s.closure = cb.on
            out.append(Decision("closure" if cb.on else "open", s.id, None,
                                f"visibility {s.vis_m:g} m {'<' if cb.on else '>='} {cfg.closure_below_m} m: "
                                + ("recommend closing the section" if cb.on else "closure no longer recommended"),
                                {"vis_m": s.vis_m}))

    def update(self, now: float) -> list[Decision]:
        cfg = self.cfg
        out: list[Decision] = []
        self.updates += 1
        step = cfg.step
        for i, s in enumerate(self.signs):
            self._sense(i, s, now, out)
        targets = []
        for s in self.signs:
            t = self.level_limit(s.level)
            if s.hold is not None:
                t = min(t, s.hold)
            targets.append(t)
        n = len(self.signs)
        tapered = [min(targets[j] + step * abs(i - j) for j in range(n)) for i in range(n)]
        if self.next_raise is None:
            self.next_raise = now + cfg.relax_s
        may_raise = now >= self.next_raise or self.mode == "approve"  # a person paces approved rises
        raised = False
        for i, s in enumerate(self.signs):
            base = s.commanded if s.commanded is not None else cfg.normal_limit
            rec = tapered[i] if tapered[i] <= base else (min(base + step, tapered[i]) if may_raise else base)
            raised |= rec > base
            s.recommended = rec
            inputs = {"vis_m": s.vis_m, "vis_from": s.vis_from, "level": s.level, "target": targets[i],
                      "tapered": tapered[i], "base": base, "hold": s.hold}
            why = self._why(s, targets[i], tapered[i], base, rec)
            if self.mode == "automatic" or (self.mode == "approve" and s.commanded is None):
                # (a sign nobody has commanded yet gets the lawful recommendation without waiting)
                if rec != s.commanded:
                    s.commanded = rec
                    out.append(self._command(s, rec, why, inputs))
            elif self.mode == "approve":
                self._approve_mode(s, rec, why, inputs, now, out)
            else:  # manual: the person decides, the law still caps
                cap = min(self.ceiling(s), s.hold if s.hold is not None else cfg.normal_limit)
                if (cfg.normal_limit if s.commanded is None else s.commanded) > cap:
                    lim = min(cap, tapered[i])
                    s.commanded = lim
                    out.append(self._command(s, lim, f"manual mode: Art. 81 ceiling {cap} km/h for "
                                             f"visibility {s.vis_m} m lowers the sign", inputs))
        if raised:
            self.next_raise = now + cfg.interval_s
        return out

    def _command(self, s: SignView, limit: int, why: str, inputs: dict | None = None, who: str = "controller",
                 kind: str = "command") -> Decision:
        return Decision(kind, s.id, limit, why, inputs or {}, who=who, command=True,
                        legend=self.legend_for(limit), hold=s.hold is not None and limit == s.hold)

    def _approve_mode(self, s: SignView, rec: int, why: str, inputs: dict, now: float, out: list[Decision]) -> None:
        newp = rec if rec != s.commanded else None
        if newp is None:
            s.pending, s.pending_since = None, None
            return
        tightening = s.commanded is None or newp < s.commanded
        if newp != s.pending:
            # a pending tightening keeps its clock when it only gets tighter
            if not (tightening and s.pending is not None and s.commanded is not None and s.pending < s.commanded
                    and s.pending_since is not None):
                s.pending_since = now
            out.append(Decision("pending", s.id, newp, why + "; waiting for approval"
                                + (f" (applied unattended after {self.cfg.approve_timeout_s:g} s)" if tightening else ""),
                                inputs))
            s.pending = newp
        if tightening and s.pending_since is not None and now - s.pending_since >= self.cfg.approve_timeout_s:
            s.commanded, s.pending, s.pending_since = newp, None, None
            out.append(self._command(s, newp, f"no supervisor acted on the lower limit within "
                                     f"{self.cfg.approve_timeout_s:g} s: applied for safety; {why}", inputs,
                                     kind="timeout"))

    def _why(self, s: SignView, target: int, tapered: int, base: int, rec: int) -> str:
        parts = [f"visibility {s.vis_m:g} m" + (" (neighbours' meters)" if s.vis_from == "neighbours" else "")
                 if s.vis_m is not None else "no fresh visibility", f"Art. 81 level {s.level} -> {target} km/h"]
        if s.hold is not None:
            parts.append(f"held at {s.hold} by veto")
        if tapered != target:
            parts.append(f"taper to neighbours -> {tapered}")
        if rec != tapered:
            parts.append(f"relaxing one step per {self.cfg.interval_s:g} s from {base}")
        return "; ".join(parts)

    # --- people --------------------------------------------------------------
    def _refuse(self, action: str, user: str, why: str, sign=None, limit=None) -> list[Decision]:
        return [Decision("refused", sign if isinstance(sign, str) else None,
                         limit if isinstance(limit, int) and not isinstance(limit, bool) else None,
                         f"{action} refused: {why}", who=user or "?")]

    def _lawful(self, s: SignView, limit) -> str | None:
        """Why an operator's limit for sign s is not allowed, or None."""
        if not self.cfg.allowed(limit):
            a = self.cfg.params["allowed"]
            return f"limit {limit!r} not in the signs' allowed set ({a['min']}..{a['max']} step {a['step']})"
        cap = self.ceiling(s)
        if limit > cap:
            return (f"limit {limit} is above the Art. 81 maximum {cap} km/h for visibility "
                    f"{'unknown' if s.vis_m is None else f'{s.vis_m:g} m'} at {s.id}")
        return None

    def operator(self, op: dict) -> list[Decision]:
        """An operator action {"action", "sign", "limit", "user", "role", "reason", "mode"} whose origin the
        shell has verified; returns decisions (a "refused" one when not allowed). Only a supervisor may
        change a sign or the mode."""
        if not isinstance(op, dict):
            return self._refuse("?", "?", "not a JSON object")
        action, user, role = op.get("action"), op.get("user"), op.get("role")
        sign, limit, reason = op.get("sign"), op.get("limit"), op.get("reason")
        if not isinstance(user, str) or not user or len(user) > 64:
            return self._refuse(str(action)[:20], "?", "no user")
        if action not in ACTIONS:
            return self._refuse(str(action)[:20], user, "unknown action")
        if role != SUPERVISOR:
            return self._refuse(action, user, f"role {str(role)[:20]!r} may not change signs (supervisor only)", sign,
                                limit)
        if reason is not None and not isinstance(reason, str):
            return self._refuse(action, user, "reason must be text", sign, limit)
        note = f" ({reason[:200]})" if reason else ""
        if action == "mode":
            m = op.get("mode", limit if isinstance(limit, str) else None)
            if m not in MODES:
                return self._refuse(action, user, f"mode must be one of {MODES}")
            old, self.mode = self.mode, m
            if m != "approve":
                for s in self.signs:
                    s.pending, s.pending_since = None, None
            return [Decision("mode", None, None, f"mode {old} -> {m}{note}", who=user)]
        if sign is not None and (not isinstance(sign, str) or sign not in self.by_id):
            return self._refuse(action, user, f"unknown sign {str(sign)[:40]!r}", sign, limit)
        if action == "approve":
            return self._approve(sign, user, note)
        if sign is None:
            return self._refuse(action, user, "a sign is required", sign, limit)
        s = self.by_id[sign]
        if action == "veto":
            if limit is None:
                cands = [x for x in (s.commanded, s.pending, s.recommended) if x is not None]
                if not cands:
                    return self._refuse(action, user, "nothing to veto", sign)
                limit = min(cands)
            why = self._lawful(s, limit)
            if why:
                return self._refuse(action, user, why, sign, limit)
            s.hold = limit
            self._clear_pending()  # recomputed at the next update, with the hold
            out = [Decision("hold", s.id, limit, f"veto: hold {limit} km/h until approved{note}", who=user,
                            inputs={"commanded": s.commanded, "recommended": s.recommended})]
            s.commanded = limit  # always sent, even if unchanged: the sign learns it is a hold
            out.append(self._command(s, limit, f"veto holds the lower limit{note}", who=user))
            return out
        # manual
        if self.mode != "manual":
            return self._refuse(action, user, f"manual limits need manual mode (now {self.mode})", sign, limit)
        why = self._lawful(s, limit)
        if why:
            return self._refuse(action, user, why, sign, limit)
        if s.hold is not None and limit > s.hold:
            return self._refuse(action, user, f"limit {limit} above the supervisor's hold {s.hold}; release it first",
                                sign, limit)
        s.commanded = limit
        self._clear_pending()
        return [self._command(s, limit, f"manual{note}", who=user)]

    def _approve(self, sign: str | None, user: str, note: str) -> list[Decision]:
        out: list[Decision] = []
        targets = self.signs if sign is None else [self.by_id[sign]]
        for s in targets:
            # a hold is released only by approving that sign by name, never by "approve all"
            if s.hold is not None and sign is not None:
                out.append(Decision("release", s.id, s.hold, f"hold at {s.hold} released{note}", who=user))
                s.hold = None
        # apply pendings that keep every pair of neighbours within one step; repeat, since applying one
        # can make its neighbour's acceptable (upstream first on the way down, downstream first on the way up)
        todo = [s for s in targets if s.pending is not None]
        progress = True
        while todo and progress:
            progress = False
            for s in list(todo):
                why = self._lawful(s, s.pending)
                if why:  # the fog came back since the recommendation
                    out.append(Decision("refused", s.id, s.pending, f"approve refused: {why}", who=user))
                    s.pending, s.pending_since = None, None
                    todo.remove(s)
                elif (s.commanded is not None and s.pending < s.commanded) or self._fits(s, s.pending, todo):
                    # a tightening is never held back for a neighbour (the law binds now); a rise must fit
                    s.commanded, s.pending, s.pending_since = s.pending, None, None
                    todo.remove(s)
                    progress = True
                    out.append(self._command(s, s.commanded, f"approved recommendation{note}", who=user))
        for s in todo:
            out.append(Decision("refused", s.id, s.pending, f"approve of {s.pending} refused for now: more "
                                "than one step from a neighbour; approve the neighbour first", who=user))
        return out or self._refuse("approve", user, "nothing pending", sign)

    def _clear_pending(self) -> None:
        for s in self.signs:
            s.pending, s.pending_since = None, None

    def _fits(self, s: SignView, limit: int | None, approving: list[SignView] = ()) -> bool:
        """limit on sign s keeps it within one step of its neighbours' limits (their pending one when
        it is being approved with this one)."""
        if limit is None:
            return True
        i = self.signs.index(s)
        for j in (i - 1, i + 1):
            if 0 <= j < len(self.signs):
                o = self.signs[j]
                nb = o.pending if any(o is x for x in approving) and o.pending is not None else o.commanded
                if nb is not None and abs(nb - limit) > self.cfg.step:
                    return False
        return True

    def snapshot(self, now: float) -> dict:
        return {"zone": self.cfg.zone, "mode": self.mode, "ts": now, "updates": self.updates,
                "approve_timeout_s": self.cfg.approve_timeout_s, "rejected": dict(self.rejected),
                "signs": [s.snapshot(self.cfg.approve_timeout_s, now) for s in self.signs]}
