# Hardware abstraction: roles address hardware by function name ("fog_lamp",
# "gnss"), the port maps names to the board's pins. open() picks the port
# from cfg["board"] and imports only that port (boards lack the others' modules).

PORTS = {"pico_w": "rp2", "rp2": "rp2", "esp32": "esp32", "sim": "sim"}


class HALError(Exception):
    pass


def port_name(cfg):
    board = cfg.get("board")
    port = PORTS.get(board)
    if port is None:
        raise HALError("board %r has no HAL port (expected one of %s)" % (board, ", ".join(sorted(PORTS))))
    return port


def open(cfg, link=None):
    """The HAL for cfg["board"]. link: sim port only, a transport to a
    simulated board in the same process (default: the TCP hardware server)."""
    port = port_name(cfg)
    if port == "sim":
        from roadedge.hal import sim

        return sim.SimHAL(cfg, link)
    if port == "rp2":
        from roadedge.hal import rp2

        return rp2.open(cfg)
    from roadedge.hal import esp32

    return esp32.open(cfg)


def reset_board():
    """Hard reset of the board this runs on (rp2/esp32), for a boot that failed
    before any HAL was open; does nothing elsewhere."""
    import sys

    if sys.platform == "rp2":
        from roadedge.hal import rp2

        rp2.reset()
    elif sys.platform == "esp32":
        from roadedge.hal import esp32

        esp32.reset()
