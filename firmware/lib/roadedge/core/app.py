# The device app: every role runs on this platform. main() loads the config,
# opens the HAL, starts the watchdog feeder, brings the network up, runs the
# MQTT client (birth/will, info, telemetry, log forwarding, broker time,
# signed commands with acks) and then the role: roadedge.<role>.app.start(dev).
# Role "base" runs the platform alone (bring-up, tests).
# Boot-only code (config checks, platform defaults, building the client)
# lives in core.boot and the rare built-in commands in core.builtin_cmds:
# both are imported when needed, and boot is dropped once the device is open.
import sys
import json

from roadedge import wire
from roadedge.core.compat import IS_MICROPYTHON, const, gc_collect, mem_free, sleep_ms, ticks_diff, ticks_ms

try:
    import asyncio
except ImportError:  # pragma: no cover
    import uasyncio as asyncio  # type: ignore

DATA_DIR = "data"

_HEARTBEAT_MS = const(500)
_NET_CHECK_MS = const(2000)
LOG_LEVELS = "DIWE"
ON_BOARD = sys.platform in ("rp2", "esp32")


def _fw_version(cfg):
    return cfg.get("fw_version") or "dev"


def _boot():
    from roadedge.core import boot

    return boot


def _drop(*names):
    """Forget modules that are no longer needed so the GC can take them (a
    later import loads them again)."""
    for name in names:
        sys.modules.pop(name, None)
        pkg, _, leaf = name.rpartition(".")
        try:
            delattr(sys.modules[pkg], leaf)  # import also set it on the package
        except (KeyError, AttributeError):
            pass
    gc_collect()


def platform_params(cfg):
    """cfg["device"] over the platform defaults (core.boot.DEFAULTS), with
    watchdog_ms and the log settings (log_level; log_mqtt = the level
    forwarded over MQTT, "" = none)."""
    return _boot().platform_params(cfg)


def check_config(cfg):
    """Validate what the platform needs; returns (id, role, board). Role "base"
    (platform only) is accepted besides the roles config.check_device knows."""
    return _boot().check_config(cfg)


def make_mqtt(spec):
    """The MQTT client from core.boot.mqtt_spec()."""
    from roadedge.mqtt.client import MQTTClient

    args, kw = spec
    return MQTTClient(*args, **kw)


