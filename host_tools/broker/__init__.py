"""Brokers: a managed Mosquitto process (mosquitto.py), its shipped config (conf/) and `roadedge broker`."""
