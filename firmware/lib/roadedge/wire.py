# The device contract, defined once: topics and their kinds, reserved ids, the
# roles, the event/ack envelopes, the Art. 81 ladder, payload field names and
# the broker access table. Firmware, host tools and the simulator all build and
# parse topics through this module (docs/topics.md describes the same tree), so
# a producer and its consumers cannot drift apart. Pure, tiny, MicroPython-safe.

ROOT = "re"
OWNTRACKS = "owntracks"
OWNTRACKS_USER = "roadedge"  # owntracks/<user>/<device>: every roadedge tracker reports as this user

# Topic kinds a device publishes under re/<id>/...
STATUS = "status"
INFO = "info"
STATE = "state"
TELE = "tele"
EVENT = "event"
LOG = "log"
ACK = "ack"
DEVICE_KINDS = (STATUS, INFO, STATE, TELE, EVENT, LOG, ACK)
SEQ_KINDS = (TELE, EVENT, ACK)  # carry a per-device seq that never repeats
CMD = "cmd"  # re/<id>/cmd/<name>: commands to a device
# Kinds parse() returns besides DEVICE_KINDS
LOCATION = "location"  # owntracks/roadedge/<id>
COMMAND = CMD  # re/<id>/cmd/<name>
CTL_STATE = "ctl_state"  # re/ctl/<zone>/state
CTL_OP = "ctl_op"  # re/ctl/<zone>/op
SYS = "sys"  # re/sys/<name>

# Second-level names the host owns under re/: no device may have them as id.
SYS_ID = "sys"
CTL_ID = "ctl"
RESERVED_IDS = (SYS_ID, CTL_ID)
TIME_TOPIC = "re/sys/time"  # {"t": unix ms}: the broker time beacon (QoS 0, never retained: a stale time)

# Device roles ("base" = the platform alone, for bring-up and tests).
ROLES = ("sign", "beacon", "tracker")
BASE_ROLE = "base"
ALL_ROLES = ROLES + (BASE_ROLE,)
# Host service users; each logs in under its own name.
SERVICES = ("controller", "dispatcher", "ingest", "technician")

# Art. 81 (expressways): visibility below metres -> maximum km/h, worst first.
ART81 = ((50, 20), (100, 40), (200, 60))

# Payload field names read by more than one consumer (one spelling each).
F_SEQ = "seq"
F_TS = "ts"
F_TYPE = "type"
F_VIS = "vis_m"  # visibility in metres (beacon, sign, controller)
F_LIMIT = "limit"  # the limit a sign actually displays (null = blank)
F_DUTY = "duty"  # tracker duty status
DUTIES = ("patrol", "dispatched", "on_scene", "off_duty")

# Who may publish and subscribe to what: user -> (publish filters, subscribe
# filters). "{id}" stands for the device's own id. Every broker's ACL
# (Mosquitto file, embedded broker JSON) is generated from this table.
# A zone controller's entry has placeholders for its zone: "{zone}" is the zone
# id, a filter with "{sign}" stands for one filter per sign of the zone, one
# with "{source}" for one per device whose visibility feeds it (zone_access).
DEVICE_USER = "device"
ZONE_CONTROLLER = "zone-controller"  # one account per fog zone, named zone_account(zone)
ZONE_ACCOUNT_PREFIX = "controller-"
ACCESS = {
    DEVICE_USER: (("re/{id}/status", "re/{id}/info", "re/{id}/state", "re/{id}/tele", "re/{id}/event",
                   "re/{id}/log", "re/{id}/ack", "owntracks/roadedge/{id}"),
                  ("re/{id}/cmd/#", "re/sys/#")),
    # one fog zone's controller: commands its own signs only (set_limit, clear, heartbeat; it commands
    # no beacon), publishes its zone's state and the time beacon; reads its signs' reports and acks, its
    # sources' visibility and the operator actions for its zone (never another zone's, never re/#)
    ZONE_CONTROLLER: (("re/{sign}/cmd/#", "re/ctl/{zone}/state", TIME_TOPIC),
                      ("re/{sign}/state", "re/{sign}/tele", "re/{sign}/event", "re/{sign}/ack",
                       "re/{source}/state", "re/{source}/tele", "re/{source}/event", "re/ctl/{zone}/op")),
    # the one account of a single-zone set-up (any zone, every sign): a deployment with several zones
    # gives each its own zone-controller account instead (two processes under one account displace
    # each other at the broker)
    "controller": (("re/+/cmd/#", "re/sys/#", "re/ctl/#"), ("re/#",)),
    # dispatcher console: commands trackers, sends operator actions to the controller
    "dispatcher": (("re/+/cmd/#", "re/ctl/+/op"), ("re/#", "owntracks/#")),
    # ingest-only workers (store what devices report): read, never write; in particular never
    # re/ctl/+/op, so holding their password does not let anyone act on the signs
    "ingest": ((), ("re/#", "owntracks/#")),
    # technician's laptop (roadedge devices/logs/selftest/command)
    "technician": (("re/+/cmd/#",), ("re/#", "owntracks/#")),
}


