# pyright: reportUndefinedVariable=false
# ruff: noqa: F821
# What a sign board gets: the platform and roadedge.sign.app with everything it imports
# (host-side only; the directives are explained in roadedge/core/manifest.py).
metadata(description="Variable speed-limit sign: Art. 81 limit, fail-safe blanking, display drivers", version="0.1.0")
require("base")
imports("roadedge.sign.app")  # core.app starts it by name: no import names it
