"""One flash: validate → merge secrets → connect → fit check → build → copy changed files → verify →
start → watch the device come online. Used by `roadedge flash` and `roadedge batch`.

The board gets its role's files only (build.role_files). How: "deploy" in the board config (or
--deploy): romfs = one ROMFS image executed in place from flash (MicroPython 1.25+ with a ROMFS
partition), mpy = .mpy files, auto (default) = ROMFS when the board has a partition. The role must
fit the board's heap for that deployment (host_tools.config.fit): else the flash is refused,
naming the ways out, unless --force."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from host_tools import fw
from host_tools.config import ConfigError, Problem, Secrets, SecretsError, fit, load
from host_tools.fleet import connect as broker
from host_tools.flash import image as img
from host_tools.flash import sync, targets
from roadedge import wire


@dataclass
class FlashResult:
    board_file: str
    port: str
    device: str = "?"
    board: str = "?"
    role: str = "?"
    fw_version: str = ""
    ok: bool = False
    deploy: str = ""  # romfs | mpy: how the firmware went
    stage: str = "validate"
    copied: int = 0
    unchanged: int = 0
    removed: int = 0
    bytes_copied: int = 0
    online: bool | None = None  # None = not waited for
    reason: str = ""
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # stage -> seconds
    device_output: list[str] = field(default_factory=list)


@dataclass
class FlashOptions:
    secrets: str | None = None
    broker_url: str | None = None
    source: bool = False
    wait_online: bool | None = None  # None: yes for serial ports, no for dir:
    timeout_s: float = 60.0
    baud: int = 115200
    ca: str | None = None
    user: str | None = None
    password: str | None = None
    firmware: str | None = None  # firmware tree (main.py + lib/); default: this checkout's firmware/
    deploy: str | None = None  # romfs | mpy | auto: overrides the board config's "deploy"
    force: bool = False  # flash a role over the board's heap budget (warned)


class FitError(RuntimeError):
    pass


def _ca_der(secrets: Secrets) -> Path | None:
    return secrets.root / "tls" / "ca.der" if secrets.root is not None else None


def flash(board_file: str, port: str, opts: FlashOptions, console: Console | None = None) -> FlashResult:
    console = console or Console(stderr=True)
    res = FlashResult(board_file, port, device=Path(board_file).stem)  # the id once the config is read
    t0 = time.monotonic()
    try:
        _flash(res, board_file, port, opts, console)
    except ConfigError as e:
        res.problems = e.problems
        res.reason = f"{len([p for p in e.problems if not p.warning])} config error(s); nothing written"
    except (SecretsError, FileNotFoundError, targets.TargetError, sync.VerifyError, broker.BrokerError,
            FitError, OSError) as e:
        res.reason = str(e)
    except Exception as e:  # a subprocess (mpy-cross) or transport failure: report it, never a traceback
        res.reason = f"{type(e).__name__}: {e}"
    res.seconds = time.monotonic() - t0
    return res


def _flash(res: FlashResult, board_file: str, port: str, opts: FlashOptions, console: Console) -> None:
    secrets = Secrets.load(opts.secrets)
    root = Path(opts.firmware) if opts.firmware else fw.FIRMWARE
    if not (root / "main.py").exists() or not (root / "lib" / "roadedge").is_dir():
        raise FileNotFoundError(f"--firmware {root}: not a firmware tree (needs main.py and lib/roadedge/)")
    cfg, warnings = load(board_file, secrets, opts.broker_url, firmware_lib=root / "lib", force=opts.force,
                         deploy=opts.deploy)
    res.problems = warnings
    res.device, res.board, res.role = cfg["id"], cfg["board"], cfg["role"]
    kind, _where = targets.parse_port(port)
    wait = opts.wait_online if opts.wait_online is not None else kind == "serial"

    clock = [time.monotonic()]

    def lap(stage: str) -> None:
        now = time.monotonic()
        res.timings[res.stage] = now - clock[0]
        clock[0] = now
        res.stage = stage

    lap("connect")
    target = targets.open_target(port, opts.baud)
    watch = None
    try:
        lap("fit")
        romfs, rom_size = _deployment(cfg, target, opts)
        res.deploy = "romfs" if romfs else "mpy"
        fits: list[Problem] = []
        fit.check(dict(cfg, deploy=res.deploy), lambda fld, m: fits.append(Problem(board_file, fld, m)),
                  lambda fld, m: fits.append(Problem(board_file, fld, m, warning=True)), opts.force)
        res.problems += [p for p in fits if p.warning and p not in res.problems]
        if any(not p.warning for p in fits):
            raise FitError(" ".join(p.message for p in fits) + " (--force flashes it anyway)")
        lap("build")
        with console.status(f"building the {cfg['role']} firmware for {cfg['board']} ({res.deploy})"):
            image = img.build_image(cfg, source=opts.source, ca_der=_ca_der(secrets), root=root, romfs=romfs)
        res.fw_version = image.fw_version
        if image.romfs is not None and rom_size is not None and len(image.romfs) > rom_size:
            raise targets.TargetError(f"the ROMFS image ({len(image.romfs)} B) is larger than the board's "
                                      f"partition ({rom_size} B): flash with --deploy mpy")
        lap("compare")
        p = sync.plan(image, target)
        lap("copy")
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                      TextColumn("{task.fields[file]}"), TimeElapsedColumn(), console=console,
                      transient=False) as prog:
            task = prog.add_task(f"{cfg['id']} → {target.name}", total=max(p.bytes_to_copy, 1), file="")
            out = sync.apply(image, target, p,
                             on_file=lambda f: prog.update(task, file=f),
                             on_bytes=lambda n: prog.advance(task, n))
            prog.update(task, completed=max(p.bytes_to_copy, 1), file=f"{len(out.copied)} copied, "
                                                                       f"{len(out.unchanged)} unchanged")
        res.copied, res.unchanged, res.removed = len(out.copied), len(out.unchanged), len(out.removed)
        res.bytes_copied = out.bytes_copied

        if not wait:
            lap("done")
            res.ok = True
            return
        lap("online")
        url = cfg["broker"]["url"]
        watch = broker.connect(url, opts.user, opts.password, opts.ca, secrets, name="flash")
        sub = broker.Subscription(watch, [wire.topic(cfg["id"], wire.STATUS), wire.topic(cfg["id"], wire.LOG)])
        how = target.start() if isinstance(target, targets.SerialTarget) else "boot it yourself (dir:)"
        console.print(f"[dim]{cfg['id']}: started ({how}); waiting for it to report online on {url}[/]")
        res.online, res.reason = _wait_online(cfg["id"], target, sub, opts.timeout_s, res, console)
        res.ok = bool(res.online)
        if res.ok:
            lap("done")
    finally:
        if watch is not None:
            broker.close(watch)
        target.close()


def _deployment(cfg: dict, target, opts: FlashOptions) -> tuple[bool, int | None]:
    """(ship a ROMFS image?, the partition's size). auto: ROMFS on a board that has a partition;
    a dir: folder (not a board) gets one only when asked."""
    deploy = opts.deploy or cfg.get("deploy", "auto")
    if deploy == "mpy" or (deploy == "auto" and (target.kind == "dir" or opts.source)):
        return False, None
    if opts.source:
        raise targets.TargetError("--source ships .py files, which a ROMFS would only compile into the heap: "
                                  "use --deploy mpy")
    size = target.romfs_size()
    if size is None:
        if deploy == "romfs":
            raise targets.TargetError(f"{target.name} has no ROMFS partition (MicroPython 1.25+ built with one, "
                                      "see `mpremote romfs query`): flash with --deploy mpy")
        return False, None
    return True, size


def _wait_online(dev: str, target, sub: broker.Subscription, timeout_s: float, res: FlashResult,
                 console: Console) -> tuple[bool, str]:
    deadline = time.monotonic() + timeout_s
    pending = b""
    last_status = None
    while time.monotonic() < deadline:
        if isinstance(target, targets.SerialTarget):
            try:
                pending += target.read_output(0.05)
            except Exception:
                pending = b""  # a board re-enumerating after reset: the broker still tells us
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                text = line.decode(errors="replace").rstrip("\r")
                if text:
                    res.device_output = (res.device_output + [text])[-40:]
                    console.print(f"{dev} | {text}", style="dim", highlight=False, markup=False)
        m = sub.get(0.05)
        if m is None:
            continue
        topic, payload, retained = m
        if topic.endswith("/status"):
            last_status = payload.decode(errors="replace")
            # a retained 'online' may be from before this flash; a live one is the device now
            if last_status == "online" and not retained:
                return True, "online"
        elif topic.endswith("/log"):
            console.print(f"{dev} log {payload.decode(errors='replace')}", style="cyan", highlight=False,
                          markup=False)
    tail = [x for x in res.device_output if "Error" in x or "error" in x or "Traceback" in x]
    why = f"no live 'online' on re/{dev}/status within {timeout_s:.0f}s"
    if tail:
        why += f"; the device printed: {tail[-1]}"
    elif last_status:
        why += f"; last status seen: {last_status}"
    elif isinstance(target, targets.SerialTarget) and not res.device_output:
        why += "; the device printed nothing (is main.py running? is Wi-Fi in range?)"
    if res.device_output and not tail:
        why += f"; last device output: {res.device_output[-1]!r}"
    return False, why
