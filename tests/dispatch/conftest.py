"""Fixtures for the dispatcher console tests: a deployment, accounts, keys, a running console."""
from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from host_tools.dispatch.service import DispatchService
from host_tools.dispatch.users import Users
from host_tools.keys import Keyring

from dispatch_support import Publisher

# A U-shaped road: two 2 km arms ~555 m apart joined at the east end, plus a local road.
# An incident at the west end of the north arm is near a unit on the south arm in a straight
# line but ~4.5 km away by road.
U_ROAD = {
    "name": "u-test", "origin": {"lat": 30.30, "lon": 120.0},
    "roads": [
        {"id": "U", "name": "U loop", "kind": "expressway", "speed_kmh": 80, "oneway": False,
         "points": [[30.300, 120.000], [30.300, 120.020], [30.305, 120.020], [30.305, 120.000]]},
    ],
    "sections": [{"id": "F1", "road": "U", "from_km": 0.5, "to_km": 1.5}],
    "devices": {"beacons": {"spacing_m": 100, "sides": ["R"]},
                "signs": [{"id": "vsl-1", "road": "U", "km": 0.3, "section": "F1"}],
                "trackers": [{"id": "trk-a", "route": [{"road": "U", "from_km": 0, "to_km": 1}]},
                             {"id": "trk-b", "route": [{"road": "U", "from_km": 3, "to_km": 4}]}]},
}
UNITS = ("trk-a", "trk-b", "trk-c")
PASSWORDS = {"disp": ("dispatcher", "disp-pass-123"), "sup": ("supervisor", "sup-pass-1234"),
             "view": ("viewer", "view-pass-123")}


@pytest.fixture
def deployment(tmp_path: Path) -> Path:
    p = tmp_path / "deployment.json"
    p.write_text(json.dumps(U_ROAD))
    return p


@pytest.fixture
def keyring() -> Keyring:
    return Keyring({u: {"command_key": secrets.token_hex(32), "mqtt_password": "x"} for u in UNITS})


@pytest.fixture
def users_file(tmp_path: Path) -> Path:
    p = tmp_path / "users.json"
    u = Users(p)
    for name, (role, pw) in PASSWORDS.items():
        u.add(name, role, pw)
    return p


@pytest.fixture
def console(mosquitto, tmp_path, deployment, keyring, users_file):
    svc = DispatchService(mosquitto.url, tmp_path / "dispatch.db", users_file, ("127.0.0.1", 0),
                          deployment, keyring=keyring)
    with svc:
        yield svc


@pytest.fixture
def publisher(mosquitto):
    p = Publisher(mosquitto.port)
    yield p
    p.close()
