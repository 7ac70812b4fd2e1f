"""HardwareServer: serves the sim HAL port's JSON-lines protocol on TCP.

Each firmware process connects, says hello with its device id and is bound to
that id's DeviceHW (created on first use, kept across reboots). The server also
plays the boards' hardware watchdogs.
"""
from __future__ import annotations

import asyncio
import json
import logging

from sim.hw.board import DeviceHW

log = logging.getLogger(__name__)

MAX_LINE = 8192
WATCHDOG_TICK_S = 0.1


class HardwareServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.devices: dict[str, DeviceHW] = {}
        self.bad_lines = 0
        self._server: asyncio.base_events.Server | None = None
        self._wdt_task: asyncio.Task | None = None
        self._conns: set[asyncio.Task] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def addr(self) -> str:
        """host:port for a board config's sim.hw."""
        return f"{self.host}:{self.port}"

    def device(self, dev_id: str) -> DeviceHW:
        hw = self.devices.get(dev_id)
        if hw is None:
            hw = self.devices[dev_id] = DeviceHW(dev_id)
        return hw

    async def start(self) -> HardwareServer:
        self._server = await asyncio.start_server(self._client, self.host, self.port, limit=MAX_LINE)
        self.port = self._server.sockets[0].getsockname()[1]
        self._wdt_task = asyncio.create_task(self._watchdogs())
        return self

    async def close(self) -> None:
        if self._wdt_task:
            self._wdt_task.cancel()
        if self._server:
            self._server.close()
        # Closing the sockets ends each connection task at its next read
        # (cancelling them instead trips asyncio's stream callback).
        for w in list(self._writers):
            w.close()
        if self._conns:
            await asyncio.wait(list(self._conns), timeout=5)
        for t in list(self._conns):
            t.cancel()
        if self._server:
            await self._server.wait_closed()

    async def __aenter__(self) -> HardwareServer:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def _watchdogs(self) -> None:
        while True:
            await asyncio.sleep(WATCHDOG_TICK_S)
            for hw in list(self.devices.values()):
                if hw.check_watchdog():
                    log.warning("%s: watchdog expired", hw.id)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task:
            self._conns.add(task)
        self._writers.add(writer)
        hw: DeviceHW | None = None
        my_send = None
        try:
            line = await reader.readline()
            try:
                hello = json.loads(line)
                dev_id = str(hello["id"])
                if hello.get("op") != "hello":
                    raise ValueError("first message must be hello")
            except (ValueError, KeyError, TypeError):
                self.bad_lines += 1
                log.warning("hardware client sent no valid hello: %r", line[:200])
                return
            hw = self.device(dev_id)
            if hw._send is not None:
                log.warning("%s: a second firmware instance connected; the first is detached", dev_id)
                hw.detach()

            def send(msg: dict, w=writer) -> None:
                if not w.is_closing():
                    w.write(json.dumps(msg).encode() + b"\n")

            welcome = hw.attach(hello, send)
            my_send = hw._send
            send(welcome)
            hw.booted()
            while True:
                try:
                    line = await reader.readline()
                except (asyncio.LimitOverrunError, ValueError):
                    self.bad_lines += 1
                    break
                if not line:
                    break
                try:
                    msg = json.loads(line)
                    if not isinstance(msg, dict):
                        raise ValueError
                except ValueError:
                    self.bad_lines += 1
                    continue
                hw.from_device(msg)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if hw is not None and my_send is not None and hw._send is my_send:
                hw.detach()
            writer.close()
            self._writers.discard(writer)
            if task:
                self._conns.discard(task)



class HardwareServerThread:
    """A HardwareServer on its own event loop thread, for synchronous callers
    (pytest, CLIs that block on other things). DeviceHW is not thread-safe:
    touch it through call()."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        import threading

        self.server = HardwareServer(host, port)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="hardware-server", daemon=True)

    @property
    def addr(self) -> str:
        return self.server.addr

    def start(self) -> HardwareServerThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        return self

    def call(self, fn, *args, timeout: float = 10.0):
        """Run fn(*args) on the server's loop and return its result."""
        async def _do():
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(_do(), self.loop).result(timeout)

    def device(self, dev_id: str) -> DeviceHW:
        return self.call(self.server.device, dev_id)

    def wait_connected(self, dev_id: str, timeout: float = 10.0) -> None:
        async def _w():
            await asyncio.wait_for(self.server.device(dev_id).connected.wait(), timeout)

        asyncio.run_coroutine_threadsafe(_w(), self.loop).result(timeout + 1)

    def stop(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)

    def __enter__(self) -> HardwareServerThread:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
