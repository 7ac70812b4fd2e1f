"""roadedge.mqtt.client under the real micropython binary (and CPython where cheap),
against a real Mosquitto and against fake brokers that misbehave on purpose.

The device side is tests/mqtt_driver/driver.py: it runs the client next to a
heartbeat task and reports events on stdout (see its header).
"""
from __future__ import annotations

import asyncio
import json
import queue
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from host_tools import fw
from host_tools.broker.mosquitto import Mosquitto, free_port

fw.ensure_firmware_importable()
from roadedge.mqtt import packet as pk  # noqa: E402
from roadedge.mqtt import packet_server as ps  # noqa: E402

pytest_plugins = ["mqtt_driver.harness"]  # fixtures: mpy_lib, devices



def client_cfg(port: int, **kw) -> dict:
    c = {"client_id": "dev1", "host": "127.0.0.1", "port": port, "keepalive": 4,
         "backoff_ms": [50, 500]}
    c.update(kw)
    return c


def paho_client(port: int, cid: str, user=None, password=None, clean=True) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, clean_session=clean)
    if user:
        c.username_pw_set(user, password)
    c.connect("127.0.0.1", port, 30)
    c.loop_start()
    return c


# --- real Mosquitto ----------------------------------------------------------

@pytest.mark.parametrize("runtime", fw.RUNTIMES)
def test_credentials_birth_will_commands_and_resubscribe(runtime, tmp_path, collector_factory, devices):
    ka = 10  # the will must come within 1.5 x ka; generous so a loaded CI box does not flake
    with Mosquitto(tmp_path / "mq", users={"dev1": "dev1-secret", "ops": "ops-secret"}) as broker:
        # wrong password: refused by the broker, counted, no crash
        bad = devices(runtime, {"client": client_cfg(broker.port, user="dev1", password="nope"),
                                 "stats_every_ms": 200}, tmp_path, "bad")
        bad.wait(lambda: bad.last_stats().get("refused_connack", 0) >= 1 or None, what="refused CONNACK")
        bad.stop()

        ops = collector_factory(broker.port, ["re/dev1/#"], username="ops", password="ops-secret")
        cfg = {"client": client_cfg(broker.port, user="dev1", password="dev1-secret", keepalive=ka,
                                    birth=["re/dev1/status", "online", 1, True],
                                    will=["re/dev1/status", "offline", 1, True]),
               "subscribe": [["re/dev1/cmd/#", 1]]}
        dev = devices(runtime, cfg, tmp_path)
        ops.wait_for(lambda t, p, r, q: t == "re/dev1/status" and p == b"online")
        dev.wait_line("up ")
        sender = paho_client(broker.port, "ops-send", "ops", "ops-secret")
        try:
            # QoS 1 command reaches the device; after a broker restart the
            # subscription is renewed without any help from the device code.
            def command_arrives(n: int, body: str) -> None:
                def pred():
                    return any(ln == f"msg re/dev1/cmd/ping {body} 0" for ln in dev.lines) or None
                deadline = time.monotonic() + 20
                while True:
                    sender.publish("re/dev1/cmd/ping", body, qos=1).wait_for_publish(5)
                    try:
                        dev.wait(pred, timeout=1.0, what=f"command {body}")
                        return
                    except TimeoutError:
                        if time.monotonic() > deadline:
                            raise
            command_arrives(1, "hello-1")
            broker.restart()
            dev.wait_line("up ", count=2)
            sender.reconnect()
            command_arrives(2, "hello-2")
        finally:
            sender.loop_stop()
            sender.disconnect()
        ops.wait_for(lambda t, p, r, q: t == "re/dev1/status" and p == b"online")  # birth again

        dev.proc.kill()  # kill -9: no DISCONNECT, the broker must publish the will
        ops.wait_for(lambda t, p, r, q: t == "re/dev1/status" and p == b"offline", timeout=1.5 * ka)
        late = collector_factory(broker.port, ["re/dev1/status"], username="ops", password="ops-secret")
        t, p, retained, _q = late.get(timeout=5)
        assert (t, p, retained) == ("re/dev1/status", b"offline", True)
        dev.assert_no_traceback()


