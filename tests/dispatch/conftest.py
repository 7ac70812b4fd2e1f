"""Fixtures for the dispatcher console tests: a deployment, accounts, keys, a running console."""
from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from host_tools.dispatch.service import DispatchService
from host_tools.dispatch.users import Users
from host_tools.keys import Keyring

from dispatch_support import U_ROAD, Publisher
from support.browser import CHROMIUM, CHROMIUM_ARGS

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
    # provisioned as trackers (trk-c is not in the deployment): the console keeps trackers' keys only
    return Keyring({u: {"command_key": secrets.token_hex(32), "mqtt_password": "x", "role": "tracker"}
                    for u in UNITS}, operator_key=secrets.token_hex(32))


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


@pytest.fixture(scope="module")
def browser():
    from host_tools.dispatch.assets import VENDOR, installed

    # the console's map library comes from npm at set-up time (`make setup`), never from a CDN
    assert installed(), f"console assets missing in {VENDOR}: run `python -m host_tools.dispatch.assets`"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()
