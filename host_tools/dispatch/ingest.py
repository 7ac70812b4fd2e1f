"""MQTT ingest: paho subscriber -> bounded queue -> batch writer thread -> Store.

With a shared group the data subscriptions are `$share/<group>/...`: the broker hands each
message to one worker of the group, and the store's unique keys make any redelivery
harmless. Shared subscriptions get no retained messages, so each worker also subscribes
plainly to the retained state topics (subscription id 2) and uses only the retained copies
from it. Falls back to MQTT 3.1.1 (without subscription ids) for brokers without MQTT 5.

Nothing acknowledged is lost: QoS 1 messages are acknowledged by hand (paho manual_ack) only once
the batch holding them is committed, and with an account the session is persistent under a stable
id (the account name; the broker binds ids to accounts), so a crash or restart finds the backlog
waiting at the broker. The broker sends at most RECEIVE_MAXIMUM unacknowledged messages, which
bounds memory and keeps the connection responsive while a large backlog drains.
"""
from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from host_tools.recording.mqttconn import connect_wait, make_client

from .decode import Reject, decode
from .store import Store
from roadedge import wire

DATA_TOPICS = (wire.ALL_LOCATIONS, wire.ALL_DEVICES)
RETAINED_TOPICS = (wire.every(wire.STATUS), wire.every(wire.INFO), wire.every(wire.STATE), wire.ALL_CTL_STATE)
SUB_DATA, SUB_RETAINED = 1, 2
BATCH = 1000
SESSION_EXPIRY_S = 7 * 24 * 3600
RECEIVE_MAXIMUM = 1000  # unacknowledged messages in flight from the broker (MQTT 5)


