"""roadedge host tools: flash, provision, watch, command, record, replay."""
__version__ = "0.1.0"
