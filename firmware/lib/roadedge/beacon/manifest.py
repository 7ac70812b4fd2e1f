# pyright: reportUndefinedVariable=false
# ruff: noqa: F821
# What a beacon board gets: the platform and roadedge.beacon.app with everything it imports
# (host-side only; the directives are explained in roadedge/core/manifest.py).
metadata(description="Fog-zone guidance beacon: contour, synchronised flash, red tail, section alarm", version="0.1.0")
require("base")
imports("roadedge.beacon.app")  # core.app starts it by name: no import names it
