# Boot-only half of the device app: platform parameters with their defaults
# and ranges, the config checks and the MQTT client's arguments. core.app
# imports it inside functions and, on the real boot path, drops it (and
# core.config) from sys.modules before the client and the HAL are allocated,
# so none of this stays on the heap while the device runs.
import sys

from roadedge import wire
from roadedge.core import config

ROLES = wire.ALL_ROLES

# Platform parameters: cfg["device"], every one with a default here; plus the
# board config's top-level "watchdog_ms" and "log": {"level", "mqtt"}.
WATCHDOG_MS = 8000  # hardware watchdog timeout; rp2 caps at 8388
LOG_DEFAULTS = {"level": "I", "mqtt": True}
DEFAULTS = {
    "tele_s": 60,  # telemetry period
    "log_capacity": 32,  # records kept on the device
    "log_queue": 8,  # records waiting to go out over MQTT (beyond: dropped, counted)
    "mqtt_queue": 16,  # MQTT outbound queue slots
    "mqtt_max_packet": 2560,  # largest MQTT packet either way (a signed command is <= 2 KiB)
    "mqtt_window": 4,  # QoS 1 in flight
    "cmd_queue": 4,  # commands waiting to run (beyond: dropped, counted)
    # Reset (via the watchdog) after this long without the broker while the
    # network link is up (0 = never): longer than a broker restart or the
    # client's 30 s backoff cap, and than a sign's 2-minute comm-loss timer
    # (a sign already shows its comm-loss message when it resets), short
    # enough that a wedged roadside box is back within ~10 minutes unattended.
    "offline_reset_s": 600,
    "stall_ms": 5000,  # main loop heartbeat older than this = unhealthy (watchdog not fed)
    "ntp": "",  # NTP host on boards ("" = none; the broker time beacon is always used)
}
_RANGES = (("tele_s", 1, 86400), ("mqtt_queue", 1, 256), ("mqtt_window", 1, 16),
           ("mqtt_max_packet", 512, 16384), ("cmd_queue", 1, 16), ("log_capacity", 1, 256),
           ("log_queue", 1, 64), ("offline_reset_s", 0, 604800), ("stall_ms", 1, 600000))
LOG_LEVELS = "DIWE"
ON_BOARD = sys.platform in ("rp2", "esp32")


def file_hash(path):
    """First 12 hex digits of the file's SHA-256 ("" when unreadable)."""
    try:
        import hashlib
        import binascii

        h = hashlib.sha256()
        with open(path, "rb") as f:
            while True:
                b = f.read(256)
                if not b:
                    break
                h.update(b)
        return binascii.hexlify(h.digest()).decode()[:12]
    except (OSError, ImportError):
        return ""


def platform_params(cfg):
    """cfg["device"] over DEFAULTS, with watchdog_ms and the log settings
    (log_level; log_mqtt = the level forwarded over MQTT, "" = none)."""
    p = config.section(cfg, "device", DEFAULTS)
    for k, lo, hi in _RANGES:
        config.in_range(p, "device", k, lo, hi)
    lg = config.section(cfg, "log", LOG_DEFAULTS)
    lvl = lg["level"]
    config.require(type(lvl) is str and len(lvl) == 1 and lvl in LOG_LEVELS, "log.level", "must be one of D I W E")
    p["log_level"] = lvl
    p["log_mqtt"] = lvl if lg["mqtt"] else ""
    w = cfg.get("watchdog_ms", WATCHDOG_MS)
    config.require(type(w) is int, "watchdog_ms", "expected int, got %r" % (w,))
    w = int(w)
    config.require(w == 0 or 1000 <= w <= 60000, "watchdog_ms", "must be 0 (off) or 1000..60000")
    p["watchdog_ms"] = w
    return p


def check_config(cfg):
    """Validate what the platform needs; returns (id, role, board). Role "base"
    (platform only) is accepted here besides the roles config.check_device knows."""
    c = cfg
    if cfg.get("role") == "base":
        c = dict(cfg)
        c["role"] = "sign"  # any role check_device knows
    dev, _role, board = config.check_device(c)
    config.require(cfg.get("role") in ROLES, "role", "must be one of %s" % ", ".join(ROLES))
    return dev, cfg["role"], board


def load_checked(cfg_path):
    """The config file loaded and fully checked (ConfigError otherwise)."""
    cfg = config.load(cfg_path)
    check_config(cfg)
    platform_params(cfg)
    return cfg


def mqtt_spec(cfg, dev_id, params):
    """The MQTTClient arguments (args, kwargs) for a checked config: plain
    data, so the client can be built after this module is dropped."""
    _scheme, host, port, tls = config.parse_broker_url(config.get(cfg, "broker.url"))
    b = cfg["broker"]
    status = wire.topic(dev_id, wire.STATUS)
    return (dev_id, host, port), {
        "user": b.get("user") or dev_id, "password": b.get("password"), "keepalive": b.get("keepalive", 30),
        "tls": tls, "ca": b.get("ca"), "clean": b.get("clean", True),
        "will": (status, b"offline", 1, True), "birth": (status, b"online", 1, True),
        "queue_size": params["mqtt_queue"], "window": params["mqtt_window"], "max_packet": params["mqtt_max_packet"]}


async def load_or_idle(cfg_path):
    """The checked config, or None after printing why it cannot start. On a
    board a bad config must not crash-loop: report every 30 s and retry the
    file (a technician may upload a fixed one)."""
    from roadedge.core.compat import sleep_ms

    try:
        return load_checked(cfg_path)
    except config.ConfigError as e:
        err = e
    if not ON_BOARD:
        print("roadedge: cannot start: %s" % err)
        return None
    while True:
        print("roadedge: cannot start: %s (retrying in 30 s)" % err)
        await sleep_ms(30000)
        try:
            return load_checked(cfg_path)
        except config.ConfigError as e:
            err = e
