# Helpers for firmware tests that must run under MicroPython and CPython alike.
import os

_n = [0]


def tmpdir(tag="t"):
    """A fresh empty folder under $FWTEST_TMP (set by the pytest wrapper)."""
    base = os.getenv("FWTEST_TMP") or "/tmp/fwtest"  # type: ignore[attr-defined]
    _mk(base)
    _n[0] += 1
    d = "%s/%s%d" % (base, tag, _n[0])
    _mk(d)
    for f in os.listdir(d):
        _rm(d + "/" + f)
    return d


def _mk(p):
    try:
        os.mkdir(p)
    except OSError:
        pass


def _rm(p):
    try:
        os.remove(p)
    except OSError:
        for f in os.listdir(p):
            _rm(p + "/" + f)
        os.rmdir(p)


def raises(exc, fn, *a, **kw):
    try:
        fn(*a, **kw)
    except exc as e:
        return e
    raise AssertionError("expected %s" % exc.__name__)
