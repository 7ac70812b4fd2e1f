# Raspberry Pi Pico W port (RP2040 + CYW43 Wi-Fi).
import machine
import network

from roadedge.hal.mcu import McuHAL


def open(cfg):
    country = (cfg.get("network") or {}).get("country")
    if country:
        try:
            network.country(country)  # regulatory domain for the CYW43 radio
        except (AttributeError, ValueError):
            pass
    return McuHAL(cfg, machine, network, "rp2")


def reset():
    machine.reset()
