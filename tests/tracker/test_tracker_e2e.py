"""One patrol tracker end to end: the real firmware (compiled .mpy) under the
MicroPython unix port, its GNSS module (virtual receiver, 2 Hz NMEA over the
sim UART), buttons, battery and ignition served by sim.hw, talking to a real
Mosquitto. Reports flow live; the broker goes down while the rider raises
SOS; after it returns the stored reports arrive as catch-up and the SOS is
re-sent; the tracker reboots and the SOS is still latched and re-sent; only
the dispatcher's signed acknowledgement clears it; a dispatch is accepted
with the button."""
from __future__ import annotations

import asyncio
import json
import queue
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from host_tools.broker.mosquitto import Mosquitto
from roadedge.core import auth
from sim.device_process import DeviceProcess, compiled_lib, device_config, make_device_dir
from sim.hw import HardwareServerThread
from sim.peripherals import gnss
from sim.peripherals.tracker_io import TrackerIO
from support.waiting import first_from

DEV = "ic-e2e-07"
KEY = bytes(range(32))
HEAP = "256K"  # see the tracker heap figure in docs/benchmarks.md (bench/nmea)
PINS = {"sos_button": 2, "accept_button": 3, "ignition": 6, "battery": 28, "led": 25, "buzzer": 15}
UARTS = {"gnss": {"id": 1, "baud": 38400, "tx": 4, "rx": 5}}


class PersistentCollector:
    """Subscriber with a persistent session on a broker with persistence, so
    nothing the tracker sends right after the broker comes back is missed
    while this client is still reconnecting."""

    def __init__(self, port: int) -> None:
        self.q: queue.Queue = queue.Queue()
        self.up = queue.Queue()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="tracker-e2e-col", clean_session=False)
        self.c.reconnect_delay_set(0.2, 1)
        self.c.on_connect = lambda c, u, f, rc, p=None: (c.subscribe([(f"re/{DEV}/#", 1), (f"owntracks/roadedge/{DEV}", 1)]))
        self.c.on_subscribe = lambda c, u, mid, rcs, p=None: self.up.put(True)
        self.c.on_message = lambda c, u, m: self.q.put((m.topic, m.payload))
        self.c.connect("127.0.0.1", port, 5)
        self.c.loop_start()
        self.up.get(timeout=10)
        self.seen: list[tuple[str, bytes]] = []

    def mark(self) -> int:
        return len(self.seen)

    def wait_for(self, pred, timeout=20.0, since=None):
        """The first message matching pred: among those already seen from
        index `since` (if given), else the next ones to arrive."""
        if since is not None:
            for t, p in self.seen[since:]:
                if pred(t, p):
                    return t, json.loads(p) if p[:1] == b"{" else p
        t, p = first_from(self.q, lambda m: pred(*m), timeout, seen=self.seen)
        return t, json.loads(p) if p[:1] == b"{" else p

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


@pytest.fixture(scope="module")
def lib(tmp_path_factory) -> Path:
    return compiled_lib(tmp_path_factory.mktemp("lib"))


