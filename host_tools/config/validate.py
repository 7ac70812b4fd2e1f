"""Load a board config, check it against the schema and the board's and role's
rules, and merge its secrets.

Every problem names the file, the field (dotted path) and what is wrong, so a
technician can fix it on the laptop instead of on the guardrail.
"""
from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema

from host_tools.config import boards, fit, roles
from host_tools.config.secrets import Secrets, secret_name

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "board_configs" / "schema.json"
SECRET_FIELDS = (("broker", "password"), ("command_key",), ("network", "password"))
KEY_HEX = re.compile(r"^[0-9a-f]{64,128}$")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class Problem:
    file: str
    field: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        kind = "warning" if self.warning else "error"
        return f"{self.file}: {kind}: {self.field or '(top level)'}: {self.message}"


class ConfigError(Exception):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


_schema_cache: dict | None = None


def schema() -> dict:
    global _schema_cache
    if _schema_cache is None:
        _schema_cache = json.loads(SCHEMA_PATH.read_text())
    return _schema_cache


def _dotted(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _schema_message(err: jsonschema.ValidationError) -> tuple[str, str]:
    field = _dotted(err.absolute_path)
    v = err.validator
    if v == "required":
        m = re.search(r"'([^']+)' is a required property", err.message)
        name = m.group(1) if m else "?"
        return (f"{field}.{name}" if field else name), "missing (required)"
    if v == "additionalProperties":
        m = re.findall(r"'([^']+)'", err.message)
        extra = [x for x in m if x not in (err.schema.get("properties") or {})]
        names = extra or m
        return (f"{field}.{names[0]}" if field else names[0]) if names else field, \
            "unknown field (allowed: " + ", ".join(sorted(err.schema.get("properties", {}))) + ")"
    if v == "type":
        return field, f"must be {err.validator_value}, got {type(err.instance).__name__} {err.instance!r}"
    if v == "enum":
        return field, f"{err.instance!r} is not one of {', '.join(map(repr, err.validator_value))}"
    if v == "const":
        return field, f"must be {err.validator_value!r}"
    if v == "pattern":
        return field, f"{err.instance!r} does not match the expected form {err.validator_value!r}"
    if v in ("minimum", "maximum"):
        return field, f"{err.instance!r} is out of range ({v} {err.validator_value})"
    if v in ("minLength", "maxLength"):
        return field, f"{err.instance!r} has the wrong length ({v} {err.validator_value})"
    if v == "propertyNames":
        return field, f"bad name: {err.message}"
    return field, err.message


def _check_pins(cfg: dict, board: boards.Board, spec: roles.RoleSpec | None, add) -> None:
    pins = cfg.get("pins") or {}
    uarts = cfg.get("uarts") or {}
    owner: dict[int, str] = {}

    def claim(gpio: int, field: str) -> None:
        if gpio in owner:
            add(field, f"GPIO {gpio} is already used by {owner[gpio]}")
            return
        owner[gpio] = field
        if board.name == "sim":
            return
        if gpio in board.reserved:
            add(field, f"GPIO {gpio} {board.reserved[gpio]} on {board.name}; pick another pin")
        elif gpio not in board.gpio:
            add(field, f"GPIO {gpio} does not exist or cannot be used on {board.name}")

    for fn, gpio in pins.items():
        field = f"pins.{fn}"
        claim(gpio, field)
        kind = spec.pins.get(fn) if spec else None
        if board.name == "sim" or kind is None:
            continue
        if kind in ("out", "pwm") and gpio in board.input_only:
            add(field, f"GPIO {gpio} is input-only on {board.name}; '{fn}' is driven as {kind}")
        if kind == "adc" and gpio not in board.adc:
            add(field, f"GPIO {gpio} has no usable ADC on {board.name} (ADC pins: "
                       f"{', '.join(map(str, sorted(board.adc)))})")
    used_ids: dict[int, str] = {}
    for fn, u in uarts.items():
        field = f"uarts.{fn}"
        uid = u.get("id")
        if uid in used_ids:
            add(f"{field}.id", f"UART {uid} is already used by {used_ids[uid]}")
        used_ids[uid] = field
        if uid in board.uart_reserved:
            add(f"{field}.id", f"{board.uart_reserved[uid]} on {board.name}; use UART "
                              f"{' or '.join(map(str, sorted(board.uart_pins)))}")
        elif uid not in board.uart_pins:
            add(f"{field}.id", f"{board.name} has no UART {uid} (has {sorted(board.uart_pins)})")
        allowed = board.uart_pins.get(uid)
        for end, idx in (("tx", 0), ("rx", 1)):
            gpio = u.get(end)
            claim(gpio, f"{field}.{end}")
            if allowed is not None and gpio not in allowed[idx]:
                add(f"{field}.{end}", f"GPIO {gpio} cannot be UART{uid} {end.upper()} on {board.name} "
                                      f"(possible: {', '.join(map(str, sorted(allowed[idx])))})")
            if end == "tx" and gpio in board.input_only:
                add(f"{field}.tx", f"GPIO {gpio} is input-only on {board.name}; it cannot transmit")
    for kind in ("spi", "i2c"):
        buses = board.bus_pins.get(kind, {})
        for fn, bus in (cfg.get(kind) or {}).items():
            field = f"{kind}.{fn}"
            bid = bus.get("id")
            if bid not in buses:
                add(f"{field}.id", f"{board.name} has no {kind.upper()} {bid} (has {sorted(buses)})")
                continue
            allowed = buses[bid]
            for sig in ("sck", "mosi", "miso", "cs", "scl", "sda"):
                if sig not in bus:
                    continue
                gpio = bus[sig]
                claim(gpio, f"{field}.{sig}")
                if allowed is not None and sig in allowed and gpio not in allowed[sig]:
                    add(f"{field}.{sig}", f"GPIO {gpio} cannot be {kind.upper()}{bid} {sig.upper()} on {board.name} "
                                          f"(possible: {', '.join(map(str, sorted(allowed[sig])))})")
                if sig in ("sck", "mosi", "cs", "scl", "sda") and gpio in board.input_only:
                    add(f"{field}.{sig}", f"GPIO {gpio} is input-only on {board.name}; {sig.upper()} must drive")
    if spec is None:
        return
    for fn, kind in sorted(spec.buses.items()):
        if fn not in (cfg.get(kind) or {}) and fn not in spec.optional:
            add(f"{kind}.{fn}", f"missing: role '{spec.name}' uses this {kind.upper()} bus")
    for fn, kind in sorted(spec.pins.items()):
        if fn not in pins and fn not in spec.optional:
            add(f"pins.{fn}", f"missing: role '{spec.name}' drives this pin ({kind})")
    for fn in sorted(spec.uarts):
        if fn not in uarts and fn not in spec.optional:
            add(f"uarts.{fn}", f"missing: role '{spec.name}' uses this UART")
    if spec.pins or spec.uarts:
        for fn in pins:
            if fn not in spec.pins:
                add(f"pins.{fn}", f"not a pin function of role '{spec.name}' "
                                  f"(known: {', '.join(sorted(spec.pins)) or 'none'})")
        for fn in uarts:
            if fn not in spec.uarts:
                add(f"uarts.{fn}", f"not a UART function of role '{spec.name}' "
                                   f"(known: {', '.join(sorted(spec.uarts)) or 'none'})")


def _check_broker(cfg: dict, add, warn) -> None:
    b = cfg.get("broker") or {}
    url = b.get("url")
    if isinstance(url, str):
        try:
            u = urlsplit(url)
            port = u.port
        except ValueError as e:
            add("broker.url", f"{url!r} is not a valid URL ({e})")
            return
        if u.scheme not in ("mqtt", "mqtts"):
            add("broker.url", f"{url!r}: scheme must be mqtt:// or mqtts://")
        elif not u.hostname:
            add("broker.url", f"{url!r} has no host")
        elif u.path not in ("", "/") or u.query or u.username:
            add("broker.url", f"{url!r}: give only scheme://host:port (user and password have their own fields)")
        elif port == 0:
            add("broker.url", f"{url!r}: port 0 is not a broker port")
        elif u.scheme == "mqtts" and not b.get("ca"):  # the firmware refuses it too (core.config_check)
            add("broker.ca", "missing: an mqtts:// broker needs the CA certificate file (DER) for the device")
        elif u.scheme == "mqtt" and u.hostname not in LOOPBACK and cfg.get("board") != "sim":
            warn("broker.url", "plain mqtt:// to a remote broker sends the password in clear; prefer mqtts://")
    if b.get("user") is not None and cfg.get("id") is not None and b.get("user") != cfg.get("id"):
        add("broker.user", f"{b.get('user')!r} must equal the device id {cfg.get('id')!r} "
                           "(the broker ACL is keyed on the username)")


def _type_ok(value, default) -> bool:
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, (list, tuple)):
        return isinstance(value, list)
    return isinstance(value, type(default))


