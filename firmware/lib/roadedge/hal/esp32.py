# ESP32 port. ADC pins get the full-range attenuation (0..3.3 V).
import machine
import network

from roadedge.hal.mcu import McuHAL


class Esp32HAL(McuHAL):
    def adc(self, name):
        a = machine.ADC(machine.Pin(self._gpio(name)))
        try:
            a.atten(machine.ADC.ATTN_11DB)
        except AttributeError:
            pass
        return a

    def reset_cause(self):
        c = machine.reset_cause()
        if c == machine.DEEPSLEEP_RESET:
            return "power_on"
        return McuHAL.reset_cause(self)


def open(cfg):
    return Esp32HAL(cfg, machine, network, "esp32")


def reset():
    machine.reset()
