"""Plain-language names for the codes devices report, as a dispatcher reads them.

Keyed by the firmware's own constants (a code the firmware adds without a name here shows as itself and
tests/dispatch/test_console_map.py fails). The page gets these in the snapshot (`words`), so every panel
and the event log say the same thing.
"""
from __future__ import annotations

from roadedge.beacon import modes as beacon_modes
from roadedge.sign import policy as sign_policy

# why a sign shows what it shows (NTCIP 1203 message sources, docs/topics.md "Sign")
SIGN_SOURCE = {
    sign_policy.CENTRAL: "set by the control centre",
    sign_policy.LOCAL: "local control (maintenance switch)",
    sign_policy.COMM_LOSS: "no contact with the centre (fail-safe message)",
    sign_policy.POWER_RECOVERY: "restored after power loss",
    sign_policy.RESET: "after a restart",
    sign_policy.END_DURATION: "timed message ended",
    sign_policy.AUTONOMOUS: "own fog meter (centre unreachable)",
}
# the sign's power-recovery detail (`power_loss`)
POWER_LOSS = {"short": "short power loss", "long": "long power loss", "unknown": "power loss of unknown length"}

BEACON_MODE = {
    beacon_modes.STANDBY: "standby (clear)",
    beacon_modes.CONTOUR: "contour lamps",
    beacon_modes.GUIDANCE: "guidance: synchronised flashing",
    beacon_modes.ANTI_REAR_END: "anti-rear-end: red tails",
    beacon_modes.SECTION_ALARM: "section alarm: all red",
}
BEACON_REASON = {"auto": "by visibility", "safe": "meter not ok: safe mode", "override": "operator override",
                 "alarm": "section alarm command"}
METER = {"init": "starting", "ok": "ok", "fault": "fault", "silent": "not answering"}
BATTERY = {"ok": "ok", "dim": "low: dimmed", "cutoff": "empty: lamps off"}


def for_page() -> dict[str, dict[str, str]]:
    return {"sign_source": SIGN_SOURCE, "power_loss": POWER_LOSS, "beacon_mode": BEACON_MODE,
            "beacon_reason": BEACON_REASON, "meter": METER, "battery": BATTERY}
