"""One recorded MQTT message per line of JSON.

`{"t": <unix s, float>, "topic": str, "qos": 0|1|2, "retain": bool, "payload": <UTF-8 text>}`
or, when the payload is not valid UTF-8, `"payload_b64": <base64>` instead of `"payload"`.
"""
from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO


@dataclass(frozen=True)
class Recorded:
    t: float
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


class BadLine(ValueError):
    pass


def encode(m: Recorded) -> str:
    d: dict = {"t": round(m.t, 6), "topic": m.topic, "qos": m.qos, "retain": m.retain}
    try:
        d["payload"] = m.payload.decode("utf-8")
    except UnicodeDecodeError:
        d["payload_b64"] = base64.b64encode(m.payload).decode("ascii")
    return json.dumps(d, ensure_ascii=False, separators=(",", ":"))


def decode(line: str) -> Recorded:
    try:
        d = json.loads(line)
        if "payload_b64" in d:
            payload = base64.b64decode(d["payload_b64"], validate=True)
        else:
            payload = d["payload"].encode("utf-8")
        qos = int(d.get("qos", 0))
        if qos not in (0, 1, 2) or not isinstance(d["topic"], str):
            raise ValueError("bad qos or topic")
        return Recorded(float(d["t"]), d["topic"], payload, qos, bool(d.get("retain", False)))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise BadLine(f"not a recorded message: {e}") from None


def read(path: str | Path) -> Iterator[Recorded]:
    """Yield the messages of a recording; a bad line raises BadLine naming its number."""
    with open(path, encoding="utf-8") as f:
        yield from read_stream(f)


def read_stream(f: IO[str]) -> Iterator[Recorded]:
    for n, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            yield decode(line)
        except BadLine as e:
            raise BadLine(f"line {n}: {e}") from None
