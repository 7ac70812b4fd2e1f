# Driven by tests/test_hal_sim.py under micropython and CPython: opens the sim
# HAL against the HardwareServer at argv[1] and answers the test's script over
# the same simulated board (UART "ctl" carries the script, one word a line).
import sys
import asyncio

from roadedge import hal


async def main(addr):
    cfg = {"id": "probe", "board": "sim", "sim": {"hw": addr},
           "pins": {"lamp": 2, "fan": 3, "btn": 4, "batt": 26, "sos": 5},
           "uarts": {"ctl": {"id": 0, "baud": 115200}, "gnss": {"id": 1, "baud": 9600}}}
    h = hal.open(cfg)
    await h.start()
    ctl = h.uart("ctl")
    gnss = h.uart("gnss", maxlen=32)
    q = h.edges("btn", rising=True, falling=True, capacity=4)
    lamp = h.output("lamp")
    fan = h.pwm("fan", freq=500)
    batt = h.adc("batt")
    ctl.write(b"ready %s\n" % h.reset_cause().encode())
    while True:
        cmd = (await ctl.readline()).strip().decode()
        if cmd == "out":
            lamp.value(1)
            ctl.write(b"out %d\n" % lamp.value())
        elif cmd == "pwm":
            fan.duty(0.25)
            ctl.write(b"pwm %d\n" % int(fan.duty() * 100))
        elif cmd == "adc":
            ctl.write(b"adc %d\n" % batt.read_u16())
        elif cmd == "edges":
            a = await q.get()
            b = await q.get()
            ctl.write(b"edges %d %d %d\n" % (1 if a is not None else 0, 1 if b is not None else 0, q.dropped))
        elif cmd == "gnss":
            line = await gnss.readline()
            line2 = await gnss.readline()
            ctl.write(b"gnss " + line.strip() + b" " + line2.strip() + b" %d\n" % gnss.cut)
        elif cmd == "pull":
            # never driven by the host: the pull-up decides
            ctl.write(b"pull %d\n" % h.input("sos", "up").value())
        elif cmd == "net":
            ctl.write(b"net %d\n" % (1 if h.net_ok() else 0))
        elif cmd == "reset":
            h.reset()
        elif cmd == "quit":
            ctl.write(b"bye\n")
            await asyncio.sleep(0.2)
            return


asyncio.run(main(sys.argv[1]))
