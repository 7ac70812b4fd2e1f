# Device configuration: load /config.json, read fields by dotted path, merge a
# role's parameters over the firmware defaults with type checks, parse the
# broker URL (the boot-only checks live in core.config_check, imported on
# use). Every problem raises ConfigError naming the field, so a device
# refuses to start with a message a technician can act on.


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


def load(path="config.json"):
    """Read and parse the config file; the top level must be a JSON object."""
    from roadedge.core import config_check

    return config_check.load(path)


def parse_broker_url(url):
    """mqtt://host[:port] or mqtts://host[:port] (IPv6 as [addr]) ->
    (scheme, host, port, tls)."""
    from roadedge.core import config_check

    return config_check.parse_broker_url(url)


def check_device(cfg):
    """Validate the fields every device needs before it starts a role; returns
    (id, role, board)."""
    from roadedge.core import config_check

    return config_check.check_device(cfg)
