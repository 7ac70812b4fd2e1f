"""Record a live session, replay it to a fresh broker: the stream matches message for message."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import paho.mqtt.client as mqtt
import pytest

from host_tools.broker.mosquitto import Mosquitto
from host_tools.recording import fileformat
from host_tools.recording.fileformat import BadLine, Recorded
from host_tools.recording.player import replay
from host_tools.recording.recorder import Recorder

SESSION = [
    ("re/trk-01/status", b"online", 1, True),
    ("owntracks/roadedge/trk-01", json.dumps({"_type": "location", "lat": 31.2, "lon": 121.5, "tst": 1, "seq": 1}).encode(), 1, False),
    ("re/vsl-1/state", json.dumps({"limit": 60, "source": "central"}).encode(), 1, True),
    ("re/trk-01/tele", b"\x00\xff\xfe binary \x80", 0, False),
    ("re/bcn-3/tele", "{\"vis\": 150, \"note\": \"雾\"}".encode(), 0, False),
    ("owntracks/roadedge/trk-01", json.dumps({"_type": "location", "lat": 31.21, "lon": 121.5, "tst": 2, "seq": 2}).encode(), 1, False),
]


def test_line_format_round_trips_text_and_binary():
    for topic, payload, qos, retain in SESSION:
        m = Recorded(12.5, topic, payload, qos, retain)
        assert fileformat.decode(fileformat.encode(m)) == m
    assert "payload_b64" in fileformat.encode(Recorded(1, "t", b"\xff"))
    with pytest.raises(BadLine):
        fileformat.decode('{"t": 1, "topic": "x"}')
    with pytest.raises(BadLine, match="line 2"):
        list(fileformat.read_stream(io.StringIO(fileformat.encode(Recorded(1, "t", b"x")) + "\nnot json\n")))


def test_replay_keeps_timing_scaled_by_speed():
    msgs = [Recorded(100.0, "a", b"1"), Recorded(102.0, "b", b"2"), Recorded(106.0, "c", b"3")]
    now = [0.0]
    at: list[tuple[str, float]] = []

    def sleep(s):
        now[0] += s

    replay(msgs, lambda m: at.append((m.topic, now[0])), speed=2.0, clock=lambda: now[0], sleep=sleep)
    assert at == [("a", 0.0), ("b", 1.0), ("c", 3.0)]


def _publish_session(port: int) -> None:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="session-pub")
    c.connect("127.0.0.1", port)
    c.loop_start()
    infos = [c.publish(t, p, qos=q, retain=r) for t, p, q, r in SESSION]
    for i in infos:
        i.wait_for_publish(10)
    c.disconnect()
    c.loop_stop()


def test_record_then_replay_matches_message_for_message(mosquitto, collector_factory, tmp_path):
    out = tmp_path / "session.jsonl"
    with open(out, "w") as f:
        rec = Recorder(mosquitto.url, f).start()
        _publish_session(mosquitto.port)
        assert rec.wait_count(len(SESSION))
        rec.stop()
    recorded = list(fileformat.read(out))
    assert [(m.topic, m.payload, m.qos, m.retain) for m in recorded] == SESSION

    # Replay through the real CLI to a fresh broker and compare what a subscriber receives.
    with Mosquitto(tmp_path / "second") as fresh:
        col = collector_factory(fresh.port, "#", qos=2)
        r = subprocess.run([sys.executable, "-m", "host_tools.cli", "replay", str(out), "--broker", fresh.url,
                            "--speed", "20"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        got = [col.get() for _ in SESSION]
        # A live subscriber sees retain=0 on forwarded messages; the retained ones are kept by the broker:
        assert [(t, p, q) for t, p, _r, q in got] == [(t, p, q) for t, p, q, _r in SESSION]
        late = collector_factory(fresh.port, "#")
        retained = {late.get()[0] for _ in range(sum(r for *_x, r in SESSION))}
        assert retained == {t for t, _p, _q, r in SESSION if r}


def test_record_cli_records_until_stopped(mosquitto, tmp_path):
    import signal

    out = tmp_path / "cli.jsonl"
    p = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "record", "--broker", mosquitto.url, "--out",
                          str(out)], stderr=subprocess.PIPE, text=True)
    try:
        assert p.stderr is not None and "recording" in p.stderr.readline()  # printed once subscribed
        _publish_session(mosquitto.port)
        deadline = time.monotonic() + 20
        while len(out.read_text().splitlines()) < len(SESSION):  # the CLI flushes every second
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.1)
    finally:
        p.send_signal(signal.SIGTERM)
        _o, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert [(m.topic, m.payload, m.qos, m.retain) for m in fileformat.read(out)] == SESSION