def access(user, dev_id=None):
    """(publish, subscribe) filters for a service user, or for device dev_id."""
    if user != DEVICE_USER:
        return ACCESS[user]
    pub, sub = ACCESS[DEVICE_USER]
    return (tuple(f.replace("{id}", dev_id) for f in pub), tuple(f.replace("{id}", dev_id) for f in sub))


def zone_account(zone):
    """The broker account (user name and client id) of one fog zone's controller."""
    return ZONE_ACCOUNT_PREFIX + zone


def _expand(filters, zone, signs, sources):
    out = []
    for f in filters:
        f = f.replace("{zone}", zone)
        if "{sign}" in f:
            new = [f.replace("{sign}", s) for s in signs]
        elif "{source}" in f:
            new = [f.replace("{source}", s) for s in sources]
        else:
            new = [f]
        for t in new:
            if t not in out:
                out.append(t)
    return tuple(out)


def zone_access(zone, signs, sources=()):
    """(publish, subscribe) filters of zone's controller account, for its signs and the devices whose
    visibility it reads (a sign with its own meter may be both)."""
    pub, sub = ACCESS[ZONE_CONTROLLER]
    return _expand(pub, zone, signs, sources), _expand(sub, zone, signs, sources)


def _plain(name, limit):
    if not isinstance(name, str) or not 0 < len(name) <= limit:
        return False
    for c in name:
        if c in "+#/ :":
            return False
    return True


def valid_zone(zone):
    """A zone id usable as topic level and, behind ZONE_ACCOUNT_PREFIX, as user name and client id."""
    return _plain(zone, 64 - len(ZONE_ACCOUNT_PREFIX))


def valid_id(dev_id):
    """A device id usable as MQTT client id, user name and topic level (not a service's account)."""
    if not _plain(dev_id, 64):
        return False
    if dev_id in RESERVED_IDS or dev_id in SERVICES or dev_id.startswith(ZONE_ACCOUNT_PREFIX):
        return False
    return True


# ---- topic builders
def topic(dev_id, kind, *rest):
    """re/<id>/<kind>[/<rest>...]"""
    t = ROOT + "/" + dev_id + "/" + kind
    for r in rest:
        t += "/" + str(r)
    return t


def cmd_topic(dev_id, name):
    return ROOT + "/" + dev_id + "/" + CMD + "/" + name


def location_topic(dev_id):
    return OWNTRACKS + "/" + OWNTRACKS_USER + "/" + dev_id


def ctl_topic(zone, kind):
    """re/ctl/<zone>/<kind>, kind "state" or "op"."""
    return ROOT + "/" + CTL_ID + "/" + zone + "/" + kind


def every(kind):
    """Subscription filter for one kind of every device: re/+/<kind>."""
    return ROOT + "/+/" + kind


def device_filter(dev_id):
    return ROOT + "/" + dev_id + "/#"


ALL_DEVICES = ROOT + "/#"
ALL_LOCATIONS = OWNTRACKS + "/#"
ALL_CTL_STATE = ROOT + "/" + CTL_ID + "/+/state"


# ---- topic parser
def parse(t):
    """(kind, id, name) for a topic of the tree, or None. kind is one of
    DEVICE_KINDS, COMMAND (name = the command), LOCATION, CTL_STATE, CTL_OP
    (id = the zone) or SYS (id = the sys topic's name)."""
    p = t.split("/")
    n = len(p)
    if p[0] == OWNTRACKS:
        if n == 3 and p[1] == OWNTRACKS_USER and p[2]:
            return LOCATION, p[2], ""
        return None
    if p[0] != ROOT or n < 3 or not p[1] or not p[2]:
        return None
    if p[1] == SYS_ID:
        return (SYS, p[2], "") if n == 3 else None
    if p[1] == CTL_ID:
        if n == 4 and p[3] == "state":
            return CTL_STATE, p[2], ""
        if n == 4 and p[3] == "op":
            return CTL_OP, p[2], ""
        return None
    if p[2] == CMD:
        return (COMMAND, p[1], p[3]) if n == 4 and p[3] else None
    if n == 3 and p[2] in DEVICE_KINDS:
        return p[2], p[1], ""
    return None


# ---- envelopes
def event(seq, ts, kind, fields=None):
    """re/<id>/event payload: {"seq", "ts", "type", ...fields}."""
    e = {F_SEQ: seq, F_TS: ts, F_TYPE: kind}
    if fields:
        e.update(fields)
    return e


def ack(seq, ts, cmd, ctr, code, detail):
    """re/<id>/ack payload."""
    return {F_SEQ: seq, F_TS: ts, "cmd": cmd, "ctr": ctr, "ok": code == "ok", "code": code, "detail": detail}


def art81_limit(vis_m):
    """The Art. 81 maximum speed for a visibility (None = no fog limit)."""
    if vis_m is None:
        return None
    for m, kmh in ART81:
        if vis_m < m:
            return kmh
    return None
