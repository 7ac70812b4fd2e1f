# pyright: reportUndefinedVariable=false
# ruff: noqa: F821
# What a tracker board gets: the platform and roadedge.tracker.app with everything it imports
# (host-side only; the directives are explained in roadedge/core/manifest.py).
metadata(description="Patrol motorcycle GPS tracker: smart reporting, SOS, store and forward", version="0.1.0")
require("base")
imports("roadedge.tracker.app")  # core.app starts it by name: no import names it
