# Run with `micropython -i` before the REPL a flash talks to: a board's ROMFS partition for the
# unix port, which has vfs.VfsRom but no vfs.rom_ioctl. `vfs` in sys.modules is a stand-in
# that forwards to the real module and adds rom_ioctl over a bytearray "partition" (the
# calls mpremote's `romfs deploy` and `query` make: count, segment, prepare, write, end, block
# size). When a write ends, the image is mounted at /rom and /rom, /rom/lib go on sys.path,
# as a board's startup does.
import sys
import vfs as _real

_SIZE = 128 * 1024
_BLOCK = 4096
_part = bytearray(_SIZE)


class _Vfs:
    VfsRom = _real.VfsRom
    mount = _real.mount
    umount = _real.umount

    @staticmethod
    def rom_ioctl(op, *args):
        if op == 1:  # number of partitions
            return 1
        if op == 2:  # partition 0: its memory
            return memoryview(_part) if args[0] == 0 else -19
        if op == 3:  # prepare (erase) for writing: minimum write size
            for i in range(len(_part)):
                _part[i] = 0xFF
            return 4
        if op == 4:  # write bytes at an offset
            _part[args[1]:args[1] + len(args[2])] = args[2]
            return 0
        if op == 5:  # writing done: mount it as the board's startup would
            try:
                _real.umount("/rom")
            except OSError:
                pass
            _real.mount(_real.VfsRom(_part), "/rom")
            for p in ("/rom/lib", "/rom"):
                if p not in sys.path:
                    sys.path.insert(0, p)
            return 0
        if op == 6:  # erase block size
            return _BLOCK
        return -22


sys.modules["vfs"] = _Vfs
