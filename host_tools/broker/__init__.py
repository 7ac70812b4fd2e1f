"""Brokers: the embedded amqtt broker and a managed Mosquitto process."""