def _check_role(cfg: dict, spec: roles.RoleSpec | None, add) -> None:
    role = cfg.get("role")
    for other in roles.ROLES:
        if other != role and other in cfg:
            add(other, f"section for role '{other}' in a '{role}' config")
    if not spec or role not in cfg:
        return
    section = cfg[role]
    if not spec.defaults:
        return
    for k, v in section.items():
        if k not in spec.defaults:
            add(f"{role}.{k}", f"unknown parameter for role '{role}' (known: {', '.join(sorted(spec.defaults))})")
        elif not _type_ok(v, spec.defaults[k]):
            d = spec.defaults[k]
            add(f"{role}.{k}", f"must be {type(d).__name__} like the default {d!r}, got {type(v).__name__} {v!r}")


def _check_platform(cfg: dict, board: boards.Board, lib: Path, add) -> None:
    wd = cfg.get("watchdog_ms")
    if isinstance(wd, int) and 0 < wd < 1000:
        add("watchdog_ms", f"{wd} is too short to boot; use 0 (off) or 1000..60000")
    elif isinstance(wd, int) and board.watchdog_max_ms and wd > board.watchdog_max_ms:
        add("watchdog_ms", f"{wd} exceeds the {board.name} watchdog maximum of {board.watchdog_max_ms} ms")
    spec = roles.platform_spec(lib)
    if not spec.defaults:  # the firmware moved its defaults: say so rather than wave every key through
        if cfg.get("device"):
            add("device", f"cannot check platform parameters: no DEFAULTS found in {lib}/roadedge/core/boot.py")
        return
    for k, v in (cfg.get("device") or {}).items():
        if k not in spec.defaults:
            add(f"device.{k}", f"unknown platform parameter (known: {', '.join(sorted(spec.defaults))})")
        elif not _type_ok(v, spec.defaults[k]):
            d = spec.defaults[k]
            add(f"device.{k}", f"must be {type(d).__name__} like the default {d!r}, got {type(v).__name__} {v!r}")


