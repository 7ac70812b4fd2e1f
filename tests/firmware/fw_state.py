# roadedge.core.state: atomic JSON state files and their power-cut recovery.
import os
import fwtest
from roadedge.core import state


def _put(path, text):
    with open(path, "w") as f:
        f.write(text)


def _exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def test_roundtrip_and_default():
    d = fwtest.tmpdir("st")
    p = d + "/a.json"
    assert state.read_json(p, {"n": 0}) == {"n": 0}
    state.write_json(p, {"n": 1, "s": "x", "l": [1, 2]})
    assert state.read_json(p, None) == {"n": 1, "s": "x", "l": [1, 2]}
    state.write_json(p, {"n": 2})  # replaces an existing file
    assert state.read_json(p, None) == {"n": 2}
    assert not _exists(p + ".tmp")


def test_corrupt_file_gives_default_and_is_counted():
    d = fwtest.tmpdir("st")
    p = d + "/c.json"
    _put(p, '{"n": 1')
    c0 = state.stats["corrupt"]
    assert state.read_json(p, "dflt") == "dflt"
    assert state.stats["corrupt"] == c0 + 1
    _put(p, "\x00\x00\x00\x00")
    assert state.read_json(p, 7) == 7
    assert state.stats["corrupt"] == c0 + 2


def test_cut_short_file_that_still_parses_is_refused():
    # "12345\n" cut to "123" still parses: the missing newline gives it away.
    d = fwtest.tmpdir("st")
    p = d + "/n.json"
    _put(p, "123")
    assert state.read_json(p, None) is None
    _put(p, "123\n")
    assert state.read_json(p, None) == 123
    _put(p, '{"a": 1}')  # an object written by another tool, no newline
    assert state.read_json(p, None) == {"a": 1}


def test_cut_between_remove_and_rename_recovers_tmp():
    # FAT path: old file removed, complete tmp not yet renamed.
    d = fwtest.tmpdir("st")
    p = d + "/r.json"
    _put(p + ".tmp", '{"n": 5}\n')
    r0 = state.stats["recovered"]
    assert state.read_json(p, None) == {"n": 5}
    assert state.stats["recovered"] == r0 + 1
    assert _exists(p) and not _exists(p + ".tmp")  # promoted into place
    assert state.read_json(p, None) == {"n": 5}


def test_torn_tmp_leaves_old_value():
    # Cut while writing the tmp: the old file is still the truth.
    d = fwtest.tmpdir("st")
    p = d + "/t.json"
    state.write_json(p, {"n": 1})
    _put(p + ".tmp", '{"n": 2')
    assert state.read_json(p, None) == {"n": 1}
    state.write_json(p, {"n": 3})  # a later write is unaffected
    assert state.read_json(p, None) == {"n": 3}


def test_corrupt_main_and_torn_tmp_give_default():
    d = fwtest.tmpdir("st")
    p = d + "/b.json"
    _put(p, "garbage")
    _put(p + ".tmp", "{")
    assert state.read_json(p, {"ok": False}) == {"ok": False}


def test_write_into_missing_folder_raises_and_counts():
    d = fwtest.tmpdir("st")
    e0 = state.stats["write_errors"]
    fwtest.raises(OSError, state.write_json, d + "/no/such/x.json", {})
    assert state.stats["write_errors"] == e0 + 1


def test_ensure_dir_nested_and_idempotent():
    d = fwtest.tmpdir("st")
    state.ensure_dir(d + "/a/b/c")
    state.ensure_dir(d + "/a/b/c")
    state.write_json(d + "/a/b/c/x.json", [1])
    assert state.read_json(d + "/a/b/c/x.json", None) == [1]
    _put(d + "/file", "x")
    fwtest.raises(OSError, state.ensure_dir, d + "/file")


def test_remove():
    d = fwtest.tmpdir("st")
    p = d + "/x.json"
    state.write_json(p, 1)
    _put(p + ".tmp", "1")
    state.remove(p)
    assert not _exists(p) and not _exists(p + ".tmp")
    state.remove(p)  # missing is fine
