"""Subscribe to everything and append each message to a recording."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import IO

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from .fileformat import Recorded, encode
from .mqttconn import connect_wait, make_client


class Recorder:
    """Records every message on `topics` (QoS 2 subscription keeps the publisher's QoS)."""

    def __init__(self, url: str, out: IO[str], topics: tuple[str, ...] = ("#",),
                 clock: Callable[[], float] = time.time, user: str | None = None, password: str | None = None,
                 ca: str | None = None) -> None:
        self.url, self.out, self.topics, self.clock = url, out, topics, clock
        self.user, self.password, self.ca = user, password, ca
        self.count = 0
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.changed = threading.Condition(self.lock)
        self.c: mqtt.Client | None = None

    def _on_message(self, c, u, m: mqtt.MQTTMessage) -> None:
        line = encode(Recorded(self.clock(), m.topic, m.payload, m.qos, bool(m.retain)))
        with self.lock:
            self.out.write(line + "\n")
            self.count += 1
            self.changed.notify_all()

    def wait_count(self, n: int, timeout: float = 10.0) -> bool:
        """Wait until at least n messages are recorded."""
        with self.changed:
            return self.changed.wait_for(lambda: self.count >= n, timeout)

    def start(self, timeout: float = 10.0) -> Recorder:
        # MQTT 5 "retain as published" records the publisher's retain flag on live messages too.
        c, b = make_client(self.url, "roadedge-record", protocol=mqtt.MQTTv5, ca=self.ca, user=self.user,
                           password=self.password)
        self.c = c
        c.on_message = self._on_message
        c.on_subscribe = lambda *a: self.subscribed.set()

        def on_connect(client, userdata, flags, rc, props=None):
            if not rc.is_failure:
                opts = SubscribeOptions(qos=2, retainAsPublished=True)
                client.subscribe([(t, opts) for t in self.topics])

        c.on_connect = on_connect
        connect_wait(c, b, timeout)
        c.on_connect = on_connect  # resubscribe after a reconnect
        if not self.subscribed.wait(timeout):
            raise TimeoutError("recorder did not subscribe")
        return self

    def flush(self) -> None:
        with self.lock:
            self.out.flush()

    def stop(self) -> None:
        if self.c:
            self.c.disconnect()
            self.c.loop_stop()
        self.flush()
