"""Where a flash writes: a folder (`dir:PATH`) or a MicroPython REPL reached
through mpremote's serial transport (a USB serial device, an mpremote connect
string such as `/dev/ttyACM0` / `port:...` / `rfc2217://...`, or a pty).

A target offers the few operations the sync needs; paths are relative to the
device root. ROMFS (MicroPython 1.25+): `romfs_size()` is the partition's size
(None: no ROMFS), `romfs_hash(n)` the SHA-256 of its first n bytes, and
`romfs_deploy(image)` writes an image with mpremote's `romfs deploy`. A dir:
folder keeps its image in romfs.img (sim/romfs_boot.py mounts it as a board would).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path


class TargetError(RuntimeError):
    pass


def parse_port(port: str) -> tuple[str, str]:
    """('dir', path) or ('serial', device) from a --port value."""
    if port.startswith("dir:"):
        if not port[4:]:
            raise TargetError("dir: needs a folder, e.g. dir:build/devices/vsl-k012-n")
        return "dir", port[4:]
    if port.startswith("port:"):
        port = port[5:]
    aliases = {"a0": "/dev/ttyACM0", "a1": "/dev/ttyACM1", "u0": "/dev/ttyUSB0", "u1": "/dev/ttyUSB1",
               "c0": "COM0", "c1": "COM1", "c3": "COM3"}
    return "serial", aliases.get(port, port)


ROMFS_FILE = "romfs.img"  # a dir: folder's ROMFS partition
DIR_ROMFS_SIZE = 1 << 20  # as big as a Pico W's or an ESP32's partition can be made


class DirTarget:
    kind = "dir"

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.name = f"dir:{self.root}"

    def read(self, path: str) -> bytes | None:
        try:
            return (self.root / path).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def sizes(self, paths: list[str]) -> dict[str, int]:
        out = {}
        for p in paths:
            try:
                out[p] = (self.root / p).stat().st_size
            except OSError:
                out[p] = -1
        return out

    def write(self, path: str, data: bytes, progress: Callable[[int], None] | None = None) -> None:
        dest = self.root / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        tmp.write_bytes(data)
        os.replace(tmp, dest)
        if progress:
            progress(len(data))

    def remove(self, path: str) -> None:
        try:
            (self.root / path).unlink()
        except FileNotFoundError:
            pass

    def hashes(self, paths: list[str]) -> dict[str, str]:
        out = {}
        for p in paths:
            b = self.read(p)
            out[p] = hashlib.sha256(b).hexdigest() if b is not None else ""
        return out

    def romfs_size(self) -> int | None:
        return DIR_ROMFS_SIZE

    def romfs_hash(self, n: int) -> str:
        b = self.read(ROMFS_FILE)
        return hashlib.sha256(b[:n]).hexdigest() if b is not None and len(b) >= n else ""

    def romfs_deploy(self, image: bytes) -> None:
        self.write(ROMFS_FILE, image)

    def close(self) -> None:
        pass


# Runs on the device: the ROMFS partition's size (null: no ROMFS support or partition).
_ROMFS_SIZE = """import json
try:
 import vfs;d=vfs.rom_ioctl(2,0)
 n=None if isinstance(d,int) else d.ioctl(4,0)*d.ioctl(5,0) if hasattr(d,'ioctl') else len(d)
except (ImportError,AttributeError,OSError,TypeError):
 n=None
print(json.dumps(n))
"""
# Runs on the device: SHA-256 (hex) of the first %d bytes of ROMFS partition 0 ("": not memory-mapped).
_ROMFS_HASH = """import vfs,hashlib,binascii
try:
 m=memoryview(vfs.rom_ioctl(2,0));h=hashlib.sha256();n=%d
 for i in range(0,n,1024):h.update(m[i:min(n,i+1024)])
 print('"'+binascii.hexlify(h.digest()).decode()+'"')
except TypeError:
 print('""')
"""


# Runs on the device: print one JSON line with each path's size (-1 = missing).
_SIZES = """import os,json
def _s(p):
 try:return os.stat(p)[6]
 except OSError:return -1
