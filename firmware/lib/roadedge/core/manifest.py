# pyright: reportUndefinedVariable=false
# ruff: noqa: F821
# What every board gets: the platform (boot, device app, MQTT client, HAL) that role
# "base" runs alone and every role runs on. Host-side only, never shipped: read by
# host_tools.build (as micropython-lib packages declare theirs, plus two directives):
#   imports(module)   ship the module and every roadedge module it imports (followed
#                     through the source, lazy imports included), so this list never
#                     goes stale when a module is split or added
#   module(path)      ship one file as it is (path from the firmware root)
#   port(name, mod)   the HAL port `name` lives in `mod`: only the board's own port
#                     (and what it imports) is shipped
#   require(name)     everything another manifest ships ("base" = this one)
metadata(description="roadedge platform: boot, device app, MQTT client, HAL", version="0.1.0")
module("main.py")  # the board boots /main.py, kept as source
imports("roadedge.core.app")
port("rp2", "roadedge.hal.rp2")
port("esp32", "roadedge.hal.esp32")
port("sim", "roadedge.hal.sim")
