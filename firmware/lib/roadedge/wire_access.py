# The broker access table, defined once: who may publish and subscribe to what.
# Every broker's ACL (the Mosquitto accounts file, any other broker the project
# runs) is generated from it by the host tools. Part of the contract beside
# roadedge.wire, in its own module because no device imports it: on a board
# these strings would only cost heap. MicroPython-safe all the same.
from roadedge import wire

# Who may publish and subscribe to what: user -> (publish filters, subscribe
# filters). "{id}" stands for the device's own id. Every broker's ACL
# (Mosquitto file, embedded broker JSON) is generated from this table.
# A zone controller's entry has placeholders for its zone: "{zone}" is the zone
# id, a filter with "{sign}" stands for one filter per sign of the zone, one
# with "{source}" for one per device whose visibility feeds it (zone_access).
DEVICE_USER = "device"
ZONE_CONTROLLER = "zone-controller"  # one account per fog zone, named zone_account(zone)
ACCESS = {
    DEVICE_USER: (("re/{id}/status", "re/{id}/info", "re/{id}/state", "re/{id}/tele", "re/{id}/event",
                   "re/{id}/log", "re/{id}/ack", "owntracks/roadedge/{id}"),
                  ("re/{id}/cmd/#", "re/sys/#")),
    # one fog zone's controller: commands its own signs only (set_limit, clear, heartbeat; it commands
    # no beacon), publishes its zone's state and the time beacon; reads its signs' reports and acks, its
    # sources' visibility and the operator actions for its zone (never another zone's, never re/#)
    ZONE_CONTROLLER: (("re/{sign}/cmd/#", "re/ctl/{zone}/state", wire.TIME_TOPIC),
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
    return wire.ZONE_ACCOUNT_PREFIX + zone


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


def valid_zone(zone):
    """A zone id usable as topic level and, behind wire.ZONE_ACCOUNT_PREFIX, as user name and client id."""
    return wire.valid_name(zone, 64 - len(wire.ZONE_ACCOUNT_PREFIX))
