# Runs under the MicroPython unix port (and CPython) for bench/nmea/run.py.
#   decode <corpus> <passes>      -> {"n", "us", "alloc"}: sentences fed, time, bytes allocated
#   pipeline <nmea> <data_dir>    -> {"fixes", "reports", "high_water", "heap"}: the tracker's
#                                    decode -> report -> flash ring -> forward loop; high_water =
#                                    the largest live heap (gc.mem_alloc() after a collection, every 60 fixes)
import sys
import json
import time

try:
    import gc
except ImportError:  # pragma: no cover
    gc = None


def _alloc():
    try:
        return gc.mem_alloc()  # type: ignore[union-attr]
    except AttributeError:
        return -1


def _us():
    try:
        return time.ticks_us()  # type: ignore[attr-defined]
    except AttributeError:
        return int(time.perf_counter() * 1000000)


def decode(path, passes):
    from roadedge.tracker import nmea

    f = open(path, "rb")
    lines = [ln for ln in f]
    f.close()
    d = nmea.Decoder()
    for ln in lines:  # warm up (first-call allocations, interned names)
        d.feed(ln)
        d.take_fix()
    d = nmea.Decoder()
    gc.collect()
    try:
        gc.disable()  # count every byte the decoder allocates, none collected in between
    except AttributeError:
        pass
    a0 = _alloc()
    t0 = _us()
    n = 0
    for _ in range(passes):
        for ln in lines:
            d.feed(ln)
            d.take_fix()
            n += 1
            if n % 2000 == 0 and _alloc() > 0 and gc.mem_free() < 20000:  # type: ignore[union-attr]
                a0 -= _alloc()
                gc.collect()
                a0 += _alloc()
    t1 = _us()
    a1 = _alloc()
    gc.enable()
    print(json.dumps({"n": n, "us": t1 - t0, "alloc": a1 - a0 if a0 >= 0 else -1, "fixes": d.fixes}))


def pipeline(path, data_dir):
    from roadedge.core.store import RecordLog
    from roadedge.tracker import nmea, reporting, record, forward

    gc.collect()
    seg, nseg = forward.store_geometry(12000, 16384)
    store = RecordLog(data_dir + "/track", seg, nseg)
    fwd = forward.Forwarder(store, "IC", 8)
    rep = reporting.Reporter()
    d = nmea.Decoder()
    hw = 0
    reports = 0
    seq = 0
    f = open(path, "rb")
    for ln in f:
        d.feed(ln)
        x = d.take_fix()
        if x is None:
            continue
        v = x.speed_kmh10()
        why = rep.decide(x.unix, x.lat, x.lon, v, x.course)
        if why:
            rep.reported(x.unix, x.lat, x.lon, v, x.course)
            seq += 1
            fwd.add(record.from_fix(x, seq, 80, False, True, why), False)
            reports += 1
            if reports % 50 == 0:  # a catch-up batch now and then, as after a reconnect
                fwd.batch(x.unix)  # builds the OwnTracks JSON of up to 8 records
        if d.fixes % 60 == 0:  # live set: what survives a collection
            gc.collect()
            a = _alloc()
            if a > hw:
                hw = a
    f.close()
    print(json.dumps({"fixes": d.fixes, "reports": reports, "high_water": hw, "heap": _alloc() + gc.mem_free()}))


if sys.argv[1] == "decode":
    decode(sys.argv[2], int(sys.argv[3]))
else:
    pipeline(sys.argv[2], sys.argv[3])
