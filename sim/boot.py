"""Boot simulated boards as real firmware processes around one HardwareServer.

`boot_devices(...)` is the one way to bring a set of sim devices up: each runs
the real firmware (`firmware/main.py`, MicroPython unix port or CPython) in its
own device folder under a work dir, its hardware served by the HardwareServer.
A `SimFleet` plays the boards' power and reset lines: a device that asks for a
reset (`hal.reset()`), misses its watchdog or crashes is restarted, as the
board's watchdog would; one that refuses its config is left stopped.
`roadedge sim boot` and the world engine both use it.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from host_tools import fw
from host_tools.flash.targets import ROMFS_FILE
from sim.device_process import DeviceProcess, compiled_lib, make_device_dir
from sim.hw import DeviceHW, HardwareServer

ROMFS_BOOT = Path(__file__).with_name("romfs_boot.py")
EXIT_RESET = 75  # roadedge.hal.sim.EXIT_RESET: the firmware asked for a reset
EXIT_POWER_OFF = 76  # roadedge.hal.sim.EXIT_POWER_OFF: the hardware server went away
EXIT_CONFIG = 2  # the firmware refused its config: restarting would not help
RESTART_DELAY_S = 1.0
CRASH_LOOP_LIMIT = 5  # crashes within CRASH_WINDOW_S before a device is left stopped
CRASH_WINDOW_S = 60.0


class BootError(Exception):
    pass


@dataclass
class SimDevice:
    id: str
    cfg: dict
    proc: DeviceProcess
    hw: DeviceHW
    state: str = "stopped"  # booting | running | restarting | stopped | failed
    restarts: int = 0
    last_exit: int | None = None
    reason: str = ""
    crashes: list[float] = field(default_factory=list)
    wdt_killed: bool = False
    restart_at: float = 0.0


def load_config(path: str | Path, broker_url: str | None = None, secrets_path: str | None = None) -> dict:
    """A board config with its secrets merged, as `roadedge flash` would write it.
    Raises BootError with every problem found."""
    from host_tools.config import ConfigError, Secrets, SecretsError, load

    try:
        secrets = Secrets.load(secrets_path)
    except SecretsError as e:
        raise BootError(str(e)) from None
    try:
        cfg, _warnings = load(path, secrets, broker_url, literal_secrets_ok=True)
    except ConfigError as e:
        raise BootError(str(e)) from None
    if cfg.get("board") != "sim":
        raise BootError(f"{path}: board {cfg.get('board')!r} is not 'sim'; `roadedge flash` real boards")
    return cfg


class SimFleet:
    def __init__(self, hw: HardwareServer, workdir: str | Path, runtime: str = "micropython",
                 heap: str | None = None, lib: str | Path | None = None) -> None:
        if runtime not in fw.RUNTIMES:
            raise BootError(f"unknown runtime {runtime!r}; expected one of {', '.join(fw.RUNTIMES)}")
        self.hw = hw
        self.workdir = Path(workdir)
        self.runtime = runtime
        self.heap = heap
        self.lib = lib
        self.devices: dict[str, SimDevice] = {}
        self._task: asyncio.Task | None = None
        self._stopping = False

    def add(self, cfg: dict, fresh: bool = False) -> SimDevice:
        """A device from a (merged) board config: its folder is workdir/<id>."""
        dev_id = cfg["id"]
        if dev_id in self.devices:
            raise BootError(f"device id {dev_id!r} given twice")
        cfg = json.loads(json.dumps(cfg))
        cfg["sim"] = {"hw": self.hw.addr}
        folder = make_device_dir(self.workdir, cfg, fresh=fresh)
        return self._add(dev_id, cfg, DeviceProcess(folder, self.runtime, self.heap, self.lib))

    def add_folder(self, folder: str | Path) -> SimDevice:
        """A flashed device folder (`roadedge flash --port dir:PATH`): its own main.py and lib/."""
        folder = Path(folder)
        cfg_path = folder / "config.json"
        try:
            cfg = json.loads(cfg_path.read_text())
        except (OSError, ValueError) as e:
            raise BootError(f"{cfg_path}: {e}") from None
        if cfg.get("board") != "sim":
            raise BootError(f"{cfg_path}: board {cfg.get('board')!r} is not 'sim'")
        if cfg["id"] in self.devices:
            raise BootError(f"device id {cfg['id']!r} given twice")
        # rewire the simulated board to this hardware server
        cfg["sim"] = {"hw": self.hw.addr}
        cfg_path.write_text(json.dumps(cfg, indent=1) + "\n")
        lib = folder / "lib" if (folder / "lib").is_dir() else self.lib
        script = folder / "main.py" if (folder / "main.py").exists() else None
        runtime = self.runtime
        if (folder / ROMFS_FILE).exists():
            # flashed with a ROMFS image: mount it as the board's startup would, and nothing else to import
            if runtime != "micropython":
                raise BootError(f"{folder}: holds a ROMFS image, which only --runtime micropython mounts")
            # (after a switch back to .mpy files the partition holds an empty image and lib/ the files)
            lib, script = (folder / "lib" if (folder / "lib").is_dir() else folder), ROMFS_BOOT
        if runtime == "cpython" and lib is not None and any(Path(lib).rglob("*.mpy")):
            raise BootError(f"{folder}: holds compiled .mpy firmware, which only --runtime micropython runs")
        return self._add(cfg["id"], cfg, DeviceProcess(folder, runtime, self.heap, lib, script=script))

    def _add(self, dev_id: str, cfg: dict, proc: DeviceProcess) -> SimDevice:
        hw = self.hw.device(dev_id)
        d = SimDevice(dev_id, cfg, proc, hw)
        hw.on_watchdog(lambda _hw, d=d: self._watchdog(d))
        self.devices[dev_id] = d
        return d

    def _watchdog(self, d: SimDevice) -> None:
        # the board's watchdog resets it: kill the process, the supervisor reboots it
        d.wdt_killed = True
        d.proc.kill()

    def start(self) -> None:
        for d in self.devices.values():
            self._boot(d)
        self._task = asyncio.create_task(self._supervise())

    def _boot(self, d: SimDevice) -> None:
        d.proc.start()
        d.state = "booting"

    async def _supervise(self) -> None:
        while not self._stopping:
            now = time.monotonic()
            for d in self.devices.values():
                if d.state == "booting" and d.hw.connected.is_set():
                    d.state = "running"
                if d.state in ("booting", "running") and not d.proc.running():
                    d.last_exit = d.proc.returncode()
                    if d.last_exit == EXIT_CONFIG:
                        d.state = "failed"
                        d.reason = "config refused (see console.log)"
                        continue
                    if d.wdt_killed:
                        d.reason = "watchdog"
                        d.wdt_killed = False
                    else:
                        d.reason = {EXIT_RESET: "reset", EXIT_POWER_OFF: "hardware link lost"}.get(
                            d.last_exit, f"exit {d.last_exit}")
                    if d.last_exit == EXIT_RESET:
                        d.hw.reset_cause = "soft"  # even if the device's last "reset" line was lost
                    if d.reason.startswith("exit"):
                        d.crashes = [t for t in d.crashes if now - t < CRASH_WINDOW_S] + [now]
                        if len(d.crashes) >= CRASH_LOOP_LIMIT:
                            d.state = "failed"
                            d.reason = f"crash loop ({d.reason}; see console.log)"
                            continue
                    d.state = "restarting"
                    d.restart_at = now + RESTART_DELAY_S
                elif d.state == "restarting" and now >= d.restart_at:
                    d.restarts += 1
                    self._boot(d)
            await asyncio.sleep(0.2)

    async def stop(self) -> None:
        """Stop every device (SIGTERM, then SIGKILL) and the supervisor."""
        self._stopping = True
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await asyncio.gather(*(asyncio.to_thread(d.proc.stop) for d in self.devices.values()))
        for d in self.devices.values():
            d.state = "stopped"

    def status(self) -> list[dict]:
        out = []
        for d in self.devices.values():
            p = d.proc.proc
            out.append({"id": d.id, "role": d.cfg.get("role"), "state": d.state, "pid": p.pid if p else None,
                        "hw": d.hw.connected.is_set(), "net": d.hw.net_up, "restarts": d.restarts,
                        "reason": d.reason, "folder": str(d.proc.folder)})
        return out


async def boot_devices(sources: list[str | Path | dict], broker_url: str | None, workdir: str | Path,
                       runtime: str = "micropython", heap: str | None = None, hw: HardwareServer | None = None,
                       secrets: str | None = None, lib: str | Path | None = None, compiled: bool | None = None,
                       fresh: bool = False) -> SimFleet:
    """Boot sim devices from board config files, merged config dicts or flashed
    device folders; returns the started fleet (await fleet.stop() to end).

    hw: a started HardwareServer (default: a new one on a free port, closed by
    the caller via fleet.hw.close()). compiled: run the firmware as .mpy like a
    board does (default for micropython: less heap, faster boot).
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cfgs: list[dict] = []
    folders: list[Path] = []
    for s in sources:
        if isinstance(s, dict):
            cfgs.append(s)
        elif Path(s).is_dir():
            folders.append(Path(s))
        else:
            cfgs.append(load_config(s, broker_url, secrets))
    if hw is None:
        hw = await HardwareServer().start()
    if compiled is None:
        compiled = runtime == "micropython"
    if lib is None and compiled and cfgs:
        lib = await asyncio.to_thread(compiled_lib, workdir / ".lib")
    fleet = SimFleet(hw, workdir, runtime, heap, lib)
    for c in cfgs:
        if broker_url:
            c = dict(c)
            c["broker"] = dict(c.get("broker") or {}, url=broker_url)
        fleet.add(c, fresh=fresh)
    for f in folders:
        fleet.add_folder(f)
    fleet.start()
    return fleet
