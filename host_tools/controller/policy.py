"""The zone controller's decision core. Pure: no I/O, no clock; `now` (unix s) is passed in.

Each `update(now)` is one interval:
1. each sign's visibility = the worst fresh reading among the meters/beacons that feed it;
2. its Art. 81 fog level (0 clear, 1 < 200 m, 2 < 100 m, 3 < 50 m) with hysteresis (leave a level only
   above threshold * (1 + pct)) and persistence (a new level is adopted after `persist` intervals in a row);
3. target = the level's limit (normal, 60, 40, 20), capped by an operator's hold (veto);
4. the targets are tapered along the road so adjacent signs differ by at most one step: the sign
   upstream of a fog bank is brought down first (drivers step down gradually);
5. the recommendation moves at most one step from what the sign was last commanded.
Because the tapered targets and the commanded limits are each at most one step apart between
neighbours, moving every sign at most one step towards its target keeps them so.

Modes: automatic (recommendations are commanded), approve (they wait for a supervisor), manual
(recommendations are shown; only a supervisor's manual limits are commanded).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from host_tools import fw

from .zone import ZoneConfig

fw.ensure_firmware_importable()
from roadedge.sign.policy import art81_level  # noqa: E402  (the one Art. 81 mapping, shared with the sign)

MODES = ("automatic", "approve", "manual")
SUPERVISOR = "supervisor"


@dataclass
class SignView:
    id: str
    km: float
    sources: list[str]
    vis_m: float | None = None
    level: int = 0
    cand: int | None = None  # a new level waiting out its persistence
    cand_n: int = 0
    recommended: int | None = None
    pending: int | None = None  # waiting for a supervisor (approve mode)
    commanded: int | None = None  # last limit sent
    hold: int | None = None  # a veto's ceiling
    displayed: int | None = None  # what the sign reports it shows
    legend: str = ""
    source: str | None = None
    check: int | None = None
    closure: bool = False
    no_data: bool = True

    def snapshot(self) -> dict:
        return {k: getattr(self, k) for k in ("id", "km", "vis_m", "level", "recommended", "pending", "commanded",
                                               "hold", "displayed", "legend", "source", "check", "closure", "no_data")}


@dataclass
class Decision:
    """One thing the controller decided or a person did; `command` set when a sign must be told."""
    kind: str  # command | pending | closure | open | refused | mode | hold | release | no_data
    sign: str | None
    limit: int | None
    why: str
    inputs: dict = field(default_factory=dict)
    who: str = "controller"
    command: bool = False
    legend: str = ""


class ZonePolicy:
    def __init__(self, cfg: ZoneConfig, mode: str = "automatic") -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.cfg = cfg
        self.mode = mode
        self.signs = [SignView(s.id, s.km, list(s.sources)) for s in cfg.signs]
        self.by_id = {s.id: s for s in self.signs}
        self.readings: dict[str, tuple[float, float]] = {}  # source id -> (vis_m, at)
        self.updates = 0

    # --- inputs ------------------------------------------------------------
    def visibility(self, source: str, vis_m, now: float) -> bool:
        if isinstance(vis_m, bool) or not isinstance(vis_m, (int, float)) or not 0 <= vis_m < 1e6:
            return False
        self.readings[source] = (float(vis_m), now)
        return True

    def sign_state(self, sign: str, st: dict) -> bool:
        s = self.by_id.get(sign)
        if s is None or not isinstance(st, dict):
            return False
        s.displayed = st.get("limit") if isinstance(st.get("limit"), int) else None
        s.legend = st.get("legend") or ""
        s.source = st.get("source")
        s.check = st.get("check")
        if s.commanded is None and s.source == "central" and s.displayed is not None:
            s.commanded = s.displayed  # resume from what a previous run commanded
        return True

    def legend_for(self, limit: int | None) -> str:
        return self.cfg.legend if limit is not None and limit < self.cfg.normal_limit else ""

    def level_limit(self, level: int) -> int:
        return (self.cfg.normal_limit, 60, 40, 20)[level]

    # --- one interval --------------------------------------------------------
    def update(self, now: float) -> list[Decision]:
        cfg = self.cfg
        out: list[Decision] = []
        self.updates += 1
        step = cfg.step
        targets = []
        for s in self.signs:
            fresh = [self.readings[src][0] for src in s.sources
                     if src in self.readings and now - self.readings[src][1] <= cfg.vis_max_age_s]
            s.vis_m = min(fresh) if fresh else None
            if s.vis_m is None:
                if not s.no_data:
                    out.append(Decision("no_data", s.id, None, "no fresh visibility from " + ",".join(s.sources)))
                s.no_data = True
                s.cand, s.cand_n = None, 0  # keep the level: no decision from no data
            else:
                s.no_data = False
                raw = art81_level(s.vis_m, s.level, cfg.hysteresis_pct)
                if raw == s.level:
                    s.cand, s.cand_n = None, 0
                else:
                    s.cand_n = s.cand_n + 1 if raw == s.cand else 1
                    s.cand = raw
                    if s.cand_n >= cfg.persist:
                        s.level, s.cand, s.cand_n = raw, None, 0
            closure = s.vis_m is not None and s.vis_m < cfg.closure_below_m
            if closure != s.closure:
                s.closure = closure
                out.append(Decision("closure" if closure else "open", s.id, None,
                                    f"visibility {s.vis_m} m {'<' if closure else '>='} {cfg.closure_below_m} m: "
                                    + ("recommend closing the section" if closure else "closure no longer recommended"),
                                    {"vis_m": s.vis_m}))
            t = self.level_limit(s.level)
            if s.hold is not None:
                t = min(t, s.hold)
            targets.append(t)
        n = len(self.signs)
        tapered = [min(targets[j] + step * abs(i - j) for j in range(n)) for i in range(n)]
        for i, s in enumerate(self.signs):
            base = s.commanded if s.commanded is not None else cfg.normal_limit
            rec = max(base - step, min(base + step, tapered[i]))
            s.recommended = rec
            inputs = {"vis_m": s.vis_m, "level": s.level, "pending_level": s.cand, "persist_n": s.cand_n,
                      "target": targets[i], "tapered": tapered[i], "base": base, "hold": s.hold}
            why = self._why(s, targets[i], tapered[i], base, rec)
            if self.mode == "automatic":
                if rec != s.commanded:
                    s.commanded = rec
                    out.append(Decision("command", s.id, rec, why, inputs, command=True, legend=self.legend_for(rec)))
            elif self.mode == "approve":
                newp = rec if rec != s.commanded else None
                if newp != s.pending and newp is not None:
                    out.append(Decision("pending", s.id, newp, why + "; waiting for approval", inputs))
                s.pending = newp
        return out

    def _why(self, s: SignView, target: int, tapered: int, base: int, rec: int) -> str:
        parts = [f"visibility {s.vis_m:g} m" if s.vis_m is not None else "no fresh visibility",
                 f"Art. 81 level {s.level} -> {target} km/h"]
        if s.cand is not None:
            parts.append(f"level {s.cand} seen {s.cand_n}/{self.cfg.persist} intervals")
        if s.hold is not None:
            parts.append(f"held at {s.hold} by veto")
        if tapered != target:
            parts.append(f"taper to neighbours -> {tapered}")
        if rec != tapered:
            parts.append(f"one step from {base}")
        return "; ".join(parts)

    # --- people --------------------------------------------------------------
    def _refuse(self, action: str, user: str, why: str, sign=None, limit=None) -> list[Decision]:
        return [Decision("refused", sign, limit, f"{action} refused: {why}", who=user or "?")]

    def operator(self, op: dict) -> list[Decision]:
        """An operator action {"action", "sign", "limit", "user", "role", "reason"}; returns decisions
        (a "refused" one when not allowed). Only a supervisor may change a sign or the mode."""
        if not isinstance(op, dict):
            return self._refuse("?", "?", "not a JSON object")
        action, user, role = op.get("action"), op.get("user"), op.get("role")
        sign, limit, reason = op.get("sign"), op.get("limit"), op.get("reason") or ""
        if not isinstance(user, str) or not user:
            return self._refuse(str(action), "?", "no user")
        if action not in ("approve", "veto", "manual", "mode"):
            return self._refuse(str(action), user, "unknown action")
        if role != SUPERVISOR:
            return self._refuse(action, user, f"role {role!r} may not change signs (supervisor only)", sign, limit)
        note = f" ({reason})" if reason else ""
        if action == "mode":
            m = op.get("mode", limit if isinstance(limit, str) else None)
            if m not in MODES:
                return self._refuse(action, user, f"mode must be one of {MODES}")
            old, self.mode = self.mode, m
            if m != "approve":
                for s in self.signs:
                    s.pending = None
            return [Decision("mode", None, None, f"mode {old} -> {m}{note}", who=user)]
        if sign is not None and sign not in self.by_id:
            return self._refuse(action, user, f"unknown sign {sign!r}", sign, limit)
        if action == "approve":
            out: list[Decision] = []
            targets = self.signs if sign is None else [self.by_id[sign]]
            for s in targets:
                # a hold is released only by approving that sign by name, never by "approve all"
                if s.hold is not None and sign is not None:
                    out.append(Decision("release", s.id, s.hold, f"hold at {s.hold} released{note}", who=user))
                    s.hold = None
            # apply pendings that keep every pair of neighbours within one step; repeat, since
            # applying one can make its neighbour's acceptable (upstream first on the way down,
            # downstream first on the way up)
            todo = [s for s in targets if s.pending is not None]
            progress = True
            while todo and progress:
                progress = False
                for s in list(todo):
                    if self._fits(s, s.pending):
                        s.commanded, s.pending = s.pending, None
                        todo.remove(s)
                        progress = True
                        out.append(Decision("command", s.id, s.commanded, f"approved recommendation{note}",
                                            who=user, command=True, legend=self.legend_for(s.commanded)))
            for s in todo:
                out.append(Decision("refused", s.id, s.pending, f"approve of {s.pending} refused for now: more "
                                    "than one step from a neighbour; approve the neighbour first", who=user))
            return out or self._refuse(action, user, "nothing pending", sign)
        if sign is None:
            return self._refuse(action, user, "a sign is required", sign, limit)
        s = self.by_id[sign]
        if action == "veto":
            cands = [x for x in (s.commanded, s.pending, s.recommended, limit if isinstance(limit, int) else None)
                     if x is not None]
            if not cands:
                return self._refuse(action, user, "nothing to veto", sign)
            hold = min(cands)
            s.hold = hold
            self._clear_pending()  # recomputed at the next update, with the hold
            out = [Decision("hold", s.id, hold, f"veto: hold {hold} km/h until approved{note}", who=user,
                            inputs={"commanded": s.commanded, "recommended": s.recommended})]
            if s.commanded != hold:
                s.commanded = hold
                out.append(Decision("command", s.id, hold, f"veto holds the lower limit{note}", who=user,
                                    command=True, legend=self.legend_for(hold)))
            return out
        # manual
        if self.mode != "manual":
            return self._refuse(action, user, f"manual limits need manual mode (now {self.mode})", sign, limit)
        if limit is not None and not self.cfg.allowed(limit):
            return self._refuse(action, user, f"limit {limit!r} not in the signs' allowed set", sign, limit)
        s.commanded = limit
        self._clear_pending()
        return [Decision("command", s.id, limit, f"manual{note}", who=user, command=True,
                         legend=self.legend_for(limit))]

    def _clear_pending(self) -> None:
        for s in self.signs:
            s.pending = None

    def _fits(self, s: SignView, limit: int | None) -> bool:
        """limit on sign s keeps it within one step of its neighbours' commanded limits."""
        if limit is None:
            return True
        i = self.signs.index(s)
        for j in (i - 1, i + 1):
            if 0 <= j < len(self.signs):
                nb = self.signs[j].commanded
                if nb is not None and abs(nb - limit) > self.cfg.step:
                    return False
        return True

    def snapshot(self, now: float) -> dict:
        return {"zone": self.cfg.zone, "mode": self.mode, "ts": now, "updates": self.updates,
                "signs": [s.snapshot() for s in self.signs]}
