# Drives the tracker's pure modules and the real record store with synthetic
# (GNSS) time, under MicroPython or CPython (host_tools.fw.run). The host
# writes the NMEA a virtual receiver produced; this script plays it through
# nmea.Decoder -> reporting.Reporter -> record -> forward.Forwarder/RecordLog
# exactly as the app shell does, without waiting for real seconds.
#
#   route  <nmea>
#       print "R <tst> <reason>" for every report the rules select
#   outage <nmea> <data_dir> <from_unix> <to_unix> <connect_unix> <records> <seg_bytes>
#       play fixes with tst in [from, to); the link is down before connect_unix,
#       up after it (a fake broker that PUBACKs every message). Prints
#       "S <seq> <tst> <reason>" once a report is durably stored and
#       "P <json>" for each publish, "A <n>" when a batch is acknowledged.
#       The host may kill the process at any moment (power cut).
import sys

from roadedge.core.seq import Seq
from roadedge.core.store import RecordLog
from roadedge.tracker import nmea, reporting, record, forward


def fixes(path, t0=0, t1=1 << 40):
    d = nmea.Decoder()
    f = open(path, "rb")
    try:
        for line in f:
            d.feed(line)
            x = d.take_fix()
            if x is not None and t0 <= x.unix < t1:
                yield x
    finally:
        f.close()


def route(path):
    rep = reporting.Reporter()
    for f in fixes(path):
        v = f.speed_kmh10()
        why = rep.decide(f.unix, f.lat, f.lon, v, f.course)
        if why:
            rep.reported(f.unix, f.lat, f.lon, v, f.course)
            print("R %d %d" % (f.unix, why))


class FakeLink:
    def __init__(self):
        self.up = False

    def connected(self):
        return self.up

    def publish(self, payload):
        print("P " + payload)
        return True

    async def confirm(self):
        return True


async def outage(path, data_dir, t0, t1, t_conn, records, seg_bytes):
    seg, nseg = forward.store_geometry(records, seg_bytes)
    store = RecordLog(data_dir + "/track", seg, nseg)
    seq = Seq(data_dir + "/seq.json")
    fwd = forward.Forwarder(store, "IC", 8)
    link = FakeLink()
    rep = reporting.Reporter()
    for f in fixes(path, t0, t1):
        link.up = f.unix >= t_conn
        if not link.up:
            fwd.link_down()
        v = f.speed_kmh10()
        why = rep.decide(f.unix, f.lat, f.lon, v, f.course)
        if why:
            rep.reported(f.unix, f.lat, f.lon, v, f.course)
            r = record.from_fix(f, seq.next(), 80, False, True, why)
            fwd.add(r, link.up)
            print("S %d %d %d" % (r.seq, r.tst, why))
        while link.up and fwd.backlog():
            n = await fwd.pump_once(link, f.unix)
            print("A %d" % n)
    print("D dropped=%d backlog=%d corrupt=%d" % (store.dropped, fwd.backlog(), store.corrupt))


def main(argv):
    if argv[1] == "route":
        route(argv[2])
    elif argv[1] == "outage":
        import asyncio

        a = [int(x) for x in argv[4:]]
        asyncio.run(outage(argv[2], argv[3], a[0], a[1], a[2], a[3], a[4]))
    else:
        raise SystemExit("usage: route|outage ...")


main(sys.argv)
