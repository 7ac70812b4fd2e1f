# Device wall clock: unix ms = the last sync + local ticks since it, corrected
# for the local oscillator's rate error. Beacons flash in phase from it, so
# it must stay within a few ms between syncs even with a 50 ppm crystal.
#
# The rate (ppm) is measured between raw syncs from the same source over a
# baseline of at least min_base_ms (short baselines are dominated by sync
# jitter) and at most max_base_ms (so temperature drift is followed). A sync
# within step_ms of the prediction is applied at once and feeds the rate
# estimate; one further off steps the clock and restarts the baseline. A
# worse source (rtc < broker < ntp < gnss) is ignored while a better one
# synced within hold_ms.
#
# Pure: every method takes ticks (ms, ticks_ms() domain) as an argument, so
# tests and the simulator drive it with synthetic time.
from roadedge.core.compat import const, ticks_ms, ticks_diff

RANK = {"gnss": 0, "ntp": 1, "broker": 2, "rtc": 3}
# Float precision: boards use 32-bit floats, where unix seconds would be
# rounded to ~2 minutes; there now_s() returns whole seconds (an int).
_DOUBLE = float(16777217) != 16777216.0
# Rebase the offset before ticks_diff (valid to 2**29 ms) becomes ambiguous.
_REBASE_MS = const(1 << 27)
_MAX_REF_MS = const(1 << 28)


class Clock:
    def __init__(self, step_ms=1000, hold_ms=3600000, min_base_ms=120000, max_base_ms=6 * 3600000, max_ppm=500):
        self.step_ms = step_ms
        self.hold_ms = hold_ms
        self.min_base_ms = min_base_ms
        self.max_base_ms = max_base_ms
        self.max_ppm = max_ppm
        self.source = None
        self.ppm = 0.0  # local ticks run slow by this much (positive = add time)
        self.last_corr_ms = 0  # sync minus prediction at the last accepted sync
        self.syncs = 0
        self.steps = 0
        self.ignored = 0
        self._base_unix = None
        self._base_ticks = 0
        self._ref = None  # (unix_ms, ticks, source): start of the rate baseline
        self._cand = None  # next baseline start once the current one is too long
        self._sync_ticks = 0

    def is_set(self):
        return self._base_unix is not None

    def _ticks(self, ticks):
        return ticks_ms() if ticks is None else ticks

    def now_ms(self, ticks=None):
        """Unix time in ms (int) at `ticks` (default: now), or None if the
        clock was never set."""
        if self._base_unix is None:
            return None
        t = self._ticks(ticks)
        el = ticks_diff(t, self._base_ticks)
        v = self._base_unix + el + round(el * self.ppm / 1000000)
        if el > _REBASE_MS:
            self._base_unix = v
            self._base_ticks = t
        return v

    def now_s(self, ticks=None):
        """Unix seconds: float where floats are doubles, else int; None if
        never set."""
        ms = self.now_ms(ticks)
        if ms is None:
            return None
        return ms / 1000 if _DOUBLE else ms // 1000

    def synced_age_ms(self, ticks=None):
        if self._base_unix is None:
            return None
        return ticks_diff(self._ticks(ticks), self._sync_ticks)

    def set(self, unix_ms, source, at_ticks=None):
        """Feed a time sample: unix_ms was true at at_ticks (default now).
        Returns "set" (first), "slew" (small error applied), "step" (far
        off: stepped) or "ignored" (worse source than a recent better one)."""
        if source not in RANK:
            raise ValueError("unknown time source %r" % (source,))
        t = self._ticks(at_ticks)
        unix_ms = int(unix_ms)
        if self.source is not None and RANK[source] > RANK[self.source]:
            if ticks_diff(t, self._sync_ticks) < self.hold_ms:
                self.ignored += 1
                return "ignored"
        pred = self.now_ms(t)
        if pred is None:
            result = "set"
            self._ref = (unix_ms, t, source)
            self._cand = None
        else:
            err = unix_ms - pred
            self.last_corr_ms = err
            if err >= self.step_ms or -err >= self.step_ms:
                result = "step"
                self.steps += 1
                self._ref = (unix_ms, t, source)
                self._cand = None
            else:
                result = "slew"
                self._update_rate(unix_ms, t, source)
        self._base_unix = unix_ms
        self._base_ticks = t
        self._sync_ticks = t
        self.source = source
        self.syncs += 1
        return result

    def _update_rate(self, unix_ms, t, source):
        ref = self._ref
        if ref is None or ref[2] != source or unix_ms - ref[0] > _MAX_REF_MS or unix_ms < ref[0]:
            self._ref = (unix_ms, t, source)
            self._cand = None
            return
        el_t = ticks_diff(t, ref[1])
        if el_t >= self.min_base_ms:
            ppm = (unix_ms - ref[0] - el_t) * 1000000 / el_t
            if -self.max_ppm <= ppm <= self.max_ppm:
                self.ppm = ppm
        if el_t >= self.max_base_ms and self._cand is not None:
            self._ref = self._cand
            self._cand = None
        elif self._cand is None and el_t >= self.max_base_ms // 2:
            self._cand = (unix_ms, t, source)

    def offset_report(self, ticks=None):
        """Figures for telemetry."""
        return {
            "src": self.source,
            "age_ms": self.synced_age_ms(ticks),
            "corr_ms": self.last_corr_ms,
            "ppm": round(self.ppm, 2),
            "syncs": self.syncs,
            "steps": self.steps,
            "ignored": self.ignored,
        }