def test_persistent_session_gets_commands_sent_while_offline(tmp_path, mosquitto, devices):
    """clean=False: the broker keeps the subscription and queues QoS 1 commands
    for the device while it is off; they arrive after it comes back."""
    cfg = {"client": client_cfg(mosquitto.port, client_id="dev-p", clean=False),
           "subscribe": [["re/dev-p/cmd/#", 1]]}
    dev = devices("micropython", cfg, tmp_path, "p1")
    dev.wait(lambda: dev.last_stats().get("connects") == 1 or None, what="connected")
    dev.wait_line("up ")
    # wait until the SUBSCRIBE is in: a probe command arrives
    sender = paho_client(mosquitto.port, "ops-send")
    try:
        deadline = time.monotonic() + 20
        while not any(ln.startswith("msg re/dev-p/cmd/probe") for ln in dev.lines):
            assert time.monotonic() < deadline, dev.lines[-20:]
            sender.publish("re/dev-p/cmd/probe", "p", qos=1).wait_for_publish(5)
            try:
                dev.wait_line("msg re/dev-p/cmd/probe", timeout=0.5)
            except TimeoutError:
                pass
        dev.stop()  # power cut
        sender.publish("re/dev-p/cmd/set", "while-offline", qos=1).wait_for_publish(5)
        dev2 = devices("micropython", {"client": cfg["client"]}, tmp_path, "p2")  # no subscribe call
        assert dev2.wait_line("up ") == "up True"  # session present
        dev2.wait_line("msg re/dev-p/cmd/set while-offline 0")
        dev2.assert_no_traceback()
    finally:
        sender.loop_stop()
        sender.disconnect()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> Path:
    """A throw-away CA and a server certificate for localhost (openssl CLI)."""
    d = tmp_path_factory.mktemp("tls")

    def ossl(*a: str) -> None:
        subprocess.run(["openssl", *a], cwd=d, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ossl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=roadedge test CA")
    ossl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    ossl("x509", "-in", "ca.pem", "-outform", "DER", "-out", "ca.der")
    ossl("req", "-x509", *ec, "-keyout", "other.key", "-out", "other.der", "-outform", "DER", "-days", "2",
         "-subj", "/CN=some other CA")
    return d


@pytest.mark.parametrize("runtime", fw.RUNTIMES)
def test_tls_with_der_ca_publish_and_receive_large(runtime, tmp_path, tls_files, devices, collector_factory):
    tls_port = free_port()
    conf = (f"listener {tls_port} 127.0.0.1\ncafile {tls_files}/ca.pem\n"
            f"certfile {tls_files}/server.pem\nkeyfile {tls_files}/server.key\n")
    with Mosquitto(tmp_path / "mq", extra_conf=conf) as broker:
        col = collector_factory(broker.port, ["re/dev1/seq"])
        cfg = {"client": client_cfg(tls_port, tls=True, ca=str(tls_files / "ca.der"), server_hostname="localhost"),
               "subscribe": [["re/dev1/cmd/#", 1]],
               "publish": {"topic": "re/dev1/seq", "count": 20, "qos": 1, "size": 600, "verbose": False}}
        dev = devices(runtime, cfg, tmp_path)
        dev.wait_line("done", timeout=30)
        got = set()
        while len(got) < 20:
            got.add(json.loads(col.get(timeout=10)[1])["seq"])
        # A message bigger than the client's read chunk, in several TLS records' worth.
        sender = paho_client(broker.port, "ops-send")
        try:
            big = "b" * 3000
            sender.publish("re/dev1/cmd/big", big, qos=1).wait_for_publish(5)
            dev.wait(lambda: any(ln == f"msg re/dev1/cmd/big {big} 0" for ln in dev.lines) or None,
                     timeout=20, what="big message over TLS")
        finally:
            sender.loop_stop()
            sender.disconnect()
        # A CA that did not sign the server: the handshake fails, counted, retried, no crash.
        bad = devices(runtime, {"client": client_cfg(tls_port, client_id="dev2", tls=True,
                                                     ca=str(tls_files / "other.der"),
                                                     server_hostname="localhost"),
                                "stats_every_ms": 200}, tmp_path, "bad")
        bad.wait(lambda: bad.last_stats().get("conn_fail", 0) >= 2 or None, what="TLS failures counted")
        assert bad.last_stats()["connects"] == 0 and bad.proc.poll() is None
        dev.assert_no_traceback()


def test_soak_broker_restarts_every_message_arrives_in_order(tmp_path, devices):
    """Acceptance: 10 broker restarts while the MicroPython client publishes
    2,000 QoS 1 messages; all arrive, in order after dedupe, and the device's
    heartbeat task keeps running during every outage."""
    total, restarts = 2000, 10
    db = tmp_path / "db"
    db.mkdir()
    # Persistence so the subscriber's queued messages survive each restart
    # (SIGTERM makes Mosquitto save them); the device's own backlog is the
    # client's job.
    broker = Mosquitto(tmp_path / "mq", extra_conf=f"persistence true\npersistence_location {db}/\n").start()
    seqs: list[int] = []
    sub_ok = threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="soak-sub", clean_session=False)
    sub.reconnect_delay_set(0.05, 0.5)
    sub.on_connect = lambda c, u, f, rc, p=None: c.subscribe("re/soak/seq", 1)
    sub.on_subscribe = lambda *a: sub_ok.set()
    sub.on_message = lambda c, u, m: seqs.append(json.loads(m.payload)["seq"])
    sub.connect("127.0.0.1", broker.port, 10)
    sub.loop_start()
    try:
        assert sub_ok.wait(10)
        cfg = {"client": client_cfg(broker.port, client_id="soak", keepalive=5, queue_size=64,
                                    backoff_ms=[100, 1000]),
               "publish": {"topic": "re/soak/seq", "count": total, "qos": 1, "interval_ms": 3,
                           "wait_space": True, "verbose": False},
               "exit_when_done": True, "heartbeat_ms": 50}
        dev = devices("micropython", cfg, tmp_path, "soak")
        dev.wait_line("up ", timeout=20)
        outage_beats = []
        step = total * 8 // 10 // restarts
        for i in range(1, restarts + 1):
            deadline = time.monotonic() + 60
            while len(set(seqs)) < i * step:
                assert time.monotonic() < deadline, f"stalled at {len(set(seqs))} before restart {i}"
                time.sleep(0.02)
            broker.stop()
            before = dev.heartbeats
            dev.wait_line("down ", count=i, timeout=20)  # the client noticed the outage
            # ... and the device's other task kept ticking while the broker was gone.
            dev.wait(lambda b=before: dev.heartbeats >= b + 3 or None, timeout=20, what="heartbeats in outage")
            outage_beats.append(dev.heartbeats - before)
            broker.start()
        dev.wait_line("done", timeout=180)
        deadline = time.monotonic() + 60
        while len(set(seqs)) < total and time.monotonic() < deadline:
            time.sleep(0.05)
        st = json.loads(dev.wait_line("stats ", count=1 + sum(1 for ln in dev.lines if ln.startswith("stats ")))[6:])
    finally:
        sub.loop_stop()
        broker.stop()
    print("soak:", len(seqs), "received,", len(set(seqs)), "unique; heartbeats per outage", outage_beats, "; device stats", st)
    first_seen = list(dict.fromkeys(seqs))
    assert first_seen == list(range(1, total + 1)), (
        f"missing {sorted(set(range(1, total + 1)) - set(seqs))[:20]}, out of order at "
        f"{next((i for i, s in enumerate(first_seen) if s != i + 1), None)}")
    assert len(outage_beats) == restarts and all(b > 0 for b in outage_beats)
    assert st["connects"] >= restarts + 1 and st["dropped"] == 0 and st["acked"] >= total
    dev.assert_no_traceback()