print(json.dumps({p:_s(p) for p in %s}))
"""
# Runs on the device: print one JSON line with each path's SHA-256 (hex), "" when missing.
_HASHES = """import hashlib,binascii,json
def _h(p):
 try:f=open(p,'rb')
 except OSError:return ''
 h=hashlib.sha256();b=bytearray(512);m=memoryview(b)
 while 1:
  n=f.readinto(b)
  if not n:break
  h.update(m[:n])
 f.close()
 return binascii.hexlify(h.digest()).decode()
print(json.dumps({p:_h(p) for p in %s}))
"""
_MKDIRS = """import os
for d in %s:
 try:os.mkdir(d)
 except OSError:pass
"""
_COMMIT = """import os
try:os.rename(%(tmp)r,%(dst)r)
except OSError:
 try:os.remove(%(dst)r)
 except OSError:pass
 os.rename(%(tmp)r,%(dst)r)
"""


WATCHDOG_PLATFORMS = ("rp2", "esp32")
WDT_MS = 8000  # within the RP2040's 8388 ms maximum


class SerialTarget:
    """A MicroPython REPL over serial, driven with mpremote's SerialTransport (raw REPL)."""

    kind = "serial"
    CHUNK = 1024

    def __init__(self, device: str, baud: int = 115200, soft_reset: bool = False, timeout_s: float = 15) -> None:
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport

        self.name = device
        self.device = device
        try:
            self.t = SerialTransport(device, baudrate=baud)
        except TransportError as e:
            raise TargetError(f"cannot open {device}: {e}") from None
        except Exception as e:  # pyserial raises its own SerialException (an OSError subclass on some versions)
            raise TargetError(f"cannot open {device}: {e}") from None
        # Without a soft reset the running program is interrupted (Ctrl-C) and the REPL
        # kept: on the unix port a soft reset would end the process (mpremote `resume`).
        try:
            self.t.enter_raw_repl(soft_reset=soft_reset, timeout_overall=timeout_s)
        except Exception as e:
            self.t.close()
            raise TargetError(f"{device}: no MicroPython REPL answered ({e})") from None
        self._dirs: set[str] = set()
        self.platform = self.eval_json("import sys,json;print(json.dumps(sys.platform))")
        self._feed = ""
        if self.platform in WATCHDOG_PLATFORMS:
            # A board: soft-reset into the raw REPL (as mpremote does by default) so the copy gets a
            # clean heap; main.py does not run after a soft reset in raw REPL mode.
            try:
                self.t.enter_raw_repl(soft_reset=True, timeout_overall=timeout_s)
            except Exception as e:
                self.t.close()
                raise TargetError(f"{device}: soft reset into the raw REPL failed ({e})") from None
            # The interrupted firmware had started the hardware watchdog, which no one can stop:
            # keep feeding it while we copy, or the board resets mid-flash.
            self.exec(f"import machine\n_wdt=machine.WDT(timeout={WDT_MS})\n_wdt.feed()")
            self._feed = "\n_wdt.feed()"

    def exec(self, code: str) -> bytes:
        from mpremote.transport import TransportError

        try:
            return self.t.exec(code)
        except TransportError as e:
            raise TargetError(f"{self.device}: device error: {e}") from None

    def eval_json(self, code: str):
        out = self.exec(code).decode(errors="replace").strip().splitlines()
        if not out:
            raise TargetError(f"{self.device}: no answer from the device")
        return json.loads(out[-1])

    def read(self, path: str) -> bytes | None:
        if self.eval_json(_SIZES % json.dumps([path]))[path] < 0:
            return None
        return bytes(self.t.fs_readfile(path))

    def sizes(self, paths: list[str]) -> dict[str, int]:
        return self.eval_json(_SIZES % json.dumps(paths))

    def hashes(self, paths: list[str]) -> dict[str, str]:
        return self.eval_json(_HASHES % json.dumps(paths))

    def _mkdirs(self, path: str) -> None:
        parts = path.split("/")[:-1]
        need = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        need = [d for d in need if d not in self._dirs]
        if need:
            self.exec(_MKDIRS % json.dumps(need))
            self._dirs.update(need)

    def write(self, path: str, data: bytes, progress: Callable[[int], None] | None = None) -> None:
        """Write to path.part, then rename: a cut cable never leaves a half file under the real name."""
        self._mkdirs(path)
        tmp = path + ".part"
        self.exec(f"f=open({tmp!r},'wb')\nw=f.write")
        for i in range(0, len(data), self.CHUNK):
            chunk = data[i: i + self.CHUNK]
            self.exec(f"w({chunk!r}){self._feed}")
            if progress:
                progress(len(chunk))
        self.exec("f.close()")
        self.exec(_COMMIT % {"tmp": tmp, "dst": path})

    def remove(self, path: str) -> None:
        self.exec(f"import os\ntry:os.remove({path!r})\nexcept OSError:pass")

    def romfs_size(self) -> int | None:
        return self.eval_json(_ROMFS_SIZE)

    def romfs_hash(self, n: int) -> str:
        return self.eval_json(_ROMFS_HASH % n)

    def romfs_deploy(self, image: bytes) -> None:
        """mpremote's `romfs deploy` (erase, chunked and compressed writes) through our transport."""
        import argparse
        import contextlib
        import io
        import tempfile

        from mpremote.commands import do_romfs

        state = argparse.Namespace(transport=self.t, ensure_raw_repl=lambda: None, did_action=lambda: None)
        with tempfile.TemporaryDirectory(prefix="roadedge-romfs-") as td:
            path = Path(td) / "image.romfs"
            path.write_bytes(image)
            args = argparse.Namespace(command=["deploy"], path=str(path), partition=0, mpy=False, output=None)
            said = io.StringIO()
            try:
                with contextlib.redirect_stdout(said):
                    do_romfs(state, args)
            except (SystemExit, Exception) as e:
                last = [x for x in said.getvalue().splitlines() if x.strip()][-1:] or [str(e)]
                raise TargetError(f"{self.device}: romfs deploy failed: {last[0]}") from None

    def start(self) -> str:
        """Start the firmware. Boards: hard reset (main.py runs at boot). The unix port has no
        machine.reset and a soft reset would end it, so run main.py in the REPL process as boot would."""
        has_reset = self.eval_json("import json\ntry:\n import machine;r=hasattr(machine,'reset')\n"
                                   "except ImportError:\n r=False\nprint(json.dumps(r))")
        if has_reset and self.platform != "linux":
            self.t.exec_raw_no_follow("import machine\nmachine.reset()")
            return "reset"
        # leave the firmware the heap a boot would: drop what the copy left in the REPL's globals
        self.exec("for _k in [k for k in globals() if not k.startswith('__')]:\n del globals()[_k]\n"
                  "__import__('gc').collect()")
        self.t.exec_raw_no_follow(
            "import sys\nif 'lib' not in sys.path: sys.path.insert(0,'lib')\n"
            "exec(open('main.py').read(),{'__name__':'__main__'})")
        return "run main.py"

    def read_output(self, timeout_s: float) -> bytes:
        """Whatever the device printed within timeout_s (b'' if nothing). A board that re-enumerates
        after its reset (USB CDC on the Pico W) drops the port: it is reopened when it comes back."""
        deadline = time.monotonic() + timeout_s
        buf = b""
        while time.monotonic() < deadline:
            s = self._serial_for_reading()
            if s is None:
                time.sleep(0.1)
                continue
            try:
                n = s.in_waiting
                if n:
                    buf += s.read(n)
                    if b"\n" in buf:
                        break
                else:
                    time.sleep(0.02)
            except (OSError, ValueError) as e:  # pyserial's SerialException is an OSError
                self._lost = True
                self._last_error = str(e)
                try:
                    s.close()
                except Exception:
                    pass
        return buf

    _lost = False
    _last_error = ""
    _reopened = None

    def _serial_for_reading(self):
        if not self._lost:
            return self.t.serial
        if self._reopened is not None:
            return self._reopened
        try:
            import serial

            self._reopened = serial.serial_for_url(self.device, baudrate=self.t.serial.baudrate, timeout=0)
        except (OSError, ValueError):
            return None
        return self._reopened

    def close(self, leave_running: bool = True) -> None:
        for closer in ((lambda: self._reopened.close()) if self._reopened is not None else None,
                       (lambda: self.t.exit_raw_repl()) if not leave_running and not self._lost else None,
                       self.t.close):
            if closer is None:
                continue
            try:
                closer()
            except Exception:
                pass


def open_target(port: str, baud: int = 115200):
    kind, where = parse_port(port)
    if kind == "dir":
        return DirTarget(where)
    return SerialTarget(where, baud)
