"""Helpers shared by the dispatch tests (imported by module name: tests have no packages)."""
from __future__ import annotations

import json
import secrets

import paho.mqtt.client as mqtt


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
