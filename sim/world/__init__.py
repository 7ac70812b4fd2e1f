"""World engine: a scenario's fog, traffic, patrols and incidents driving every device of a deployment.

`World(scenario)` (engine.py) runs the CPython runtime: the firmware's own decision modules (beacon
`BeaconLogic`, sign `SignPolicy`, tracker NMEA decoder + `Reporter`) and the controller's `ZonePolicy`,
stepped with synthetic time, seeded and deterministic, faster than real time. What each device
publishes goes, as the device would publish it, to sinks: a `roadedge record` file, an MQTT bridge
(the demo), the report timeline. The faithful runtime (real `micropython` processes through the sim
hardware server) is in sim.hil (one board on a serial port) and bench/scale.
"""
from sim.world.engine import EPOCH_UNIX, World  # noqa: F401
