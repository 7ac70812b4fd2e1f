# Runs the beacon policies under whichever runtime executes it (the real
# MicroPython unix port in test_micropython_policy.py). Input: a JSON file
# with "cfg" and either "fog" (per beacon: [[ms, metres], ...] readings) or
# "tail" (detections and sampling instants). Output: "L <levels>" lines per
# beacon (fog), then one JSON line.
import sys
import json

from roadedge.beacon import meter as V
from roadedge.beacon.logic import BeaconLogic


def fog(job):
    # one line per beacon, levels as a digit string: the whole trace in one
    # JSON document would not fit a fragmented heap
    for samples in job["fog"]:
        lg = BeaconLogic(job["cfg"])
        levels = []
        now = [0]
        p = V.MeterPoller(None, {"addr": 1}, {}, lambda mor, flags, lg=lg, now=now: lg.visibility(now[0], mor),
                          lambda h: None)
        for t, v in samples:
            now[0] = t
            p.line(V.reply_line(1, v, 0))  # through the decoder, as from the UART
            levels.append(str(lg.modes.level.level))
        print("L", "".join(levels))
    return None


def tail(job):
    n = job["n"]
    bs = [BeaconLogic(job["cfg"]) for _ in range(n)]
    for b in bs:
        for t in range(0, 15001, 5000):
            b.visibility(t, 45)
    events = job["detections"]  # [[ms, beacon index, kmh], ...] in time order
    k = 0
    reds = []
    for t in job["samples"]:
        while k < len(events) and events[k][0] <= t:
            e = events[k]
            bs[e[1]].detect(e[0], e[2])
            k += 1
        reds.append([i for i in range(n) if bs[i].render(t, job["unix0"] + t)[3] > 0])
    return reds


job = json.load(open(sys.argv[1]))
res = fog(job) if "fog" in job else tail(job)
print(json.dumps({"impl": sys.implementation.name, "result": res}))