class Device:
    """What a role gets from the platform (docs/architecture.md, "The device app")."""

    def __init__(self, cfg, hal, clock, log, data_dir=DATA_DIR, cfg_hash="", mqtt=None, params=None):
        from roadedge.core import seq

        self.cfg = cfg
        self.id = cfg["id"]
        self.role = cfg["role"]
        self.hal = hal
        self.clock = clock
        self.log = log
        self.data_dir = data_dir
        self.cfg_hash = cfg_hash
        self.params = p = params if params is not None else platform_params(cfg)
        self.counters = {}
        self._seq = seq.Seq(data_dir + "/seq.json")
        self._commands = {}
        self._selftests = []
        self._tele_fields = []
        self._health = []
        self._connect_cbs = []
        self._tasks = []
        self._cmdq = []
        self._cmd_ev = asyncio.Event()
        self._logq = []
        self._log_ev = asyncio.Event()
        self._stop = asyncio.Event()
        self._beat = ticks_ms()
        self._offline_since = ticks_ms()
        self._link_up = False  # the network link (offline_reset_s counts only while it is up)
        self._mem_seen = 0  # MQTT MemoryErrors already logged
        self._boot_ticks = ticks_ms()
        self.boot_reason = "unknown"
        key = cfg.get("command_key")
        self.auth = None
        if key:
            from roadedge.core.auth import CommandAuth

            self.auth = CommandAuth(key, self.id, data_dir + "/cmd_ctr.json")
        # mqtt: a test double may stand in for the client (same interface)
        self.mqtt = mqtt if mqtt is not None else make_mqtt(_boot().mqtt_spec(cfg, self.id, p))
        self.exit_code = 0
        self._mqtt_task = None
        self._shut = False
        self._crashed = None

    # ---- role API
    def topic(self, kind, *rest):
        return wire.topic(self.id, kind, *rest)

    def publish(self, kind, obj, qos=0, retain=False):
        """JSON-encode obj (str/bytes go as they are) and queue it on
        re/<id>/<kind>; never blocks. False = dropped (counted)."""
        m = self.mqtt
        if isinstance(obj, (bytes, bytearray, str)):
            payload = obj
        else:
            payload = json.dumps(obj)
        if m is None or not m.publish(self.topic(kind), payload, qos, retain):
            self.count("pub_dropped")
            return False
        return True

    def event(self, kind, fields=None):
        """Publish an event (the wire envelope: seq, ts, type, fields) at QoS 1."""
        return self.publish(wire.EVENT, wire.event(self.next_seq(), self.now_s(), kind, fields), 1)

    def on_command(self, name, handler):
        """handler(args: dict) -> (code, detail_or_None), called only for
        verified commands on re/<id>/cmd/<name>. It may return an awaitable."""
        self._commands[name] = handler

    def on_selftest(self, fn):
        """fn() -> {check_name: (ok, info)} (or an awaitable of it), merged into
        the selftest result."""
        self._selftests.append(fn)

    def on_telemetry(self, fn):
        """fn() -> dict of role fields added to each re/<id>/tele."""
        self._tele_fields.append(fn)

    def on_connect(self, fn):
        """fn() after every MQTT (re)connect: republish retained state a broker
        restart may have lost. (The platform republishes info itself.)"""
        self._connect_cbs.append(fn)

    def on_health(self, fn):
        """fn() -> bool; while any returns False the watchdog is not fed."""
        self._health.append(fn)

    def spawn(self, coro, name="task"):
        """Run coro as a task that is cancelled on shutdown; a crash is logged,
        counted and makes the device unhealthy (the watchdog then resets it)."""
        t = asyncio.create_task(self._guard(coro, name))
        self._tasks.append(t)
        return t

    def count(self, name, n=1):
        self.counters[name] = self.counters.get(name, 0) + n

    def next_seq(self):
        return self._seq.next()

    def now_s(self):
        """Unix seconds from the device clock, 0 while it is unset."""
        t = self.clock.now_s()
        return 0 if t is None else t

    def uptime_s(self):
        return ticks_diff(ticks_ms(), self._boot_ticks) // 1000

    async def run(self):
        """Start the platform tasks and the role; run until stop()."""
        hal = self.hal
        log = self.log
        self.boot_reason = hal.reset_cause()
        setattr(log, "sink", self._log_sink)  # (setattr: Log declares sink = None)
        log.info("%s %s fw %s booting (%s)" % (self.role, self.id, _fw_version(self.cfg), self.boot_reason))
        self._install_builtins()
        self.spawn(self._heartbeat(), "heartbeat")
        wms = self.params["watchdog_ms"]
        if wms:
            self.spawn(self._watchdog(hal.watchdog(wms), wms), "watchdog")
        m = self.mqtt
        setattr(m, "on_message", self._on_message)
        setattr(m, "on_connect", self._on_connect)
        m.subscribe(self.topic(wire.CMD, "#"), 1)
        m.subscribe(wire.TIME_TOPIC, 0)
        self.spawn(self._network(), "network")
        self.spawn(self._commands_task(), "commands")
        self.spawn(self._log_out(), "log")
        self.spawn(self._telemetry(), "telemetry")
        try:
            _start_role(self)
        except Exception as e:
            # A role that cannot start leaves the platform up (commands, logs,
            # selftest) so it can be diagnosed; the device reports the failure.
            self.count("role_start_failed")
            self._crashed = "role start"
            log.exc(e, "role start")
        try:
            await self._stop.wait()
        finally:
            await self.shutdown()
        return self.exit_code

    async def _join(self):
        """Bring the link up, retrying with exponential backoff (1 s .. 60 s)."""
        delay = 1000
        while not await self.hal.net_up(self.cfg):
            self.count("net_fail")
            self.log.warn("network not up; retry in %d s" % (delay // 1000))
            await sleep_ms(delay)
            delay = min(delay * 2, 60000)

    async def _network(self):
        """Join the network, run the MQTT client (it reconnects by itself), and
        watch the link: a lost link is counted, the client told (it drops the
        session and waits instead of retrying into a dead radio) and the link
        re-joined."""
        await self._join()
        self._link_up = True
        self.log.info("network up")
        if ON_BOARD and self.params["ntp"]:
            self.spawn(_ntp(self), "ntp")
        self._mqtt_task = t = asyncio.create_task(self.mqtt.run())
        try:
            while True:
                await sleep_ms(_NET_CHECK_MS)
                if t.done():  # run() only returns after close(): anything else is a fault
                    raise RuntimeError("MQTT client stopped")
                if not self.hal.net_ok():
                    self.count("net_lost")
                    self.log.warn("network lost")
                    self._link(False)
                    await self._join()
                    self._link(True)
                    self.log.info("network back")
        finally:
            t.cancel()

    def _link(self, up):
        """Tell the MQTT client the link is down/up (a test double may lack it)."""
        self._link_up = up
        fn = getattr(self.mqtt, "set_link", None)
        if fn is not None:
            fn(up)

    def stop(self, code=0):
        self.exit_code = code
        self._stop.set()

    # ---- internals
    async def _guard(self, coro, name):
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.count("task_errors")
            self._crashed = name
            self.log.exc(e, "task " + name)

    def healthy(self):
        if self._crashed:
            return False
        if ticks_diff(ticks_ms(), self._beat) > self.params["stall_ms"]:
            return False
        # No broker for offline_reset_s with the link up, or an MQTT client
        # wedged by repeated MemoryErrors: only a reset brings it back (issue 18).
        lim = self.params["offline_reset_s"]
        m = self.mqtt
        if lim and m is not None and not m.is_connected():
            if ticks_diff(ticks_ms(), self._offline_since) > lim * 1000:
                return False
        if getattr(m, "wedged", lambda: False)():
            return False
        for fn in self._health:
            try:
                if not fn():
                    return False
            except Exception:
                return False
        return True

    def _log_sink(self, rec):
        fwd = self.params["log_mqtt"]
        if not fwd or LOG_LEVELS.find(rec[1]) < LOG_LEVELS.find(fwd):
            return
        if len(self._logq) >= self.params["log_queue"]:
            self.count("log_dropped")
            return
        self._logq.append(rec)
        self._log_ev.set()

    async def _log_out(self):
        while True:
            await self._log_ev.wait()
            self._log_ev.clear()
            while self._logq:
                m = self.mqtt
                if m is None or not m.is_connected() or m.queued() * 2 > self.params["mqtt_queue"]:
                    await sleep_ms(500)  # wait for room; the bounded _logq drops what will not fit
                    continue
                ts, lvl, msg = self._logq.pop(0)
                if not m.publish(self.topic("log"), json.dumps({"ts": ts, "lvl": lvl, "msg": msg}), 0, False):
                    self.count("log_dropped")

    async def _heartbeat(self):
        while True:
            self._beat = ticks_ms()
            m = self.mqtt
            if m is None or m.is_connected() or not self._link_up:
                self._offline_since = self._beat
            st = getattr(m, "stats", {})
            if st.get("mem_errors", 0) != self._mem_seen:
                self._mem_seen = st["mem_errors"]
                try:
                    self.log.warn("mqtt: %d MemoryErrors, %d QoS 0 messages shed" % (self._mem_seen, st["shed"]))
                except MemoryError:
                    pass
            await sleep_ms(_HEARTBEAT_MS)

    async def _watchdog(self, wdt, timeout_ms):
        period = max(100, timeout_ms // 4)
        while True:
            if self.healthy():
                wdt.feed()
            else:
                self.count("wdt_starved")
            await sleep_ms(period)

    def telemetry(self):
        ctr = dict(self.counters)
        m = self.mqtt
        if m is not None:
            for k, v in m.stats.items():
                ctr["mqtt_" + k] = v
            ctr["mqtt_queued"] = m.queued()
        if self.auth is not None:
            for k, v in self.auth.counts.items():
                ctr["auth_" + k] = v
        ctr["log_overwritten"] = self.log.dropped
        gc_collect()  # heap_free = what is really free, not what garbage hides
        t = {"seq": self.next_seq(), "ts": self.now_s(), "up_s": self.uptime_s(), "heap_free": mem_free(),
             "net": self.hal.net_ok(), "ctr": ctr}
        for fn in self._tele_fields:
            try:
                extra = fn()
                if extra:
                    t.update(extra)
            except Exception as e:
                self.count("tele_errors")
                self.log.exc(e, "telemetry")
        return t

    async def _telemetry(self):
        period = self.params["tele_s"] * 1000
        await sleep_ms(min(period, 5000))  # a first report soon after boot
        while True:
            self.publish("tele", self.telemetry())
            await sleep_ms(period)

    def info(self):
        return {"role": self.role, "board": self.cfg.get("board"), "fw": _fw_version(self.cfg),
                "boot": self.boot_reason, "cfg": self.cfg_hash, "ts": self.now_s()}

    # -- MQTT input
    def _on_connect(self, session_present):
        self.publish("info", self.info(), 1, True)
        for fn in self._connect_cbs:
            try:
                fn()
            except Exception as e:
                self.count("cb_errors")
                self.log.exc(e, "on_connect")

    def _on_message(self, topic, payload, retained):
        pre = wire.cmd_topic(self.id, "")
        if topic.startswith(pre):
            if len(self._cmdq) >= self.params["cmd_queue"]:
                self.count("cmd_dropped")
                return
            self._cmdq.append((topic[len(pre):], payload))
            self._cmd_ev.set()
        elif topic == wire.TIME_TOPIC:
            try:
                t = json.loads(payload)["t"]
                if type(t) is not int and type(t) is not float:
                    raise ValueError
                self.clock.set(t, "broker")
            except (ValueError, KeyError, TypeError):
                self.count("bad_time")

    async def _commands_task(self):
        while True:
            await self._cmd_ev.wait()
            self._cmd_ev.clear()
            while self._cmdq:
                name, payload = self._cmdq.pop(0)
                await self._run_command(name, payload)

    def _ack(self, name, ctr, code, detail):
        ok = code == "ok"
        self.count("cmd_ok" if ok else "cmd_rejected")
        if not ok:
            self.count("cmd_" + code)
        self.publish(wire.ACK, wire.ack(self.next_seq(), self.now_s(), name, ctr, code, detail), 1)

    async def _run_command(self, name, payload):
        if self.auth is None:
            self._ack(name, None, "refused", "no command_key configured")
            return
        code, body = self.auth.check(name, payload, self.clock.now_s())
        if code != "ok" or body is None:
            self.log.warn("command %s rejected: %s" % (name, code))
            self._ack(name, None, code, None)
            return
        ctr = body.get("ctr")
        h = self._commands.get(name)
        if h is None:
            self._ack(name, ctr, "unknown_command", None)
            return
        try:
            r = h(body.get("args") or {})
            if r is not None and hasattr(r, "send"):
                r = await r
            code, detail = r if r is not None else ("ok", None)
        except Exception as e:
            self.count("cmd_errors")
            self.log.exc(e, "command " + name)
            code, detail = "refused", "%s: %s" % (type(e).__name__, e)
        self._ack(name, ctr, code, detail)

    # -- built-in commands
    def _cmd_ping(self, args):
        return "ok", {"up_s": self.uptime_s()}

    def _cmd_reboot(self, args):
        self.spawn(self._reboot(), "reboot")
        return "ok", None

    async def _reboot(self):
        self.log.warn("reboot requested by command")
        m = self.mqtt
        t0 = ticks_ms()
        # Let the ack (and what is queued before it) leave first, for at most 3 s.
        while m is not None and (m.queued() or m.in_flight()) and ticks_diff(ticks_ms(), t0) < 3000:
            await sleep_ms(50)
        self.hal.reset()

    def _cmd_log_level(self, args):
        from roadedge.core import builtin_cmds

        return builtin_cmds.log_level(self, args)

    async def _cmd_selftest(self, args):
        from roadedge.core import builtin_cmds

        return await builtin_cmds.selftest(self, args)

    def _install_builtins(self):
        self.on_command("ping", self._cmd_ping)
        self.on_command("reboot", self._cmd_reboot)
        self.on_command("log_level", self._cmd_log_level)
        self.on_command("selftest", self._cmd_selftest)

    async def shutdown(self):
        """Cancel every task, say offline (the will is not sent on a clean
        disconnect, the client publishes it itself), close the HAL."""
        if self._shut:
            return
        self._shut = True
        m = self.mqtt
        me = asyncio.current_task() if hasattr(asyncio, "current_task") else None
        tasks = [t for t in self._tasks if t is not me]
        if m is not None:
            m.close()
            mt = self._mqtt_task
            if mt is not None:
                if m.is_connected():  # up to 2 s for its farewell and DISCONNECT
                    await _settle((mt,), 2000)
                tasks.append(mt)
        for t in tasks:
            t.cancel()
        await _settle(tasks, 1000)
        self._tasks = []
        close = getattr(self.hal, "close", None)
        if close:
            try:
                close()
            except Exception:
                pass


async def _settle(tasks, ms):
    """Wait up to ms for tasks to be done, by polling. Not `await task` nor
    wait_for(task): after Ctrl-C has broken out of the unix port's event loop,
    shutdown runs in a new asyncio.run() and either can wait forever there."""
    t0 = ticks_ms()
    while ticks_diff(ticks_ms(), t0) < ms:
        for t in tasks:
            if not t.done():
                break
        else:
            return
        await sleep_ms(20)


async def _ntp(dev):
    """Boards only: NTP every hour (blocking UDP with a 1 s timeout, the
    ntptime module's way); the clock ranks NTP above the broker beacon."""
    try:
        import ntptime  # type: ignore
    except ImportError:
        return
    ntptime.host = dev.params["ntp"]
    while True:
        try:
            t = ntptime.time()
            # ntptime.time() is seconds since the port's epoch (2000 on some ports)
            if t < 946684800:
                t += 946684800
            dev.clock.set(t * 1000, "ntp")
            dev.hal.set_rtc(t)
            delay = 3600000
        except (OSError, OverflowError):
            dev.count("ntp_fail")
            delay = 60000
        await sleep_ms(delay)


def _start_role(dev):
    if dev.role == "base":
        return
    gc_collect()  # the role import is the biggest burst of allocations after boot: give it a collected heap
    mod = __import__("roadedge." + dev.role + ".app", None, None, ["start"])
    r = mod.start(dev)
    if r is not None and hasattr(r, "send"):
        dev.spawn(r, dev.role)


def _install_sigterm(dev):
    if IS_MICROPYTHON:
        return  # the unix port has no signal module; SIGTERM ends it and the broker sends the will
    try:
        import signal

        asyncio.get_event_loop().add_signal_handler(signal.SIGTERM, dev.stop)  # type: ignore[attr-defined]
    except (ImportError, NotImplementedError, RuntimeError, AttributeError):
        pass


async def open_device(cfg, cfg_hash="", hal=None, link=None, data_dir=DATA_DIR):
    """A Device for a loaded config with its HAL open and started (call
    `await dev.run()`). The in-process simulator passes link (a DirectLink to
    a DeviceHW) and a data_dir per device; on a board data_dir is /data."""
    boot = _boot()
    boot.check_config(cfg)
    params = boot.platform_params(cfg)
    return await _open(cfg, cfg_hash, hal, link, data_dir, params, make_mqtt(boot.mqtt_spec(cfg, cfg["id"], params)))


async def _open(cfg, cfg_hash, hal, link, data_dir, params, mqtt):
    """open_device() for a config already checked, with its params and client."""
    from roadedge.core import state
    from roadedge.core.clock import Clock
    from roadedge.core.log import Log

    clock = Clock()
    log = Log(params["log_capacity"], level=params["log_level"], clock=clock)
    state.ensure_dir(data_dir)
    if hal is None:
        from roadedge import hal as hal_mod

        hal = hal_mod.open(cfg, link)
    await hal.start()
    return Device(cfg, hal, clock, log, data_dir, cfg_hash, mqtt, params)


async def run_device(cfg, cfg_hash="", hal=None, link=None, data_dir=DATA_DIR, sigterm=False):
    """Run one device from a loaded config until dev.stop(); returns its exit code."""
    dev = await open_device(cfg, cfg_hash, hal, link, data_dir)
    if sigterm:
        _install_sigterm(dev)
        _running.append(dev)
    return await dev.run()


async def _main(cfg_path):
    boot = _boot()
    cfg = await boot.load_or_idle(cfg_path)
    if cfg is None:
        return 2
    params = boot.platform_params(cfg)
    spec = boot.mqtt_spec(cfg, cfg["id"], params)
    cfg_hash = boot.file_hash(cfg_path)
    # Boot code and the config checks are done with: free them before the
    # client's buffers and the HAL are allocated (a role that needs
    # config.section imports it again).
    del boot
    _drop("roadedge.core.boot", "roadedge.core.config_check", "roadedge.core.config")
    dev = await _open(cfg, cfg_hash, None, None, DATA_DIR, params, make_mqtt(spec))
    del spec
    _install_sigterm(dev)
    _running.append(dev)
    return await dev.run()


_running = []  # the process's own device, for a clean stop after Ctrl-C


def main(cfg_path="config.json"):
    try:
        code = asyncio.run(_main(cfg_path))
    except KeyboardInterrupt:
        # MicroPython leaves the loop at once on Ctrl-C (SIGINT): run the
        # shutdown (offline + DISCONNECT) in a fresh run of the loop.
        for dev in _running:
            try:
                asyncio.run(dev.shutdown())
            except BaseException:
                pass
        print("roadedge: stopped")
        code = 130
    except Exception as e:
        if type(e).__name__ == "ConfigError":  # (core.config may be dropped by now)
            print("roadedge: cannot start: %s" % e)
            code = 2
            return _exit(code)
        # Anything else that escapes: on a board, report and reboot after a
        # pause (the watchdog may be quicker) rather than sit in the REPL.
        print("roadedge: crashed: %s: %s" % (type(e).__name__, e))
        if not ON_BOARD:
            raise
        import time

        time.sleep(10)
        from roadedge import hal

        hal.reset_board()
        code = 1
    return _exit(code)


def _exit(code):
    if not ON_BOARD and code:
        sys.exit(code)
    return code
