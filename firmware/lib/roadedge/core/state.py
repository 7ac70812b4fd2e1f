# Small state files (counters, cursors, settings) that survive a power cut.
# write_json writes <path>.tmp completely, closes it, then renames it over
# <path>: LittleFS and posix replace the target in one step; FAT refuses to
# rename onto an existing file, so there we remove the target first. A cut in
# that gap leaves only the complete tmp, which read_json recovers.
import os
import json

# Counted, never raised: files that could not be parsed (read_json returned
# the default) and reads that were rescued from a leftover .tmp.
stats = {"corrupt": 0, "recovered": 0, "write_errors": 0}


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _load(path):
    """(ok, value): ok False when the file is missing; raises ValueError when
    it exists but does not hold a complete JSON document."""
    try:
        f = open(path)
    except OSError:
        return False, None
    try:
        text = f.read()
    finally:
        f.close()
    v = json.loads(text)
    # write_json ends every file with a newline. A cut-short object or list
    # never parses, but a cut-short scalar can ("1234" -> "12"): without the
    # newline only containers are trusted (files written by other tools).
    if not text.endswith("\n") and not isinstance(v, (dict, list)):
        raise ValueError("incomplete")
    return True, v


def read_json(path, default=None):
    """The value stored at path, else the one in a leftover complete
    path.tmp (promoted into place), else default. Corrupt files are counted
    in stats["corrupt"], never raised."""
    corrupt = False
    try:
        ok, v = _load(path)
        if ok:
            return v
    except (ValueError, OSError, MemoryError):
        corrupt = True
    tmp = path + ".tmp"
    try:
        ok, v = _load(tmp)
    except (ValueError, OSError, MemoryError):
        ok, v = False, None
    if ok:
        stats["recovered"] += 1
        try:
            _replace(tmp, path)
        except OSError:
            pass
        return v
    if corrupt:
        stats["corrupt"] += 1
    return default


def _replace(src, dst):
    try:
        os.rename(src, dst)
    except OSError:
        # FAT: the target must not exist. Until the rename below completes,
        # the only copy is the complete src, which read_json recovers.
        if not _exists(dst):
            raise
        os.remove(dst)
        os.rename(src, dst)


def write_json(path, obj):
    """Atomically replace the file at path with obj as JSON. Raises OSError
    (e.g. filesystem full) after counting it; the old content stays intact."""
    tmp = path + ".tmp"
    try:
        f = open(tmp, "w")
        try:
            f.write(json.dumps(obj))
            f.write("\n")
            f.flush()
        finally:
            f.close()
        _replace(tmp, path)
    except OSError:
        stats["write_errors"] += 1
        _remove(tmp)
        raise


def ensure_dir(path):
    """mkdir -p for a device filesystem (no os.makedirs on MicroPython)."""
    if not path:
        return
    cur = "/" if path.startswith("/") else ""
    for part in path.split("/"):
        if not part:
            continue
        cur = cur + part if cur.endswith("/") or not cur else cur + "/" + part
        try:
            os.mkdir(cur)
        except OSError:
            try:
                st = os.stat(cur)
            except OSError:
                raise
            if not st[0] & 0x4000:
                raise OSError("not a folder: " + cur)


def remove(path):
    """Delete a state file and any leftover tmp; missing files are fine."""
    _remove(path)
    _remove(path + ".tmp")
