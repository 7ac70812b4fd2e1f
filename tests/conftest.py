"""Shared fixtures: a real Mosquitto, the firmware runtimes, MQTT helpers."""
from __future__ import annotations

import queue
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from host_tools import fw
from host_tools.broker.mosquitto import Mosquitto
from support.waiting import first_from



@pytest.fixture
def mosquitto(tmp_path: Path):
    """A fresh anonymous Mosquitto on a free loopback port for one test."""
    with Mosquitto(tmp_path / "mosquitto") as b:
        yield b


@pytest.fixture(params=fw.RUNTIMES)
def runtime(request) -> str:
    """Parametrise a test over the MicroPython unix port and CPython."""
    return request.param


class Collector:
    """A paho subscriber that queues every message; wait on events, not sleeps."""

    def __init__(self, port: int, topics: list[str] | str = "#", username: str | None = None,
                 password: str | None = None, qos: int = 1) -> None:
        self.q: queue.Queue = queue.Queue()
        self.connected = threading.Event()
        # with an account, its own name is the one client id the broker accepts for it
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=username or f"collector-{id(self)}")
        if username:
            self.c.username_pw_set(username, password)
        topics = [topics] if isinstance(topics, str) else topics

        def on_connect(c, u, f, rc, p=None):
            for t in topics:
                c.subscribe(t, qos)

        def on_subscribe(c, u, mid, rcs, p=None):
            self.connected.set()

        self.c.on_connect = on_connect
        self.c.on_subscribe = on_subscribe
        self.c.on_message = lambda c, u, m: self.q.put((m.topic, m.payload, m.retain, m.qos))
        self.c.connect("127.0.0.1", port, 30)
        self.c.loop_start()
        if not self.connected.wait(10):
            raise TimeoutError("collector did not subscribe")

    def get(self, timeout: float = 10.0):
        return self.q.get(timeout=timeout)

    def wait_for(self, pred, timeout: float = 10.0):
        """Return the first (topic, payload, retain, qos) with pred(...) true."""
        return first_from(self.q, lambda m: pred(*m), timeout)

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


@pytest.fixture
def collector_factory():
    made: list[Collector] = []

    def make(port: int, topics="#", **kw) -> Collector:
        c = Collector(port, topics, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()
