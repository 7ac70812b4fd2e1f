# Test/bench driver: runs roadedge.mqtt.client.MQTTClient under the real
# micropython binary (or CPython) and reports on stdout, one event per line:
#   hb <n>                 heartbeat task tick (the device's "other tasks")
#   up <session_present>   connected        down <reason>   disconnected
#   msg <topic> <payload>  message received
#   pub <seq>              message <seq> accepted by publish()
#   stats <json>           client stats (on every connect/disconnect and at the end)
#   done                   every message published and acknowledged
#   fragmented <n>         "fragment": the free heap was cut into n small holes
#   producer MemoryError   the publisher itself found no memory for a payload (retried)
#   tele lost <seq>        ... for a QoS 0 telemetry payload (never reached the client)
# Usage: <runtime> driver.py CONFIG.json  (see tests/test_mqtt_client.py). A file,
# not an argument: this unix-port build dies ("uncaught NLR") on argv over ~256 chars.
import sys
import json
import asyncio

from roadedge.core.compat import sleep_ms, ticks_ms, ticks_diff
from roadedge.mqtt.client import MQTTClient


def out(*a):
    print(*a)


def stats(c):
    """One "stats <json>" line, written piece by piece: in a fragmented heap a
    whole line (~600 bytes) may find no block, and the report must not fail."""
    import gc

    gc.collect()  # the heap-pressure tests run this driver at the edge of its heap
    w = sys.stdout.write
    w('stats {"wedged": ')
    w("true" if c.wedged() else "false")
    w(', "last_error": ')
    w(json.dumps(c.last_error))
    for k in c.stats:
        w(', "')
        w(k)
        w('": ')
        w(str(c.stats[k]))
    w("}\n")


async def heartbeat(ms):
    n = 0
    while True:
        n += 1
        out("hb", n)
        await sleep_ms(ms)


def fragment(block):
    """Fill the free heap with block-byte objects, then free every other one:
    what is left free is small holes, no block a connect could ask for."""
    import gc

    keep = []
    try:
        while True:
            keep.append(bytearray(block))
    except MemoryError:
        pass
    for i in range(0, len(keep), 2):
        keep[i] = None
    gc.collect()
    return keep


async def publisher(c, p):
    await c.wait_connected()
    hold = None
    if p.get("fragment"):
        hold = fragment(p["fragment"])
        out("fragmented", len(hold) // 2)
    qos = p.get("qos", 1)
    tele_every = p.get("qos0_every", 0)
    every = p.get("interval_ms", 0)
    size = p.get("size", 0)
    pad = "x" * size
    seq = 1
    while seq <= p["count"]:
        if p.get("wait_space", True):
            await c.wait_space()
        try:
            payload = '{"seq":%d%s}' % (seq, (',"pad":"%s"' % pad) if size else "")
        except MemoryError:  # at the heap's edge the producer fails too: as a device app would, retry
            out("producer MemoryError")
            await sleep_ms(20)
            continue
        ok = c.publish(p["topic"], payload, qos, p.get("retain", False))
        if p.get("verbose", True):
            out("pub", seq) if ok else out("refused", seq)
        if tele_every and seq % tele_every == 0:  # QoS 0 telemetry beside the QoS 1 stream
            try:
                c.publish(p["topic"] + "/tele", '{"tele":%d}' % seq, 0)
            except MemoryError:  # never reached the client: the test counts it apart
                out("tele lost", seq)
        if every:
            await sleep_ms(every)
        elif seq % 8 == 0:
            await sleep_ms(0)
        seq += 1
    while c.queued() or c.in_flight():
        await sleep_ms(10)
    stats(c)
    out("done")
    return hold


async def main(cfg):
    kw = cfg["client"]
    if "will" in kw and kw["will"]:
        kw["will"] = tuple(kw["will"])
    if "birth" in kw and kw["birth"]:
        kw["birth"] = tuple(kw["birth"])
    if "backoff_ms" in kw:
        kw["backoff_ms"] = tuple(kw["backoff_ms"])
    c = MQTTClient(**kw)
    c.on_connect = lambda sp: (out("up", sp), stats(c))
    c.on_disconnect = lambda r: (out("down", r), stats(c))
    c.on_message = lambda t, p, r: out("msg", t, p.decode(), int(r))
    for t, q in cfg.get("subscribe", []):
        c.subscribe(t, q)
    tasks = [asyncio.create_task(heartbeat(cfg.get("heartbeat_ms", 50)))]
    if cfg.get("publish"):
        tasks.append(asyncio.create_task(publisher(c, cfg["publish"])))
    runner = asyncio.create_task(c.run())
    # Read commands from stdin? Not portable on the unix port's asyncio; the
    # test ends the run with a signal or by "exit_after_ms".
    limit = cfg.get("exit_after_ms")
    every = cfg.get("stats_every_ms", 0)
    t0 = last = ticks_ms()
    while limit is None or ticks_diff(ticks_ms(), t0) < limit:
        await sleep_ms(100)
        if every and ticks_diff(ticks_ms(), last) >= every:
            last = ticks_ms()
            stats(c)
        if cfg.get("exit_when_done") and len(tasks) > 1 and tasks[1].done():
            break
    c.close()
    try:
        await asyncio.wait_for(runner, 5)
    except Exception:
        pass
    stats(c)
    out("exit")


with open(sys.argv[1]) as f:
    _cfg = json.load(f)
asyncio.run(main(_cfg))
