"""Send a signed command to a device and wait for its ack (docs/topics.md)."""
from __future__ import annotations

import json
import time

import paho.mqtt.client as mqtt

from host_tools.fleet.connect import BrokerError, Subscription
from host_tools.keys import Keyring
from roadedge import wire


class NoAck(TimeoutError):
    pass


def send_command(client: mqtt.Client, keyring: Keyring, dev: str, cmd: str, args: dict | None = None,
                 timeout: float = 15.0, ttl_s: int = 30) -> dict:
    """Publish re/<dev>/cmd/<cmd> signed with the device's key; return the device's ack object."""
    sub = Subscription(client, [wire.topic(dev, wire.ACK)])
    payload = keyring.signer(dev).sign(cmd, args or {}, ttl_s=ttl_s)
    ctr = json.loads(json.loads(payload)["body"])["ctr"]
    info = client.publish(wire.cmd_topic(dev, cmd), payload, qos=1)
    try:
        info.wait_for_publish(timeout)
    except (RuntimeError, ValueError) as e:
        raise BrokerError(f"could not publish the command: {e}") from None
    deadline = time.monotonic() + timeout
    while True:
        m = sub.get(deadline - time.monotonic())
        if m is None:
            raise NoAck(f"no ack from {dev} for {cmd} within {timeout:.0f}s (offline? wrong key? "
                        f"check `roadedge logs {dev}`)")
        _topic, raw, _retained = m
        try:
            ack = json.loads(raw)
        except ValueError:
            continue
        # a rejected command (bad_mac, replay...) is acked with ctr null: still the answer to ours
        if ack.get("cmd") == cmd and (ack.get("ctr") == ctr or (ack.get("ctr") is None and not ack.get("ok"))):
            return ack