class Ingest:
    def __init__(self, store: Store, url: str, shared_group: str | None = None,
                 on_change: Callable[[dict], None] | None = None, queue_size: int = 50000,
                 client_id: str | None = None, ca: str | None = None,
                 credentials: tuple[str, str] | None = None) -> None:
        self.store, self.url, self.group = store, url, shared_group
        # a fixed client id = a persistent session: the broker keeps QoS 1 messages while ingest is down.
        # With an account the id defaults to its name: stable per worker, and what the broker binds it to.
        if client_id is None and credentials:
            client_id = credentials[0]
        self.client_id, self.ca = client_id, ca
        self.credentials = credentials
        self.on_change = on_change
        self.q: queue.Queue = queue.Queue(maxsize=queue_size)
        self.stats = {"received": 0, "stored": 0, "dupes": 0, "rejected": 0, "batches": 0, "errors": 0}
        self.last_error = ""
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self._stop = threading.Event()
        self._writer = threading.Thread(target=self._write_loop, name="dispatch-writer", daemon=True)
        self.c: mqtt.Client | None = None
        self.v5 = True
        self._idle = threading.Condition()

    # -- MQTT -------------------------------------------------------------------
    def _subscribe(self, c: mqtt.Client) -> None:
        prefix = f"$share/{self.group}/" if self.group else ""
        if self.v5:
            p = Properties(PacketTypes.SUBSCRIBE)
            p.SubscriptionIdentifier = SUB_DATA
            c.subscribe([(prefix + t, 1) for t in DATA_TOPICS], properties=p)
            if self.group:
                p2 = Properties(PacketTypes.SUBSCRIBE)
                p2.SubscriptionIdentifier = SUB_RETAINED
                c.subscribe([(t, 1) for t in RETAINED_TOPICS], properties=p2)
        else:
            c.subscribe([(prefix + t, 1) for t in DATA_TOPICS])

    def _on_connect(self, c, u, flags, rc, props=None) -> None:
        if not rc.is_failure:
            self.connected.set()
            self._subscribe(c)
            if self.client_id and getattr(flags, "session_present", False):
                self.subscribed.set()  # the session kept the subscriptions: its backlog is already flowing

    def _on_message(self, c, u, m: mqtt.MQTTMessage) -> None:
        if self.v5 and self.group:
            ids = getattr(m.properties, "SubscriptionIdentifier", None) or []
            if SUB_DATA not in ids and not m.retain:
                self._ack([(m.mid, m.qos)])  # nothing to store
                return  # the live copy of a state message: the shared subscription delivers it
        # blocks when full: back-pressure, never drop; acknowledged by the writer after the commit
        self.q.put((m.topic, m.payload, time.time(), m.mid, m.qos))

    def _ack(self, acks: list[tuple[int, int]]) -> None:
        c = self.c
        if c is None:
            return
        for mid, qos in acks:
            if qos:
                c.ack(mid, qos)

    def start(self, timeout: float = 10.0) -> Ingest:
        self._writer.start()
        for v5 in (True, False):
            self.v5 = v5
            c, b = make_client(self.url, "roadedge-dispatch", protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
                               ca=self.ca, client_id=self.client_id,
                               user=self.credentials[0] if self.credentials else None,
                               password=self.credentials[1] if self.credentials else None)
            c.on_message = self._on_message
            c.on_subscribe = lambda *a: self.subscribed.set()
            c.on_connect = self._on_connect  # subscribes on every (re)connect, from the CONNACK on
            c.manual_ack_set(True)
            c.max_inflight_messages_set(1000)
            self.c = c  # acks go through it as soon as the backlog flows
            kw: dict = {}
            if v5:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = SESSION_EXPIRY_S if self.client_id else 0
                props.ReceiveMaximum = RECEIVE_MAXIMUM
                kw = {"clean_start": self.client_id is None, "properties": props}
            try:
                connect_wait(c, b, timeout, **kw)
            except (ConnectionError, TimeoutError, OSError) as e:
                self.last_error = str(e)
                c.loop_stop()
                if v5:
                    continue
                raise
            break
        if not self.subscribed.wait(timeout):
            raise TimeoutError("ingest did not subscribe")
        return self

    def stop(self) -> None:
        if self.c:
            self.c.disconnect()
            self.c.loop_stop()
        self._stop.set()
        self._writer.join(10)

    # -- writer -----------------------------------------------------------------
    def _write_loop(self) -> None:
        while not self._stop.is_set():
            try:
                first = self.q.get(timeout=0.2)
            except queue.Empty:
                with self._idle:
                    self._idle.notify_all()
                continue
            items = [first]
            while len(items) < BATCH:
                try:
                    items.append(self.q.get_nowait())
                except queue.Empty:
                    break
            if self.process(items):  # stored (or counted as rejected): now the broker may forget them
                self._ack([(mid, qos) for *_m, mid, qos in items])
            if self.q.empty():
                with self._idle:
                    self._idle.notify_all()

    def process(self, items: list[tuple]) -> dict:
        """Decode and store one batch of (topic, payload, rx time[, mid, qos]) (the writer thread, tests,
        benches). Returns the change, or {} when nothing was stored (stopping): not to be acknowledged."""
        batch, rejects = [], []
        for topic, payload, rx, *_ack in items:
            try:
                batch.append((decode(topic, payload), rx, topic))
            except Reject as e:
                rejects.append((e.reason, topic, rx))
            except Exception as e:  # a decoder bug must not stop ingest: count it
                rejects.append(("decoder_error", topic, rx))
                self.last_error = f"{type(e).__name__}: {e}"
        ch = self._store(batch, rejects)
        if ch is None:
            return {}
        self.stats["received"] += len(items)
        self.stats["rejected"] += len(rejects)
        self.stats["stored"] += ch["stored"]
        self.stats["dupes"] += ch["dupes"]
        self.stats["batches"] += 1
        if self.on_change:
            try:
                self.on_change(ch)
            except Exception as e:
                self.last_error = f"on_change: {e}"
        return ch

    def _store(self, batch: list, rejects: list) -> dict | None:
        """Store a batch; never drop it. A busy database is retried (back-pressure to the broker); a
        message the store cannot take (a bug) is counted as `store_error` alone, the rest still stored."""
        delay = 0.05
        while True:
            try:
                return self.store.apply(batch, rejects)
            except sqlite3.OperationalError as e:  # locked/busy beyond the timeout: wait and retry
                self.stats["errors"] += 1
                self.last_error = f"store busy: {e}"
                if self._stop.wait(delay):
                    return None
                delay = min(delay * 2, 2.0)
            except Exception as e:
                self.last_error = f"store: {type(e).__name__}: {e}"
                break
        if len(batch) <= 1:
            self.stats["store_errors"] = self.stats.get("store_errors", 0) + 1
            rec_topic = batch[0][2] if batch else ""
            try:
                return self.store.apply([], rejects + [("store_error", rec_topic, time.time())])
            except Exception:
                self.stats["errors"] += 1
                return None
        merged: dict | None = None
        for i, one in enumerate(batch):  # isolate the poison message
            ch = self._store([one], rejects if i == 0 else [])
            if ch and merged is None:
                merged = ch
            elif ch and merged is not None:
                for k, v in ch.items():
                    if isinstance(v, set):
                        merged[k] |= v
                    elif isinstance(v, list):
                        merged[k] += v
                    elif isinstance(v, bool):
                        merged[k] = merged[k] or v
                    else:
                        merged[k] += v
        return merged

    def wait_idle(self, received: int, timeout: float = 10.0) -> bool:
        """Wait until at least `received` messages have been processed (tests, benches)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self.stats["received"] < received:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.2))
        return True
