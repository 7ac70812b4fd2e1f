"""MQTT client bench: QoS 0 / QoS 1 publish rate, heap used by the client and
the worst event-loop stall under the MicroPython unix port (CPython beside it),
the smallest -X heapsize that still runs it, and how fast a silent broker is
noticed. Against a Mosquitto it starts itself. Writes the "mqtt" section of
docs/benchmarks.md.

    python bench/mqtt/run.py
"""
from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))
sys.path.insert(0, str(HERE.parent))

from common import write_section  # noqa: E402
from host_tools import build, fw  # noqa: E402
from host_tools.broker.mosquitto import Mosquitto, free_port  # noqa: E402

COUNT, SIZE, RUNS = 20000, 64, 3
HEAP = "96K"
HEAPS = ("36K", "40K", "44K", "48K", "52K", "56K", "64K", "72K", "80K", "96K")
FACTOR_32 = 0.70  # a 32-bit board needs about this share of the 64-bit unix port's bytes
MQTT_AS = (23.4, "48K")  # issue 18: mqtt_as's import + instance (KB) and smallest heap, device configuration
KEEPALIVES = (2, 4)


def step(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def device(runtime: str, args: list, heap: str | None, lib: Path | None, timeout: float = 120) -> dict | None:
    try:
        r = fw.run(runtime, HERE / "mp_bench.py", [str(a) for a in args], heap=heap,
                   lib=lib if runtime == "micropython" else None, timeout=timeout)
    except subprocess.TimeoutExpired:
        step(f"  {runtime} {heap or ''} {' '.join(map(str, args[2:]))}: not finished in {timeout} s")
        return None
    if r.returncode:
        tail = (r.stdout + r.stderr).strip().splitlines()[-1:]
        step(f"  {runtime} {heap or ''} {' '.join(map(str, args[2:]))}: exit {r.returncode} {tail}")
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def silent_broker() -> int:
    """A broker that CONNACKs and then never says another word."""
    port = free_port()
    ready = threading.Event()

    async def serve(reader, writer):
        await reader.read(1024)
        writer.write(b"\x20\x02\x00\x00")
        await writer.drain()
        while await reader.read(1024):
            pass
        writer.close()

    async def main():
        srv = await asyncio.start_server(serve, "127.0.0.1", port)
        ready.set()
        async with srv:
            await srv.serve_forever()

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
    ready.wait(10)
    return port


def main() -> int:
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        step("compiling the firmware with mpy-cross (armv6m), as a board runs it")
        build.build_tree("armv6m", tmp / "fw")
        lib = tmp / "fw" / "lib"
        rows = []
        with Mosquitto(tmp / "mq") as broker:
            step(f"mosquitto on {broker.url}")
            for conf, runtime, heap in (("bench", "micropython", HEAP), ("device", "micropython", HEAP),
                                        ("bench", "cpython", None)):
                for qos in (0, 1):
                    res = []
                    for _ in range(RUNS):
                        r = device(runtime, ["127.0.0.1", broker.port, qos, COUNT, SIZE, conf], heap, lib)
                        if r is None:
                            step(f"{runtime} qos {qos}: FAILED")
                            return 1
                        res.append(r)
                    rates = sorted(COUNT / (r["ms"] / 1000) for r in res)
                    r = res[0]
                    rows.append((runtime, conf, heap, qos, statistics.median(rates), rates[0], rates[-1], r,
                                 max(x["max_gap_ms"] for x in res)))
                    step(f"{runtime} {conf} QoS {qos}: median {rows[-1][4]:,.0f} msg/s ({rates[0]:,.0f}-"
                         f"{rates[-1]:,.0f}), import {r['import']} B, instance {r['instance']} B")
            smallest = {}
            for conf in ("bench", "device"):
                smallest[conf] = None
                for heap in HEAPS:
                    r = device("micropython", ["127.0.0.1", broker.port, 1, 2000, SIZE, conf], heap, lib, timeout=30)
                    st = r["stats"] if r else {}
                    if r and st["acked"] >= 2000 and not st["mem_errors"]:
                        smallest[conf] = heap
                        break
                    if r:  # finished, but only by reconnecting after MemoryErrors
                        step(f"  {conf} {heap}: survived by reconnecting ({st['mem_errors']} MemoryErrors)")
                step(f"smallest heap running the QoS 1 bench, {conf} configuration: {smallest[conf]}")
        detect = []
        port = silent_broker()
        for ka in KEEPALIVES:
            r = device("micropython", ["127.0.0.1", port, "detect", ka], HEAP, lib, timeout=10 * ka)
            if r is None:
                step(f"detect keepalive {ka}: FAILED")
                return 1
            detect.append(r)
            step(f"keepalive {ka} s: silent broker noticed after {r['detect_ms']} ms ({r['reason']})")

    lines = [
        f"{COUNT:,} publishes of distinct ~{SIZE}-byte JSON payloads (each its own object, as a device's "
        f"telemetry) per run, median of {RUNS} runs with the range, one client, Mosquitto on loopback; "
        "configuration `bench` = `queue_size=32, window=8, max_packet=4096`, `device` = the device defaults "
        "`queue_size=16, window=4, max_packet=2560`; the publisher awaits "
        "`wait_space()` so nothing is dropped. MicroPython runs the firmware compiled by mpy-cross under "
        f"`-X heapsize={HEAP}`. `stall` is the worst extra delay seen by a 10 ms heartbeat task running beside "
        "the publisher (wall clock: includes the OS preempting the process on this shared machine, where the "
        "rates also vary from run to run).",
        "",
        "| runtime | config | QoS | msg/s median (range) | stall ms |",
        "|---|---|---|---|---|",
    ]
    for runtime, conf, heap, qos, rate, lo, hi, _r, gap in rows:
        lines.append(f"| {runtime}{' ' + heap if heap else ''} | {conf} | {qos} | {rate:,.0f} ({lo:,.0f}-{hi:,.0f}) "
                     f"| {gap} |")
    heap_rows = {conf: r for runtime, conf, heap, qos, rate, lo, hi, r, gap in rows
                 if runtime == "micropython" and qos == 1}
    lines += [
        "",
        "Heap (`gc.mem_alloc()` deltas on the 64-bit unix port; a 32-bit board needs about "
        f"{FACTOR_32:.2f}x these bytes, measured: docs/architecture.md). `import` = the bytecode and objects of "
        "`mqtt.packet` + `mqtt.client` loaded from .mpy into RAM (zero when frozen or in ROMFS), and the "
        "interned names (qstrs) they add; the client no longer loads asyncio's stream module (~1.8 KB): on "
        "MicroPython it waits on its socket in asyncio's own I/O queue; `instance` = one constructed and "
        "connected client with its one shared `max_packet` buffer (the socket reads into it), its reader and "
        "clock tasks and its socket, and the bench's heartbeat task. import + instance "
        f"is the figure issue 18 compares with mqtt_as ({MQTT_AS[0]} KB in the device configuration). Issue 18 "
        "measured 42.3 KB and a smallest heap of 72K in the device configuration before any of its work, "
        "29.5 KB and 44K before the client dropped asyncio's stream module and its framer class.",
        "",
        "| config | packet import B | client import B | instance B | import + instance B | 32-bit estimate B "
        "| heap retained after the run B |",
        "|---|---|---|---|---|---|---|",
    ]
    for conf in ("bench", "device"):
        r = heap_rows[conf]
        tot = r["import"] + r["instance"]
        lines.append(f"| {conf} | {r['packet']:,} | {r['import'] - r['packet']:,} | {r['instance']:,} | **{tot:,}** "
                     f"| {int(tot * FACTOR_32):,} | {r['leak']:,} |")
    lines += [
        "",
        "Smallest `-X heapsize` that runs the QoS 1 bench (2,000 distinct messages, the whole program: "
        "asyncio, the client, the publisher) on the unix port without a single MemoryError (tried "
        f"{', '.join(HEAPS)}; issue 18's mqtt_as figure: {MQTT_AS[1]} in the device configuration):",
        "",
        "| config | smallest heap (64-bit) | 32-bit estimate |",
        "|---|---|---|",
    ]
    for conf in ("bench", "device"):
        h = smallest[conf]
        est = f"{int(h[:-1]) * FACTOR_32:.0f}K" if h else "n/a"
        lines.append(f"| {conf} | **{h or 'none'}** | {est} |")
    lines += [
        "",
        "Below the smallest heap the client does not crash: a MemoryError drops the link, is counted "
        "(`mem_errors`), QoS 0 is shed after two in a row, and the client reconnects; after five in a row "
        "`wedged()` makes the device unhealthy so its watchdog resets it (tests/test_mqtt_client.py, "
        "tests/test_device_runtime.py). Here the runs below the smallest heap ended in the bench program's own "
        "MemoryError (its payload, or the client's construction and the start of run(), which makes its two tasks) before the client's session failed.",
        "",
        "Dead-broker detection (a fake broker that sends CONNACK and then nothing; time from CONNACK to the "
        "client dropping the link; the bound is 1.5 x keepalive):",
        "",
        "| keepalive s | noticed after ms | bound ms |",
        "|---|---|---|",
    ]
    for r in detect:
        lines.append(f"| {r['keepalive']} | {r['detect_ms']:,} | {int(1500 * r['keepalive']):,} |")
    write_section("mqtt", "\n".join(lines))
    step("wrote the mqtt section of docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
