"""Record every MQTT message to a JSON-lines file and play it back with its timing.

The simulator replays field recordings through the same functions
(`recording.fileformat`, `recording.player`)."""