def _resolve_secrets(cfg: dict, secrets: Secrets | None, add, literal_ok: bool) -> None:
    dev = cfg.get("id", "")
    for path in SECRET_FIELDS:
        parent = cfg
        for p in path[:-1]:
            parent = parent.get(p) if isinstance(parent, dict) else None
        if not isinstance(parent, dict) or path[-1] not in parent:
            continue
        value = parent[path[-1]]
        field = ".".join(path)
        name = secret_name(value)
        if name is None:
            if not literal_ok and isinstance(value, str):
                add(field, 'a literal secret in a board config; write "!secret <name>" and keep the value in the '
                           "git-ignored secrets folder")
            resolved = value
        else:
            if secrets is None:
                continue  # validating without secrets: references are checked at flash time
            resolved = secrets.lookup(dev, name)
            if resolved is None:
                add(field, f"missing secret {name!r} for device {dev!r} (looked in {secrets.where()}; "
                           f"run `roadedge provision {dev}` or add it to site.json)")
                continue
            parent[path[-1]] = resolved
        if path == ("command_key",) and isinstance(resolved, str) and not KEY_HEX.match(resolved):
            add(field, "command key must be 64-128 lowercase hex characters (32-64 bytes)")


def check(raw: dict, file: str, secrets: Secrets | None = None, literal_secrets_ok: bool = False,
          firmware_lib: Path | None = None, force: bool = False) -> tuple[dict, list[Problem]]:
    """Validate one parsed config; return (merged config, problems). The input is not modified.
    force: a role over the board's heap budget is a warning instead of an error."""
    problems: list[Problem] = []

    def add(field, msg):
        problems.append(Problem(file, field, msg))

    def warn(field, msg):
        problems.append(Problem(file, field, msg, warning=True))

    cfg = copy.deepcopy(raw)
    if not isinstance(cfg, dict):
        add("", "a board config is a JSON object")
        return cfg, problems
    validator = jsonschema.Draft202012Validator(schema())
    for err in sorted(validator.iter_errors(cfg), key=lambda e: list(map(str, e.absolute_path))):
        if err.validator in ("if", "allOf"):
            continue
        field, msg = _schema_message(err)
        add(field, msg)
    if any(not p.warning for p in problems):
        return cfg, problems  # semantic checks assume the shape is right
    board = boards.BOARDS[cfg["board"]]
    lib = firmware_lib or roles.fw.FIRMWARE_LIB
    spec = roles.role_spec(cfg["role"], lib) if cfg["role"] != "base" else None
    if spec is not None and not spec.sources:
        add("role", f"role '{cfg['role']}' has no firmware in {lib / 'roadedge' / cfg['role']}")
        spec = None
    if board.name != "sim" and "sim" in cfg:
        add("sim", f"the sim section only applies to board 'sim', not {board.name!r}")
    _check_pins(cfg, board, spec, add)
    _check_broker(cfg, add, warn)
    _check_role(cfg, spec, add)
    _check_platform(cfg, board, lib, add)
    fit.check(cfg, add, warn, force)
    _resolve_secrets(cfg, secrets, add, literal_secrets_ok)
    return cfg, problems


def load(path: str | Path, secrets: Secrets | None = None, broker_url: str | None = None,
         literal_secrets_ok: bool = False, firmware_lib: Path | None = None,
         force: bool = False, deploy: str | None = None) -> tuple[dict, list[Problem]]:
    """Read and check a board config file; raise ConfigError on any error (warnings are returned).
    broker_url, deploy: override the file's (as `flash --broker/--deploy` do)."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError([Problem(file, "", f"cannot read: {e.strerror}")]) from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError([Problem(file, f"line {e.lineno} column {e.colno}", f"not valid JSON: {e.msg}")]) from None
    if broker_url and isinstance(raw, dict):
        raw.setdefault("broker", {})
        if isinstance(raw["broker"], dict):
            raw["broker"]["url"] = broker_url
    if deploy and isinstance(raw, dict):
        raw["deploy"] = deploy
    cfg, problems = check(raw, file, secrets, literal_secrets_ok, firmware_lib, force)
    errors = [p for p in problems if not p.warning]
    if errors:
        raise ConfigError(problems)
    return cfg, problems