# --- fake brokers --------------------------------------------------------------

class FakeBroker:
    """An asyncio MQTT server in a thread; connection n is served by scenarios[n]
    (the last one repeats). Each scenario is `async fn(broker, reader, writer)`."""

    def __init__(self, scenarios) -> None:
        self.scenarios = scenarios
        self.port = free_port()
        self.conns = 0
        self.published: list[tuple[bytes, int, bool, int]] = []  # (payload, qos, dup, pid)
        self.events: queue.Queue[str] = queue.Queue()
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.t = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.t.start()
        assert self.ready.wait(10)

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stop_ev = asyncio.Event()
        srv = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.ready.set()
        async with srv:
            await self.stop_ev.wait()

    async def _serve(self, reader, writer) -> None:
        n = self.conns
        self.conns += 1
        fn = self.scenarios[min(n, len(self.scenarios) - 1)]
        try:
            kind, _f, body = await read_packet(reader)
            assert kind == ps.CONNECT
            ps.parse_connect(body)
            await fn(self, reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        if self.loop:
            self.loop.call_soon_threadsafe(self.stop_ev.set)
        self.t.join(5)


async def read_packet(reader):
    dec = ps.Decoder(1 << 16)
    while not dec.ready:
        b = await reader.readexactly(1)
        dec.feed(b)
    return dec.kind, dec.flags, bytes(dec.body)


async def serve_well(b: FakeBroker, reader, writer, ack=True) -> None:
    """A correct broker: CONNACK, then PUBACK (optionally), SUBACK, PINGRESP."""
    writer.write(ps.encode_connack(False, 0))
    await writer.drain()
    while True:
        kind, flags, body = await read_packet(reader)
        if kind == ps.PUBLISH:
            _t, payload, qos, _r, dup, pid = pk.parse(ps.PUBLISH, flags, body)
            b.published.append((bytes(payload), qos, dup, pid))
            b.events.put("publish")
            if qos and ack:
                writer.write(ps.encode_pid(ps.PUBACK, pid))
        elif kind == ps.SUBSCRIBE:
            pid, subs = ps.parse_subscribe(body)
            writer.write(ps.encode_suback(pid, [q for _t, q in subs]))
        elif kind == ps.PINGREQ:
            writer.write(ps.PINGRESP_BYTES)
        elif kind == ps.DISCONNECT:
            return
        await writer.drain()


def send_then_hold(data: bytes, close: bool = False):
    async def fn(b, reader, writer):
        writer.write(data)
        await writer.drain()
        if close:
            return
        await reader.read()  # until the client gives up and closes
    return fn


def connack_then(data: bytes):
    return send_then_hold(ps.encode_connack(False, 0) + data)


async def silent(b, reader, writer):
    """CONNACK, then swallow everything and never answer (a dead link)."""
    writer.write(ps.encode_connack(False, 0))
    await writer.drain()
    b.events.put("silent")
    while await reader.read(1024):
        pass


GOOD = serve_well
MALFORMED = [
    send_then_hold(b"\xff\xff\xff\xff\xff"),                      # garbage: reserved type 15
    send_then_hold(b"\x20\x03\x00\x00\x00"),                      # CONNACK with length 3
    send_then_hold(ps.encode_suback(1, [0])),                     # not a CONNACK first
    send_then_hold(b"\x20\x02\x00", close=True),                  # truncated CONNACK, then EOF
    connack_then(b"\x30\xff\xff\xff\xff\x01"),                   # remaining length over 4 bytes
    connack_then(b"\x30\xa0\x8d\x06" + b"\x00" * 64),            # oversized: 100000 > max_packet
    connack_then(b"\x30\x05\x00\x09abc"),                         # PUBLISH topic past the end
    connack_then(b"\x32\x05\x00\x03a/#"),                         # QoS 1 wildcard topic, no pid
]


@pytest.mark.parametrize("runtime", fw.RUNTIMES)
def test_fake_broker_malformed_packets_drop_and_reconnect(runtime, tmp_path, devices):
    fake = FakeBroker(MALFORMED + [silent, GOOD])
    try:
        cfg = {"client": client_cfg(fake.port, keepalive=2, backoff_ms=[20, 100], max_packet=1024),
               "publish": {"topic": "re/dev1/seq", "count": 5, "qos": 1, "verbose": False},
               "exit_when_done": True}
        dev = devices(runtime, cfg, tmp_path)
        dev.wait_line("done", timeout=60)
        dev.wait_line("exit", timeout=20)
        st = dev.last_stats()
        assert st["malformed"] == len(MALFORMED)
        # the silent broker was detected by the read deadline, not counted as malformed
        assert any(ln.startswith("down broker silent") for ln in dev.lines)
        seqs = [json.loads(p)["seq"] for p, q, _d, _pid in fake.published if q == 1]
        assert list(dict.fromkeys(seqs)) == [1, 2, 3, 4, 5]
        assert dev.proc.wait(10) == 0
        dev.assert_no_traceback()
    finally:
        fake.close()


@pytest.mark.parametrize("runtime", fw.RUNTIMES)
def test_online_is_announced_only_behind_the_subscriptions(runtime, tmp_path, devices):
    """Whoever sees "online" may command the device at once (a technician's
    selftest, the controller's re-command): on every connection the client's
    SUBSCRIBEs reach the broker before its birth message, and a broker takes
    one client's packets in order."""
    async def record(b, reader, writer):
        writer.write(ps.encode_connack(False, 0))
        await writer.drain()
        while True:
            kind, flags, body = await read_packet(reader)
            if kind == ps.SUBSCRIBE:
                pid, subs = ps.parse_subscribe(body)
                b.events.put(("sub", b.conns, subs[0][0]))
                writer.write(ps.encode_suback(pid, [q for _t, q in subs]))
            elif kind == ps.PUBLISH:
                topic, payload, qos, _r, _dup, pid = pk.parse(ps.PUBLISH, flags, body)
                b.events.put(("pub", b.conns, topic))
                if qos:
                    writer.write(ps.encode_pid(ps.PUBACK, pid))
                if payload == b"online" and b.conns == 1:
                    return  # drop the first session: the second must keep the order too
            elif kind == ps.PINGREQ:
                writer.write(ps.PINGRESP_BYTES)
            await writer.drain()

    fake = FakeBroker([record])
    try:
        cfg = {"client": client_cfg(fake.port, keepalive=10, backoff_ms=[20, 100],
                                    birth=["re/dev1/status", "online", 1, True]),
               "subscribe": [["re/dev1/cmd/#", 1], ["re/sys/time", 1]]}
        dev = devices(runtime, cfg, tmp_path)
        seen: list = []
        while sum(1 for e in seen if e[0] == "pub" and e[2] == "re/dev1/status") < 2:
            seen.append(fake.events.get(timeout=30))
        for conn in (1, 2):
            mine = [e for e in seen if e[1] == conn]
            birth = mine.index(("pub", conn, "re/dev1/status"))
            assert {e[2] for e in mine[:birth] if e[0] == "sub"} == {"re/dev1/cmd/#", "re/sys/time"}, mine
        dev.stop()
        dev.assert_no_traceback()
    finally:
        fake.close()


@pytest.mark.parametrize("runtime", fw.RUNTIMES)
def test_qos1_dup_retransmit_and_in_order_resend_after_reconnect(runtime, tmp_path, devices):
    async def no_ack_then_drop(b, reader, writer):
        writer.write(ps.encode_connack(False, 0))
        await writer.drain()
        seen = 0
        while True:
            kind, flags, body = await read_packet(reader)
            if kind == ps.PUBLISH:
                _t, payload, qos, _r, dup, pid = pk.parse(ps.PUBLISH, flags, body)
                b.published.append((bytes(payload), qos, dup, pid))
                seen += 1
                if dup:  # the timeout retransmission came: drop the link
                    return
            elif kind == ps.PINGREQ:
                writer.write(ps.PINGRESP_BYTES)
                await writer.drain()

    fake = FakeBroker([no_ack_then_drop, GOOD])
    try:
        cfg = {"client": client_cfg(fake.port, keepalive=10, window=3, ack_timeout_ms=300,
                                    backoff_ms=[20, 100]),
               "publish": {"topic": "re/dev1/seq", "count": 6, "qos": 1, "verbose": False},
               "exit_when_done": True}
        dev = devices(runtime, cfg, tmp_path)
        dev.wait_line("done", timeout=30)
        pubs = [(json.loads(p)["seq"], dup, pid) for p, q, dup, pid in fake.published]
        first = [x for x in pubs if not x[1]]
        # window of 3: only seq 1..3 went out before any PUBACK
        assert [s for s, _d, _p in first[:3]] == [1, 2, 3]
        dups = [x for x in pubs if x[1]]
        assert dups and dups[0][0] == 1 and dups[0][2] == first[0][2]  # same packet id, DUP set
        # after reconnect: unacked ones resent first, in order, then the rest
        after = pubs[pubs.index(dups[0]) + 1:]
        assert [s for s, _d, _p in after][:3] == [1, 2, 3] and all(d for _s, d, _p in after[:3])
        assert list(dict.fromkeys(s for s, _d, _p in pubs)) == [1, 2, 3, 4, 5, 6]
        dev.wait_line("exit", timeout=20)
        assert dev.last_stats()["retransmits"] >= 4
        dev.assert_no_traceback()
    finally:
        fake.close()


def test_link_gate_drops_the_session_and_waits_for_the_link(mosquitto, collector_factory):
    """set_link(False) (the device app saw its radio go down): the session is
    dropped at once (the broker sends the will), no connection is tried while
    the link is down, what is published meanwhile is kept and goes out after
    set_link(True)."""
    from roadedge.mqtt.client import MQTTClient

    col = collector_factory(mosquitto.port, ["re/gate/#"])

    async def scenario():
        c = MQTTClient("gate", "127.0.0.1", mosquitto.port, keepalive=30, backoff_ms=(20, 100),
                       will=("re/gate/status", b"offline", 1, True), birth=("re/gate/status", b"online", 1, True))
        task = asyncio.create_task(c.run())
        try:
            assert await c.wait_connected(10000)
            await asyncio.to_thread(col.wait_for, lambda t, pl, r, q: pl == b"online", 10)
            c.set_link(False)
            await asyncio.to_thread(col.wait_for, lambda t, pl, r, q: pl == b"offline", 10)
            assert not c.is_connected()
            assert c.publish("re/gate/data", b"while down", 1)
            connects = c.stats["connects"]
            assert not await c.wait_connected(1000)  # 50 backoff periods: it did not retry
            assert c.stats["connects"] == connects and c.stats["conn_fail"] == 0
            c.set_link(True)
            assert await c.wait_connected(10000)
            t, pl, _r, _q = await asyncio.to_thread(col.wait_for, lambda t, pl, r, q: t == "re/gate/data", 10)
            assert pl == b"while down"
            assert c.stats["link_down"] == 1 and c.stats["disconnects"] == 1
        finally:
            c.close()
            await asyncio.wait_for(task, 10)

    asyncio.run(scenario())


@pytest.mark.parametrize("heap, fragment, restarts", [("56K", 0, ()), ("96K", 120, (100, 250))],
                         ids=["heap-below-need", "fragmented"])
def test_memory_pressure_delivers_every_qos1_sheds_only_qos0_and_reconnects(heap, fragment, restarts, tmp_path,
                                                                            devices):
    """Acceptance (issue 18), under micropython in the device configuration
    (queue 16, window 4, max_packet 2560): a small heap (56K), or one cut into
    small holes on purpose once connected, plus two broker restarts that force
    the reconnect path through that heap. Every QoS 1 message arrives; what is
    lost is only QoS 0 and counted; the client is back online after each
    restart, or, if the heap cannot carry a reconnect, says wedged (the
    device's watchdog then resets it: test_device_runtime).
    (The client now takes its memory up front and needs no large block to
    reconnect: at 56K it no longer hits a MemoryError, and at the real edge,
    46-47K depending on the process, what fails first is the producer's own
    payload or the client's construction, not the session: measured, not
    asserted here, as that edge moves by a KB between runs.)"""
    total = 400
    db = tmp_path / "db"
    db.mkdir()
    broker = Mosquitto(tmp_path / "mq", extra_conf=f"persistence true\npersistence_location {db}/\n").start()
    seqs: list[int] = []
    tele: list[int] = []
    sub_ok = threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="mem-sub", clean_session=False)
    sub.reconnect_delay_set(0.05, 0.5)
    sub.on_connect = lambda c, u, f, rc, p=None: c.subscribe("re/mem/#", 1)
    sub.on_subscribe = lambda *a: sub_ok.set()
    sub.on_message = lambda c, u, m: (tele if m.topic.endswith("/tele") else seqs).append(
        json.loads(m.payload).get("seq", json.loads(m.payload).get("tele")))
    sub.connect("127.0.0.1", broker.port, 10)
    sub.loop_start()
    try:
        assert sub_ok.wait(10)
        cfg = {"client": client_cfg(broker.port, client_id="mem", keepalive=4, queue_size=16, window=4,
                                    max_packet=2560, backoff_ms=[100, 1000]),
               "publish": {"topic": "re/mem/seq", "count": total, "qos": 1, "interval_ms": 5, "qos0_every": 4,
                           "size": 40, "fragment": fragment, "verbose": False},
               # stats also between connects: a client failing every connect
               # (conn_fail, no callback) must still be seen, wedged or not
               "exit_when_done": True, "heartbeat_ms": 50, "stats_every_ms": 500}
        dev = devices("micropython", cfg, tmp_path, "mem", heap=heap)
        dev.wait_line("up ", timeout=20)
        wedged = None
        for i, at in enumerate(restarts, 1):
            deadline = time.monotonic() + 60
            while len(set(seqs)) < at and not dev.last_stats().get("wedged"):
                assert time.monotonic() < deadline, f"stalled at {len(set(seqs))}: {dev.last_stats()}"
                time.sleep(0.02)
            if dev.last_stats().get("wedged"):
                break
            broker.restart()
            ups = 1 + i + sum(ln == "down MemoryError" for ln in dev.lines)
            dev.wait(lambda ups=ups: sum(ln.startswith("up ") for ln in dev.lines) >= ups
                     or dev.last_stats().get("wedged"), timeout=30, what=f"{ups}x 'up' or wedged")
        dev.wait(lambda: any(ln == "done" for ln in dev.lines) or dev.last_stats().get("wedged"), timeout=120,
                 what="done or wedged")
        st = dev.last_stats()
        if st["wedged"]:
            wedged = st
        deadline = time.monotonic() + 30
        while not wedged and len(set(seqs)) < total and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sub.loop_stop()
        broker.stop()
    print(heap, fragment, "device stats", st, "QoS 0 received", len(set(tele)))
    if wedged:
        # The heap cannot carry even a reconnect any more: the client says so
        # (bounded: OOM_WEDGED MemoryErrors in a row) and the device app turns
        # unhealthy, so its watchdog resets the board (test_device_runtime).
        # Until then it dropped no QoS 1: every one is acked, in flight or queued.
        assert wedged["mem_errors"] >= 5
        assert wedged["acked"] + total - wedged["published"] + wedged["shed"] + wedged["refused"] >= total
        assert sorted(set(seqs)) == list(range(1, len(set(seqs)) + 1))
        return
    assert sorted(set(seqs)) == list(range(1, total + 1))  # nothing acknowledged was lost
    assert st["acked"] >= total
    assert st["connects"] >= 1 + len(restarts) + st["mem_errors"] // 2  # back online after each drop
    # QoS 0 is all that may go missing, each counted: shed under memory
    # pressure, refused by a full queue (the QoS 0 producer does not wait), or
    # on the wire when a session dropped (as QoS 0 promises no more)
    assert len(set(tele)) + st["shed"] + st["refused"] + st["disconnects"] >= total // 4
    if st["shed"]:
        assert st["mem_errors"] >= 2  # shedding only after repeated MemoryErrors
