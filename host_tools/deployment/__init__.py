"""The deployment model: roads with km markers, the devices on them, and (for the simulator) the weather,
traffic and events of a scenario. The dispatcher console and the controller read the same files as the
simulator (format: docs/scenarios.md); the simulator imports this package."""
