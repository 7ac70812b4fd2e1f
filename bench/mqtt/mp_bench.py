# Device side of bench/mqtt/run.py: runs under micropython (or CPython) and
# prints one JSON line. Usage:
#   mp_bench.py HOST PORT QOS COUNT SIZE CONF   publish rate, heap, event-loop stall;
#       CONF "bench" (queue 32, window 8, max_packet 4096) or "device" (the
#       device defaults: queue 16, window 4, max_packet 2560); every message
#       its own payload object, as a device's telemetry is
#   mp_bench.py HOST PORT detect KEEPALIVE  time to notice a broker gone silent
import sys
import gc
import json
import asyncio

from roadedge.core.compat import ticks_ms, ticks_diff, sleep_ms, mem_alloc

gc.collect()
a0 = mem_alloc()
import roadedge.mqtt.packet  # noqa: E402,F401

gc.collect()
ap = mem_alloc()
from roadedge.mqtt.client import MQTTClient  # noqa: E402

gc.collect()
a1 = mem_alloc()


CONF = {"bench": (32, 8, 4096), "device": (16, 4, 2560)}


async def main(host, port, qos, count, size, conf):
    q, w, mp = CONF[conf]
    c = MQTTClient("bench", host, port=port, keepalive=30, queue_size=q, window=w, max_packet=mp)
    gap = [0]

    async def heartbeat():
        # the device's other task: a 10 ms tick; records the worst delay
        last = ticks_ms()
        while True:
            await sleep_ms(10)
            now = ticks_ms()
            gap[0] = max(gap[0], ticks_diff(now, last) - 10)
            last = now

    hb = asyncio.create_task(heartbeat())
    runner = asyncio.create_task(c.run())
    await c.wait_connected(10000)
    gc.collect()
    a2 = mem_alloc()  # import + one connected instance = a2 - a0
    pad = "x" * max(0, size - 16)
    gc.collect()
    base = mem_alloc()
    t0 = ticks_ms()
    for i in range(count):
        await c.wait_space()
        c.publish("bench/t", '{"seq":%06d,"p":"%s"}' % (i, pad), qos)  # distinct payloads
    while c.queued() or c.in_flight():
        await sleep_ms(1)
    ms = ticks_diff(ticks_ms(), t0)
    gc.collect()
    after = mem_alloc()
    c.close()
    await runner
    hb.cancel()
    print(json.dumps({"qos": qos, "count": count, "size": size, "ms": ms,
                      "conf": conf, "import": a1 - a0, "packet": ap - a0, "instance": a2 - a1, "leak": after - base,
                      "stats": c.stats, "last_error": c.last_error, "max_gap_ms": gap[0]}))


async def detect(host, port, keepalive):
    # The broker answers CONNACK and then nothing: how long until we notice?
    c = MQTTClient("bench", host, port=port, keepalive=keepalive, backoff_ms=(60000, 60000))
    t = [0, 0]

    def up(sp):
        t[0] = ticks_ms()

    def down(reason):
        t[1] = ticks_ms()

    c.on_connect = up
    c.on_disconnect = down
    runner = asyncio.create_task(c.run())
    while not t[1]:
        await sleep_ms(5)
    c.close()
    await runner
    print(json.dumps({"keepalive": keepalive, "detect_ms": ticks_diff(t[1], t[0]), "reason": c.last_error}))


if sys.argv[3] == "detect":
    asyncio.run(detect(sys.argv[1], int(sys.argv[2]), int(sys.argv[4])))
else:
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]),
                     sys.argv[6] if len(sys.argv) > 6 else "bench"))
