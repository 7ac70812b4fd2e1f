"""Helpers shared by the dispatch tests (imported by module name: tests have no packages)."""
from __future__ import annotations

import json
import secrets

import paho.mqtt.client as mqtt


# A U-shaped road: two 2 km arms ~555 m apart joined at the east end, plus a local road.
# An incident at the west end of the north arm is near a unit on the south arm in a straight
# line but ~4.5 km away by road.
U_ROAD = {
    "name": "u-test", "origin": {"lat": 30.30, "lon": 120.0},
    "roads": [
        {"id": "U", "name": "U loop", "kind": "expressway", "speed_kmh": 80, "oneway": False,
         "points": [[30.300, 120.000], [30.300, 120.020], [30.305, 120.020], [30.305, 120.000]]},
    ],
    "sections": [{"id": "F1", "road": "U", "from_km": 0.5, "to_km": 1.5}],
    "devices": {"beacons": {"spacing_m": 100, "sides": ["R"]},
                "signs": [{"id": "vsl-1", "road": "U", "km": 0.3, "section": "F1"}],
                "trackers": [{"id": "trk-a", "route": [{"road": "U", "from_km": 0, "to_km": 1}]},
                             {"id": "trk-b", "route": [{"road": "U", "from_km": 3, "to_km": 4}]}]},
}


class Publisher:
    def __init__(self, port: int) -> None:
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-pub-{secrets.token_hex(3)}")
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def send(self, topic: str, payload, qos: int = 1, retain: bool = False) -> None:
        if not isinstance(payload, (bytes, str)):
            payload = json.dumps(payload)
        self.c.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def location(seq: int, lat: float, lon: float, tst: float, vel: float = 40.0, cog: float = 90.0, **kw) -> dict:
    return {"_type": "location", "lat": lat, "lon": lon, "tst": tst, "vel": vel, "cog": cog, "acc": 5, "seq": seq,
            "sat": 9, "hdop": 0.9, "fix": 3, "live": True, "tid": "tk", **kw}
