# MicroPython boot shim for a device folder flashed with a ROMFS image (`roadedge flash`
# with "deploy": "romfs" to dir:). A board's startup mounts its ROMFS partition at /rom
# (and puts /rom, /rom/lib on sys.path) before it runs /main.py; the unix port has
# vfs.VfsRom but no partition (no vfs.rom_ioctl), so this does the same from the folder's
# romfs.img, held in one buffer, then runs the folder's main.py. The firmware imports its
# .mpy from /rom/lib and executes their bytecode in place, as it does from flash.
# (The buffer itself sits on this heap: bench/heap subtracts its size.)
import os
import sys
import vfs

_n = os.stat("romfs.img")[6]
_img = bytearray(_n)
with open("romfs.img", "rb") as _f:
    _f.readinto(_img)
vfs.mount(vfs.VfsRom(_img), "/rom")
sys.path[:0] = ["/rom", "/rom/lib"]
with open("main.py") as _f:
    _main = _f.read()
del _f, _n
exec(_main, {"__name__": "__main__"})
