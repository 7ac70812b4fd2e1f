# The device contract, defined once: topics and their kinds, reserved ids, the
# roles, the event/ack envelopes, the Art. 81 ladder and payload field names
# (the broker access table beside it: roadedge.wire_access, which no device imports).
# Firmware, host tools and the simulator all build and parse topics through this
# module (docs/topics.md describes the same tree), so a producer and its
# consumers cannot drift apart. Pure, tiny, MicroPython-safe: every device
# imports it, so what only hosts need does not belong here.

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

# Device and zone-controller ids may not take a service's account name: a zone
# controller's is this prefix + its zone (the access table: roadedge.wire_access).
ZONE_ACCOUNT_PREFIX = "controller-"


def valid_name(name, limit=64):
    """A name usable as one topic level, MQTT user name and client id (limit characters at most)."""
    if not isinstance(name, str) or not 0 < len(name) <= limit:
        return False
    for c in name:
        if c in "+#/ :":
            return False
    return True


def valid_id(dev_id):
    """A device id usable as MQTT client id, user name and topic level (not a service's account)."""
    if not valid_name(dev_id):
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
