"""Play recorded messages back with their original spacing (scaled by `speed`)."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import paho.mqtt.client as mqtt

from .fileformat import Recorded
from .mqttconn import connect_wait, make_client

Publish = Callable[[Recorded], None]


def replay(messages: Iterable[Recorded], publish: Publish, speed: float = 1.0,
           clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
           progress: Callable[[int, Recorded], None] | None = None) -> int:
    """Call publish(m) for each message at (t - t0) / speed after the start; speed <= 0 = as fast as possible.

    Reusable: the simulator passes its own publish (and a virtual clock/sleep) to re-inject a recording."""
    start = clock()
    t0: float | None = None
    n = 0
    for m in messages:
        if t0 is None:
            t0 = m.t
        if speed > 0:
            wait = (m.t - t0) / speed - (clock() - start)
            if wait > 0:
                sleep(wait)
        publish(m)
        n += 1
        if progress:
            progress(n, m)
    return n


class MQTTPublisher:
    """A publish function for replay() that sends to a broker, keeping QoS and retain."""

    def __init__(self, url: str, timeout: float = 10.0, user: str | None = None, password: str | None = None,
                 ca: str | None = None) -> None:
        self.c, b = make_client(url, "roadedge-replay", ca=ca, user=user, password=password)
        self.c.max_inflight_messages_set(100)
        self.c.max_queued_messages_set(0)
        connect_wait(self.c, b, timeout)
        self.last: mqtt.MQTTMessageInfo | None = None

    def __call__(self, m: Recorded) -> None:
        self.last = self.c.publish(m.topic, m.payload, qos=m.qos, retain=m.retain)

    def close(self, timeout: float = 30.0) -> None:
        """Wait until the last QoS>0 message is acknowledged, then disconnect."""
        if self.last is not None and self.last.mid:
            try:
                self.last.wait_for_publish(timeout)
            except (ValueError, RuntimeError):
                pass
        self.c.disconnect()
        self.c.loop_stop()
