# Boot-time config checks: loading the file, the fields every device needs and
# the broker URL. core.config forwards to this module on use and the device
# drops both after boot, so these checks do not stay on a running device's heap.
import json

from roadedge import wire
from roadedge.core.config import ConfigError, _tname, get, require

ROLES = wire.ROLES
BOARDS = ("pico_w", "esp32", "sim")


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
    require(wire.valid_id(dev), "id", "must be 1-64 characters without / + # : or spaces, not one of %s nor "
            "starting %s (got %r)" % (", ".join(wire.RESERVED_IDS + wire.SERVICES), wire.ZONE_ACCOUNT_PREFIX, dev))
    role = cfg.get("role")
    require(role in ROLES, "role", "must be one of %s (got %r)" % (", ".join(ROLES), role))
    board = cfg.get("board")
    require(board in BOARDS, "board", "must be one of %s (got %r)" % (", ".join(BOARDS), board))
    broker = cfg.get("broker")
    require(isinstance(broker, dict), "broker", "missing broker object")
    tls = parse_broker_url(get(cfg, "broker.url"))[3]
    # without a CA the device would accept any server and send it its password: fail closed,
    # on every board (the sim board too: its TLS path is the same code and tests give it a CA)
    ca = broker.get("ca")
    require(not tls or (isinstance(ca, str) and bool(ca)), "broker.ca",
            "missing: an mqtts:// broker needs the CA certificate file (DER); refusing to start")
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
