# Device side of bench/mqtt/run.py: runs under micropython (or CPython) and
# prints one JSON line. Usage:
#   mp_bench.py HOST PORT QOS COUNT SIZE   publish rate, heap, event-loop stall
#   mp_bench.py HOST PORT detect KEEPALIVE  time to notice a broker gone silent
import sys
import gc
import json
import asyncio

from roadedge.core.compat import ticks_ms, ticks_diff, sleep_ms, mem_alloc

gc.collect()
a0 = mem_alloc()
from roadedge.mqtt.client import MQTTClient  # noqa: E402

gc.collect()
a1 = mem_alloc()


async def main(host, port, qos, count, size):
    c = MQTTClient("bench", host, port=port, keepalive=30, queue_size=32, window=8)
    gc.collect()
    a2 = mem_alloc()
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
    payload = b"x" * size
    gc.collect()
    base = mem_alloc()
    t0 = ticks_ms()
    for _ in range(count):
        await c.wait_space()
        c.publish("bench/t", payload, qos)
    while c.queued() or c.in_flight():
        await sleep_ms(1)
    ms = ticks_diff(ticks_ms(), t0)
    gc.collect()
    after = mem_alloc()
    c.close()
    await runner
    hb.cancel()
    print(json.dumps({"qos": qos, "count": count, "size": size, "ms": ms,
                      "import": a1 - a0, "instance": a2 - a1, "leak": after - base,
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
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])))
