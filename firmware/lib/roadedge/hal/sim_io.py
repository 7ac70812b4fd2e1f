# Sim port peripherals: what SimHAL hands out for pins and buses. Each talks
# to the host through the HAL's link (hal._send) or reads what the host pushed
# (inputs, ADC, I2C memory). A separate module so a board config that opens
# no peripheral never loads them (RAM: see docs/benchmarks.md "heap").
from binascii import hexlify

from roadedge.core.compat import ThreadSafeFlag
from roadedge.hal.lines import LineReader


class Out:
    def __init__(self, hal, name):
        self._hal = hal
        self.name = name
        self._v = 0

    def value(self, v=None):
        if v is None:
            return self._v
        v = 1 if v else 0
        if v != self._v or not self._hal._said.get(self.name):
            self._v = v
            self._hal._said[self.name] = True
            self._hal._send({"op": "out", "name": self.name, "v": v})
        return v

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


class In:
    def __init__(self, hal, name):
        self._hal = hal
        self.name = name

    def value(self):
        return self._hal._level(self.name)


class PWM:
    def __init__(self, hal, name, freq):
        self._hal = hal
        self.name = name
        self.freq = freq
        self._d = None

    def duty(self, x=None):
        if x is None:
            return self._d or 0.0
        x = 0.0 if x < 0 else (1.0 if x > 1 else float(x))
        if x != self._d:
            self._d = x
            self._hal._send({"op": "pwm", "name": self.name, "freq": self.freq, "duty": x})
        return x


class ADC:
    def __init__(self, hal, name):
        self._hal = hal
        self.name = name

    def read_u16(self):
        return self._hal._adc.get(self.name, 0)


class UART(LineReader):
    def __init__(self, hal, name, maxlen):
        super().__init__(maxlen)
        self._hal = hal
        self.name = name
        self._flag = ThreadSafeFlag()

    def _rx(self, data):
        self._sp.feed(data)
        self._flag.set()

    async def _more(self):
        await self._flag.wait()

    def write(self, data):
        self._hal._send({"op": "uart", "name": self.name, "data": hexlify(data).decode()})
        return len(data)


class SPI:
    def __init__(self, hal, name):
        self._hal = hal
        self.name = name

    def write(self, data):
        self._hal._send({"op": "spi", "name": self.name, "data": hexlify(data).decode()})


class I2C:
    # Register reads come from memory the host simulator pushed beforehand
    # (reads stay synchronous, like machine.I2C); an absent device raises
    # OSError as the real bus does.
    def __init__(self, hal, name):
        self._hal = hal
        self.name = name

    def writeto(self, addr, buf):
        self._hal._send({"op": "i2c", "name": self.name, "addr": addr, "data": hexlify(buf).decode()})
        return 1

    def writeto_mem(self, addr, memaddr, buf):
        self._hal._send({"op": "i2c", "name": self.name, "addr": addr, "reg": memaddr,
                         "data": hexlify(buf).decode()})

    def readfrom_mem(self, addr, memaddr, nbytes):
        mem = self._hal._i2c.get("%s/%d/%d" % (self.name, addr, memaddr))
        if mem is None:
            raise OSError(19)  # ENODEV
        return (mem + bytes(nbytes))[:nbytes]

    def scan(self):
        found = []
        pre = self.name + "/"
        for k in self._hal._i2c:
            if k.startswith(pre):
                a = int(k.split("/")[1])
                if a not in found:
                    found.append(a)
        return sorted(found)
