# The rarely used built-in commands (log_level, selftest): core.app imports
# this module only when one of them arrives, so a device that never gets one
# never carries their code on its heap.
from roadedge.core import state
from roadedge.core.compat import mem_free, ticks_diff, ticks_ms

LOG_LEVELS = "DIWE"


def log_level(dev, args):
    lvl = args.get("level")
    if not isinstance(lvl, str) or len(lvl) != 1 or lvl not in LOG_LEVELS:
        return "bad_args", "level must be one of D I W E"
    dev.log.level = lvl
    m = args.get("mqtt")
    if m is not None:
        if m not in ("", "D", "I", "W", "E"):
            return "bad_args", "mqtt must be one of D I W E or empty (off)"
        dev.params["log_mqtt"] = m
    return "ok", {"level": lvl, "mqtt": dev.params["log_mqtt"]}


def _storage_ok(data_dir):
    p = data_dir + "/selftest.json"
    try:
        state.write_json(p, {"t": ticks_ms()})
        ok = state.read_json(p, None) is not None
        state.remove(p)
        return ok
    except OSError:
        return False


async def selftest(dev, args):
    checks = {
        "loop": [ticks_diff(ticks_ms(), dev._beat) <= dev.params["stall_ms"], None],
        "net": [bool(dev.hal.net_ok()), None],
        "mqtt": [dev.mqtt is not None and dev.mqtt.is_connected(), None],
        "clock": [dev.clock.now_s() is not None, dev.clock.source],
        "storage": [_storage_ok(dev.data_dir), dev.data_dir],
        "tasks": [not dev._crashed, dev._crashed],
    }
    hf = mem_free()
    if hf >= 0:
        checks["heap"] = [hf > 8192, hf]
    for fn in dev._selftests:
        try:
            r = fn()
            if r is not None and hasattr(r, "send"):
                r = await r
            r = r or {}
            for k in r:
                ok, info = r[k]
                checks[k] = [bool(ok), info]
        except Exception as e:
            checks["role"] = [False, "%s: %s" % (type(e).__name__, e)]
    passed = True
    for k in checks:
        passed = passed and checks[k][0]
    dev.event("selftest", {"pass": passed, "checks": checks})
    return "ok", {"pass": passed, "checks": checks}