def test_tracker_end_to_end(lib, tmp_path):
    broker = Mosquitto(tmp_path / "mosq", extra_conf=f"persistence true\npersistence_location {tmp_path}/mosq/\n")
    broker.start()
    col = PersistentCollector(broker.port)
    loc_topic = f"owntracks/roadedge/{DEV}"
    ctr = [0]

    def is_loc(pred=lambda m: True):
        return lambda t, p: t == loc_topic and pred(json.loads(p))

    def is_kind(kind, pred=lambda m: True):
        return lambda t, p: t == f"re/{DEV}/{kind}" and pred(json.loads(p))

    def send(cmd, args):
        ctr[0] += 1
        payload = auth.sign_command(KEY, DEV, cmd, ctr[0], int(time.time() + 60), args)
        col.c.publish(f"re/{DEV}/cmd/{cmd}", payload, 1)
        return col.wait_for(is_kind("ack", lambda a: a["cmd"] == cmd))[1]

    route = gnss.PatrolRoute(duration_s=900, seed=2)
    rx = gnss.GnssModule(route.truth, style="ublox", rate_hz=2, start_unix=time.time(), noise_m=1.0, seed=1)
    stop = asyncio.Event()
    p = None
    with HardwareServerThread() as hws:
        hw = hws.device(DEV)
        io = hws.call(lambda: TrackerIO(hw, battery_v=4.0))
        feeder = hws.call(lambda: hws.loop.create_task(rx.run(hw, "gnss", stop=stop)))
        cfg = device_config({
            "id": DEV, "board": "sim", "role": "tracker", "broker": {"url": "", "keepalive": 5},
            "command_key": KEY.hex(), "pins": PINS, "uarts": UARTS, "device": {"tele_s": 5},
            "tracker": {"tid": "IC", "min_period_s": 1, "max_period_s": 2, "long_press_ms": 1000,
                        "batt_s": 1, "state_s": 3, "store_records": 500, "seg_bytes": 2048},
        }, broker.url, hws.addr)
        folder = make_device_dir(tmp_path / "devices", cfg, fresh=True)
        p = DeviceProcess(folder, "micropython", heap=HEAP, lib=lib).start()
        try:
            # live reports with OwnTracks fields and ours
            _t, m = col.wait_for(is_loc(lambda m: m["live"]), 30)
            assert m["_type"] == "location" and m["tid"] == "IC" and m["fix"] in (2, 3) and m["sat"] == 11
            assert m["batt"] == 80 and m["ign"] == 1 and abs(m["tst"] - time.time()) < 30
            col.wait_for(is_kind("state", lambda s: s["fix"] and s["duty"] == "patrol" and s["batt"] == 80), 15)

            # broker outage; the rider raises SOS while it is down
            broker.stop()
            asyncio.run_coroutine_threadsafe(io.sos(1.6), hws.loop).result(10)
            deadline = time.monotonic() + 10
            while hws.call(lambda: ("buzzer", 1) not in io.changes):  # latched: the buzzer pattern starts
                assert time.monotonic() < deadline, "no SOS indication"
                time.sleep(0.05)
            outage_end = time.time() + 4  # the outage lasts a few more seconds of reports
            while time.time() < outage_end:
                time.sleep(0.2)
            broker.start()
            # after reconnect: SOS re-sent, stored reports delivered as catch-up (the SOS report among them)
            _t, ev = col.wait_for(is_kind("event", lambda e: e["type"] == "sos"), 40)
            assert ev["id"] == 1 and "lat" in ev
            assert abs(ev["ts"] - time.time()) < 30  # the device clock was set from GNSS time (no broker beacon here)
            _t, cu = col.wait_for(is_loc(lambda m: not m["live"] and m["why"] == "sos"), 30)
            assert cu["sos"] == 1 and cu["t"] == "u" and "created_at" in cu
            col.wait_for(is_loc(lambda m: m["live"] and m["sos"] == 1), 30)  # emergency interval, live again

            # reboot (power cut): still latched, re-sent again
            p.kill()
            p = DeviceProcess(folder, "micropython", heap=HEAP, lib=lib).start()
            col.wait_for(is_kind("state", lambda s: s["sos"]["latched"] and s["sos"]["id"] == 1), 30)
            col.wait_for(is_kind("event", lambda e: e["type"] == "sos" and e["id"] == 1), 30)

            # a wrong id does not clear it; the dispatcher's ack does
            a = send("sos_ack", {"id": 9, "by": "desk-3"})
            assert a["code"] == "refused" and a["detail"] == "stale_id"
            m0 = col.mark()
            a = send("sos_ack", {"id": 1, "by": "desk-3"})
            assert a["ok"], a
            col.wait_for(is_kind("event", lambda e: e["type"] == "sos_ack" and e["by"] == "desk-3"), 15, since=m0)
            col.wait_for(is_kind("state", lambda s: not s["sos"]["latched"]), 15, since=m0)

            # dispatch: alert, rider accepts with the button
            m0 = col.mark()
            a = send("dispatch", {"incident": "INC-7", "lat": 52.37, "lon": 4.89, "prio": 1, "text": "crash km 12"})
            assert a["ok"], a
            col.wait_for(is_kind("state", lambda s: s["incident"] == "INC-7" and s["duty"] == "patrol"), 15, since=m0)
            m0 = col.mark()
            asyncio.run_coroutine_threadsafe(io.accept(), hws.loop).result(10)
            _t, ev = col.wait_for(is_kind("event", lambda e: e["type"] == "dispatch_accept"), 15)
            assert ev["incident"] == "INC-7"
            col.wait_for(is_kind("state", lambda s: s["duty"] == "dispatched"), 15, since=m0)
            assert send("dispatch", {"incident": "INC-7", "lat": 95, "lon": 4.89})["code"] == "bad_args"

            # every location went out once per seq or was a resend of the same record
            locs = [json.loads(pl) for t, pl in col.seen if t == loc_topic]
            by_seq: dict[int, dict] = {}
            for m in locs:
                if m["seq"] in by_seq:
                    assert by_seq[m["seq"]]["tst"] == m["tst"]
                by_seq[m["seq"]] = m
            assert any(not m["live"] for m in locs) and any(m["live"] for m in locs)
        finally:
            hws.call(stop.set)
            hws.call(feeder.cancel)
            if p is not None:
                p.kill()
                out = p.console()
                print("device console:", out[-3000:], "\nlast topics:", [t for t, _ in col.seen][-30:])
            col.close()
            broker.stop()
    assert "Traceback" not in out, out[-3000:]
