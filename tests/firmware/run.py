# Runs one firmware test module under whichever runtime executes this file
# (MicroPython unix port or CPython): every `test_*` function, sync or async.
# Usage: <runtime> tests/firmware/run.py fw_store   (cwd-independent)
# Prints "ok name" / "FAIL name: error" and a closing "N passed, N failed".
import sys
import asyncio

_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
if _here not in sys.path:
    sys.path.insert(0, _here)


def main(argv):
    name = argv[1]
    only = argv[2] if len(argv) > 2 else None
    mod = __import__(name)
    names = sorted(n for n in dir(mod) if n.startswith("test_"))
    passed = failed = 0
    for n in names:
        if only and n != only:
            continue
        fn = getattr(mod, n)
        try:
            r = fn()
            if r is not None and hasattr(r, "send"):
                asyncio.run(r)
            passed += 1
            print("ok", n)
        except Exception as e:  # noqa: BLE001 - report every failure, keep going
            failed += 1
            print("FAIL", n + ":", type(e).__name__, e)
            try:
                sys.print_exception(e)  # type: ignore[attr-defined]
            except AttributeError:
                import traceback

                traceback.print_exc()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or not passed else 0


sys.exit(main(sys.argv))
