"""The broker's accounts for Mosquitto's dynamic-security plugin: passwords, access rules and,
what Mosquitto's password_file/acl_file cannot do, one client id bound to every account.

With `use_username_as_clientid` a CONNECT carrying another account's client id is silently renamed
to the connecting user (it is accepted, not refused). The plugin's per-client `clientid` makes the
broker refuse it instead (CONNACK 5 / reason 135 "not authorised") before any session is touched:
the victim stays connected and its session and will are left alone. So every client connects with
its user name as client id (host_tools.recording.mqttconn does; the firmware's id is its user).

The plugin ships in Debian's `mosquitto` package (2.0+). Mosquitto 2.0 reads this file at start-up
only (SIGHUP does not reload it): restart the broker after provisioning. No account has the plugin's
admin role, so nothing can change the rules over `$CONTROL` and the file stays what was generated.
"""
from __future__ import annotations

import glob
import json
import os
from pathlib import Path

from host_tools.provision import passwd
from host_tools.provision.acl import Rules

PLUGIN = "mosquitto_dynamic_security.so"
FILE_NAME = "dynsec.json"
# Deny unless a role allows it, in both directions: a subscription and every message it would
# deliver (retained ones included) are each checked against the account's read filters.
DEFAULT_ACCESS = {"publishClientSend": False, "publishClientReceive": False, "subscribe": False,
                  "unsubscribe": True}


class PluginMissing(FileNotFoundError):
    pass


def plugin_path() -> Path:
    """The plugin library: $ROADEDGE_DYNSEC_PLUGIN, or where Debian/Ubuntu (any architecture) and
    source installs put it."""
    env = os.environ.get("ROADEDGE_DYNSEC_PLUGIN")
    found = [env] if env else []
    found += sorted(glob.glob(f"/usr/lib/*/{PLUGIN}")) + [f"/usr/lib/{PLUGIN}", f"/usr/local/lib/{PLUGIN}"]
    for c in found:
        if os.path.exists(c):
            return Path(c)
    raise PluginMissing(f"{PLUGIN} not found (it ships with Debian's mosquitto package: apt-get install "
                        "mosquitto; elsewhere set ROADEDGE_DYNSEC_PLUGIN)")


def config(hashes: dict[str, str], rules: Rules) -> dict:
    """The plugin's config for user -> `$7$` hash and user -> (read, write) filters: every account
    bound to the client id of its own name, with exactly its rules (one role per account)."""
    clients, roles = [], []
    for user in sorted(rules):
        read, write = rules[user]
        it, salt, dk = passwd.split_hash(hashes[user])
        clients.append({"username": user, "clientid": user, "password": dk, "salt": salt, "iterations": it,
                        "roles": [{"rolename": user}]})
        acls = [{"acltype": "publishClientSend", "topic": t, "allow": True} for t in write]
        for t in read:
            # the plugin checks a shared subscription as written ($share/<group>/<filter>): the same
            # read rule in a group (ingest workers share one); what it delivers is checked as above
            acls += [{"acltype": "subscribePattern", "topic": t, "allow": True},
                     {"acltype": "subscribePattern", "topic": f"$share/+/{t}", "allow": True},
                     {"acltype": "publishClientReceive", "topic": t, "allow": True}]
        roles.append({"rolename": user, "acls": acls})
    missing = set(hashes) - set(rules)
    if missing:
        raise ValueError(f"accounts without access rules: {sorted(missing)}")
    return {"defaultACLAccess": DEFAULT_ACCESS, "clients": clients, "groups": [], "roles": roles}


def previous_hashes(path: Path) -> dict[str, str]:
    """user -> `$7$` hash from an existing file (so re-provisioning keeps unchanged hashes)."""
    try:
        data = json.loads(path.read_text())
        return {c["username"]: f"$7${c['iterations']}${c['salt']}${c['password']}" for c in data["clients"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def write(path: Path, passwords: dict[str, str], rules: Rules) -> Path:
    """Write the config (mode 0600: it holds the password hashes) for user -> cleartext password."""
    from host_tools.config.secrets import _write_private

    path = Path(path)
    _write_private(path, json.dumps(config(passwd.hashes(passwords, previous_hashes(path)), rules), indent=1) + "\n")
    return path
