# The firmware side of the contract tests: one beacon and one sign fed the
# inputs of a JSON job, run under the real MicroPython unix port, printing the
# payloads their app shells publish (one JSON line each: [kind, payload]).
import sys
import json

from roadedge import wire
from roadedge.beacon import app as beacon_app
from roadedge.beacon.meter import MeterPoller, reply_line
from roadedge.beacon.model import BeaconModel
from roadedge.sign import app as sign_app


class NullBus:
    def write(self, data):
        pass


def out(kind, payload):
    print(json.dumps([kind, payload]))


def beacon(job):
    p = beacon_app.params({"beacon": job["params"]})
    evs = []
    now = [0]
    poller = MeterPoller(None, p["meter"], {}, lambda mor, f: evs.extend(model.reading(now[0], mor)),
                         lambda h: evs.extend(model.meter_changed()))
    model = BeaconModel(p, poller.health)
    last = None
    for t, vis in job["readings"]:
        now[0] = t
        poller.health.polled()
        poller.line(reply_line(p["meter"]["addr"], vis, 0))
        for kind, fields in evs:
            out(wire.EVENT, wire.event(0, 0, kind, fields))
        del evs[:]
        st = model.state(t)
        if st != last:
            last = st
            out(wire.STATE, st)


def sign(job):
    p = sign_app.params({"sign": job["params"]})
    pol = sign_app.make_policy(p)
    pol.boot(0, "power_on", 0)
    disp = sign_app.make_display(p, NullBus())
    shown = disp.show(*pol.shown())
    for t, name, args in job["commands"]:
        code, detail = sign_app.command(pol, disp, t, name, args)
        out(wire.ACK, wire.ack(0, 0, name, None, code, detail))
        pol.tick(t)
        if pol.changed:
            pol.changed = False
            shown = disp.show(*pol.shown())
            disp.power(not pol.hot)
            out(wire.STATE, sign_app.state_payload(pol, t, shown, disp.check(), 0))


job = json.load(open(sys.argv[1]))
beacon(job["beacon"])
print("--")
sign(job["sign"])
