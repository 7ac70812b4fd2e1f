# Device configuration: load /config.json, read fields by dotted path, merge a
# role's parameters over the firmware defaults with type checks, parse the
# broker URL. Every problem raises ConfigError naming the field, so a device
# refuses to start with a message a technician can act on.
import json

ROLES = ("sign", "beacon", "tracker")
BOARDS = ("pico_w", "esp32", "sim")


class ConfigError(Exception):
    """A configuration problem. `.field` is the dotted path ("beacon.tail_m",
    "broker.url", or "" for the file as a whole)."""

    def __init__(self, field, problem):
        self.field = field
        self.problem = problem
        if field:
            msg = "config field '%s': %s" % (field, problem)
        else:
            msg = "config: %s" % problem
        super().__init__(msg)


def load(path="config.json"):
    """Read and parse the config file; the top level must be a JSON object."""
    try:
        f = open(path)
    except OSError:
        raise ConfigError("", "file %s not found" % path)
    try:
        try:
            cfg = json.load(f)
        except ValueError as e:
            raise ConfigError("", "file %s is not valid JSON (%s)" % (path, e))
    finally:
        f.close()
    if not isinstance(cfg, dict):
        raise ConfigError("", "file %s must hold a JSON object, not %s" % (path, _tname(cfg)))
    return cfg


def get(cfg, path, default=None):
    """cfg value at a dotted path ("broker.keepalive"), or default when any
    step is missing or is not an object."""
    cur = cfg
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur


def _tname(v):
    if v is None:
        return "null"
    if type(v) is bool:
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "list"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def coerce(field, value, default):
    """value checked against the type of default; an int is accepted (and
    converted) where a float is expected, a bool is never taken for a number.
    A None default accepts anything."""
    if default is None:
        return value
    dt = type(default)
    if dt is bool:
        if type(value) is bool:
            return value
    elif dt is int:
        if type(value) is int:
            return value
    elif dt is float:
        if type(value) is float:
            return value
        if type(value) is int:
            return float(value)
    elif dt is str:
        if isinstance(value, str):
            return value
    elif dt is list or dt is tuple:
        if isinstance(value, list):
            return value
    elif dt is dict:
        if isinstance(value, dict):
            return value
    else:
        return value
    raise ConfigError(field, "expected %s, got %s %r" % (_tname(default) if dt is not tuple else "list",
                                                        _tname(value), value))


def section(cfg, name, defaults):
    """The role parameters cfg[name] merged over defaults. Unknown keys and
    wrongly typed values raise ConfigError("name.key", ...). A default that is
    a non-empty dict is merged the same way, one level deeper; an empty dict
    default takes any object."""
    given = cfg.get(name) if isinstance(cfg, dict) else None
    if given is None:
        given = {}
    return _merge(name, given, defaults)


def _merge(prefix, given, defaults):
    if not isinstance(given, dict):
        raise ConfigError(prefix, "expected object, got %s" % _tname(given))
    out = {}
    for k in defaults:
        d = defaults[k]
        if isinstance(d, dict) and d:
            sub = given.get(k)
            out[k] = _merge(prefix + "." + k, {} if sub is None else sub, d)
        elif isinstance(d, dict):
            out[k] = dict(d)
        elif isinstance(d, list):
            out[k] = list(d)
        else:
            out[k] = d
    for k in given:
        field = prefix + "." + k if prefix else k
        if k not in defaults:
            raise ConfigError(field, "unknown parameter (known: %s)" % ", ".join(sorted(defaults)))
        d = defaults[k]
        if isinstance(d, dict) and d:
            continue  # merged above
        out[k] = coerce(field, given[k], d)
    return out


def require(ok, field, problem):
    """Raise ConfigError(field, problem) unless ok: for range and
    consistency checks after section()."""
    if not ok:
        raise ConfigError(field, problem)


def in_range(params, prefix, key, lo, hi):
    """Check lo <= params[key] <= hi; returns the value."""
    v = params[key]
    require(lo <= v <= hi, prefix + "." + key, "%r out of range %r..%r" % (v, lo, hi))
    return v


def parse_broker_url(url):
    """mqtt://host[:port] or mqtts://host[:port] (IPv6 as [addr]) ->
    (scheme, host, port, tls). Credentials belong in broker.user/password,
    not in the URL."""
    field = "broker.url"
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(field, "expected mqtt://host[:port] or mqtts://host[:port], got %r" % (url,))
    scheme, rest = url.split("://", 1)
    scheme = scheme.lower()
    if scheme == "mqtt":
        port, tls = 1883, False
    elif scheme == "mqtts":
        port, tls = 8883, True
    else:
        raise ConfigError(field, "scheme must be mqtt or mqtts, got %r" % scheme)
    if rest.endswith("/"):
        rest = rest[:-1]
    if "/" in rest or "?" in rest or "#" in rest:
        raise ConfigError(field, "no path allowed in %r" % url)
    if "@" in rest:
        raise ConfigError(field, "put credentials in broker.user and broker.password, not in the URL")
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise ConfigError(field, "unclosed '[' in %r" % url)
        host = rest[1:end]
        tail = rest[end + 1:]
        if tail and not tail.startswith(":"):
            raise ConfigError(field, "bad host in %r" % url)
        ptxt = tail[1:] if tail else ""
    elif ":" in rest:
        host, ptxt = rest.rsplit(":", 1)
    else:
        host, ptxt = rest, ""
    if not host:
        raise ConfigError(field, "missing host in %r" % url)
    if ptxt:
        try:
            port = int(ptxt)
        except ValueError:
            raise ConfigError(field, "bad port %r" % ptxt)
        if not 0 < port < 65536:
            raise ConfigError(field, "port %d out of range 1..65535" % port)
    return scheme, host, port, tls


def check_device(cfg):
    """Validate the fields every device needs before it starts a role; returns
    (id, role, board). Role parameters are checked by the role via section()."""
    dev = cfg.get("id")
    require(isinstance(dev, str) and 0 < len(dev) <= 64 and "/" not in dev and "+" not in dev and "#" not in dev,
            "id", "must be a non-empty string without / + # (got %r)" % (dev,))
    role = cfg.get("role")
    require(role in ROLES, "role", "must be one of %s (got %r)" % (", ".join(ROLES), role))
    board = cfg.get("board")
    require(board in BOARDS, "board", "must be one of %s (got %r)" % (", ".join(BOARDS), board))
    broker = cfg.get("broker")
    require(isinstance(broker, dict), "broker", "missing broker object")
    parse_broker_url(get(cfg, "broker.url"))
    ka = get(cfg, "broker.keepalive", 30)
    require(type(ka) is int and 5 <= ka <= 3600, "broker.keepalive", "must be an int 5..3600 (got %r)" % (ka,))
    key = cfg.get("command_key")
    if key is not None:
        require(not (isinstance(key, str) and key.startswith("!secret")), "command_key",
                "unresolved secret: flash with the secrets file")
        require(isinstance(key, str) and len(key) >= 32 and len(key) % 2 == 0 and _is_hex(key),
                "command_key", "must be hex text of at least 16 bytes")
    return dev, role, board


def _is_hex(s):
    for c in s:
        if c not in "0123456789abcdefABCDEF":
            return False
    return True
