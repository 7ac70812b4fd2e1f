# pyright: reportRedeclaration=false, reportAssignmentType=false
# The one place where MicroPython and CPython differ for firmware code.
# Everything in firmware/ imports these names from here instead of guessing
# which runtime it is on, so the same module runs on a board, under the unix
# port and under CPython (tests, in-process simulation).
import sys
import time
import asyncio

IS_MICROPYTHON = sys.implementation.name == "micropython"

if IS_MICROPYTHON:
    from micropython import const  # noqa: F401
    from time import ticks_ms, ticks_add, ticks_diff  # noqa: F401
    import gc

    sleep_ms = asyncio.sleep_ms
    ThreadSafeFlag = asyncio.ThreadSafeFlag

    def mem_free():
        return gc.mem_free()

    def mem_alloc():
        return gc.mem_alloc()

else:
    # ticks_ms on MicroPython wraps at 2**30; the shim wraps the same way so
    # wrap-around bugs show up under CPython tests too.
    TICKS_PERIOD = 1 << 30
    _TICKS_MAX = TICKS_PERIOD - 1
    _TICKS_HALF = TICKS_PERIOD // 2

    def const(x):
        return x

    def ticks_ms():
        return int(time.monotonic() * 1000) & _TICKS_MAX  # type: ignore[attr-defined]

    def ticks_add(t, delta):
        return (t + delta) & _TICKS_MAX

    def ticks_diff(a, b):
        return ((a - b + _TICKS_HALF) & _TICKS_MAX) - _TICKS_HALF

    def sleep_ms(ms):
        return asyncio.sleep(ms / 1000)

    class ThreadSafeFlag:
        """CPython stand-in for asyncio.ThreadSafeFlag (set from a callback,
        awaited by one task). Callbacks in the sim port run on the loop."""

        def __init__(self):
            self._ev = asyncio.Event()

        def set(self):
            self._ev.set()

        def clear(self):
            self._ev.clear()

        async def wait(self):
            await self._ev.wait()
            self._ev.clear()

    def mem_free():
        return -1

    def mem_alloc():
        return -1


def gc_collect():
    try:
        import gc

        gc.collect()
    except Exception:
        pass
