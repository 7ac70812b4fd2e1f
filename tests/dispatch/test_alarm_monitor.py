"""The alarm shell (monitor.EventService) on a real store and console, driven tick by tick (no thread, no
broker): the view it builds from stored device data, alarms written once, resumed after a restart."""
from __future__ import annotations

import copy
import json
import time

from dispatch_support import U_ROAD, location
from host_tools.deployment.scenario import parse
from host_tools.dispatch.alarms import TYPES, AlarmConfig, AlarmRules
from host_tools.dispatch.bus import Bus
from host_tools.dispatch.console import Console
from host_tools.dispatch.ingest import Ingest
from host_tools.dispatch.monitor import EventService
from host_tools.dispatch.store import Store

SC = parse(copy.deepcopy(U_ROAD))
FAST = AlarmConfig(hold_s={t: 0.0 for t in TYPES}, clear_s={t: 2.0 for t in TYPES}, coverage_every_s=0.0)


def start(tmp_path):
    store = Store(tmp_path / "d.db")
    bus = Bus()
    con = Console(store, bus, lambda *a: None, None, SC)
    ev = EventService(con, AlarmRules(copy.deepcopy(FAST)))
    con.events = ev
    ev.resume()  # what EventService.start does before its first round
    ingest = Ingest(store, "mqtt://127.0.0.1:1")
    return store, bus, con, ev, ingest


def feed(ingest, *msgs):
    ingest.process([(t, json.dumps(b).encode() if not isinstance(b, bytes) else b, time.time()) for t, b in msgs])


def test_alarms_from_stored_data_written_once_and_resumed_after_a_restart(tmp_path):
    store, bus, con, ev, ingest = start(tmp_path)
    q = bus.subscribe()
    lat, lon = SC.roads["U"].latlon_at_km(1.0)
    feed(ingest, ("re/vsl-1/state", {"limit": 60, "source": "central"}),
         ("owntracks/roadedge/trk-a", location(1, lat, lon, time.time(), vel=95, cog=90)))
    t = int(time.time() * 1000)
    ev.tick(t)
    ev.tick(t + 1000)
    raised = ev.log.query(type_="overspeed")["events"]
    assert [(r["phase"], r["device"]) for r in raised] == [("raise", "trk-a")]
    assert "trk-a at 95 km/h where vsl-1 shows 60 km/h" in raised[0]["text"]
    kinds = []
    while not q.empty():
        kinds.append(q.get_nowait()[0])
    assert "eventlog" in kinds
    con.close()
    store.close()

    # the console restarts: the open alarm is resumed, not raised again; it clears once the unit slows down
    store, bus, con, ev, ingest = start(tmp_path)
    ev.tick(t + 2000)
    assert ev.log.query(type_="overspeed")["total"] == 1
    feed(ingest, ("owntracks/roadedge/trk-a", location(2, lat, lon, time.time(), vel=55, cog=90)))
    ev.tick(t + 3000)
    ev.tick(t + 6000)
    rows = ev.log.query(type_="overspeed")["events"]
    assert [r["phase"] for r in rows] == ["clear", "raise"]
    assert "trk-a is back within the sign's limit" in rows[0]["text"]
    assert rows[1]["cleared_at"] is not None
    con.close()
    store.close()


def test_an_sos_acknowledged_from_the_banner_acknowledges_its_alarm(tmp_path):
    store, bus, con, ev, ingest = start(tmp_path)
    feed(ingest, ("re/trk-a/event", {"seq": 1, "ts": time.time(), "type": "sos", "id": 2}))
    alarm = ev.log.alarms()[0]
    assert alarm["type"] == "sos" and alarm["acked_at"] is None
    store.ack_sos("trk-a", "disp")  # what Console.ack_sos records after sending the signed sos_ack
    ev.tick(int(time.time() * 1000))
    a = ev.log.rows([alarm["id"]])[0]
    assert a["acked_by"] == "disp"
    assert any(e["phase"] == "ack" and "SOS banner" in e["text"] for e in ev.log.query(type_="sos")["events"])
    con.close()
    store.close()


def test_the_view_keeps_bad_device_data_out_of_the_rules(tmp_path):
    store, bus, con, ev, ingest = start(tmp_path)
    feed(ingest, ("re/vsl-1/state", {"limit": "lots", "vis_m": [1]}),
         ("re/bcn-f1-r000/state", {"mode": {"x": 1}, "vis_m": "fog"}),
         ("re/evil/info", {"role": "sign"}), ("re/evil/state", {"limit": 200, "vis_m": 10}),
         ("re/trk-a/state", {"duty": 5, "sos": "yes"}))
    for i in range(3):
        ev.tick(int(time.time() * 1000) + i * 1000)
    assert ev.errors == 0 and ev.rules.errors == {}
    # the sign the deployment does not place still has its own meter: 200 km/h at 10 m is above the law
    assert [a["device"] for a in ev.log.alarms() if a["type"] == "sign_over_law"] == ["evil"]
    con.close()
    store.close()
