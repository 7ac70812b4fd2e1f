"""Where the world's device messages go: a `roadedge record` file, memory, or an MQTT broker."""
from __future__ import annotations

from pathlib import Path

from host_tools.recording.fileformat import Recorded, encode
from roadedge import wire


class RecordingSink:
    """Writes the messages in the `roadedge record` format (one JSON line each), so the field's
    recordings and the simulator's are read, replayed and compared by the same code."""

    def __init__(self, path: str | Path) -> None:
        self.f = open(path, "w", encoding="utf-8")

    def __call__(self, t: float, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        self.f.write(encode(Recorded(t, topic, payload, qos, retain)) + "\n")

    def close(self) -> None:
        self.f.close()


class MemorySink:
    def __init__(self) -> None:
        self.messages: list[Recorded] = []

    def __call__(self, t: float, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        self.messages.append(Recorded(t, topic, payload, qos, retain))


class MqttSink:
    """Publishes to a broker with a paho client (the demo's devices on the CPython runtime).
    Heartbeats between the simulated controller and signs (and their acks) stay off the bus; the acks
    of everything else go out, as the console follows its commands by them."""

    echo = False  # firmware processes' messages are on the broker already: never republish them

    def __init__(self, client) -> None:
        self.client = client

    def __call__(self, t: float, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        parsed = wire.parse(topic)
        if parsed is not None and (parsed[0] == wire.COMMAND and parsed[2] == "heartbeat"
                                   or parsed[0] == wire.ACK and b'"cmd":"heartbeat"' in payload):
            return
        self.client.publish(topic, payload, qos=qos, retain=retain)
