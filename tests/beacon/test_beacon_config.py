"""The shipped beacon board configs are accepted by the beacon role's own
parameter check (and name the pins and UARTs the role uses)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from roadedge.beacon.app import params

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "board_configs").glob("*-beacon.json"))
NEEDED_PINS = {"detector", "lamp_yellow", "lamp_red", "ambient", "lamp_current", "battery"}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_beacon_config(path):
    cfg = json.loads(path.read_text())
    p = params(cfg)
    assert p["levels_m"] == [500, 200, 100, 50] and p["tail_m"] == 75.0
    assert NEEDED_PINS <= set(cfg["pins"]) and "vis_meter" in cfg["uarts"]


def test_there_are_beacon_configs():
    assert len(CONFIGS) >= 3
