"""Host side of the sim HAL port: simulated boards (`DeviceHW`) and the TCP
server the firmware's sim port connects to (`HardwareServer`)."""
from sim.hw.board import DirectLink, DeviceHW
from sim.hw.server import HardwareServer, HardwareServerThread

__all__ = ["DeviceHW", "DirectLink", "HardwareServer", "HardwareServerThread"]
