# Append-only record store that survives a power cut mid-write (store and
# forward for trackers, event backlogs).
#
# On flash: a folder of segment files named after the id of their first
# record ("0000002a.seg", 8.3-safe for FAT) plus cursor.json (state.py, atomic)
# holding the ack cursor and the loss counters. A record is
#     magic 0xA5 | version 1 | payload length (u16 LE) | CRC32 (u32 LE) | payload
# where the CRC covers the record id (implicit: segment first id + index), the
# length and the payload, so a record is never read as another one.
# Only the newest segment can end in a torn record (older ones were complete
# before the next was created); open() verifies it and cuts the torn tail off
# by copying the good prefix to <seg>.fix and renaming it over the segment.
# RAM use is bounded: one small scratch buffer plus a few ints per segment;
# peek(n) reads only the n records it returns.
import os
import struct
import binascii
from roadedge.core import state

MAGIC = 0xA5
VERSION = 1
HDR = 8  # struct "<BBHI"
_HDR_FMT = "<BBHI"
_SEG_EXT = ".seg"
_FIX_EXT = ".fix"
CURSOR = "cursor.json"


def _crc(rid, length):
    """CRC32 of the implicit record id and the length: the payload's CRC
    continues from it."""
    return binascii.crc32(struct.pack("<IH", rid & 0xFFFFFFFF, length))


class RecordLog:
    """Persistent FIFO of byte records with monotonic ids.

    append(payload) -> id; peek(n) -> [(id, bytes)] oldest unacked first;
    ack(upto_id) consumes everything <= upto_id. When max_segs segments are
    in use the oldest segment is dropped (its unacked records counted in
    .dropped). Torn records found at open are counted in .corrupt."""

    def __init__(self, dir, seg_bytes=16384, max_segs=8, max_payload=None):
        if max_segs < 2:
            raise ValueError("max_segs must be >= 2")
        if seg_bytes < 2 * HDR + 16:
            raise ValueError("seg_bytes too small")
        self.dir = dir
        self.seg_bytes = seg_bytes
        self.max_segs = max_segs
        mp = seg_bytes - HDR
        if mp > 65535:
            mp = 65535
        self.max_payload = mp if max_payload is None else min(max_payload, mp)
        self.dropped = 0
        self.corrupt = 0
        self.write_errors = 0
        self._acked = 0
        self._next = 1
        self._segs = []  # [first_id, count, size_bytes], oldest first
        self._w = None  # append handle of the newest segment
        self._broken = False  # last write failed: start a new segment
        self._rpos = None  # (id, seg_first, offset) of a known record start
        self._buf = bytearray(128)
        self._hdr = bytearray(HDR)
        state.ensure_dir(dir)
        self._open()

    # ---- paths and persistence
    def _path(self, first, ext=_SEG_EXT):
        return "%s/%08x%s" % (self.dir, first, ext)

    def _save_cursor(self):
        try:
            state.write_json(self.dir + "/" + CURSOR,
                             {"acked": self._acked, "dropped": self.dropped, "corrupt": self.corrupt})
        except OSError:
            # The next successful save carries the counters; until then a
            # reboot may resend acked records (at least once, never lost).
            self.write_errors += 1

    # ---- open and recovery
    def _open(self):
        cur = state.read_json(self.dir + "/" + CURSOR, None)
        if isinstance(cur, dict):
            self._acked = _int(cur.get("acked"))
            self.dropped = _int(cur.get("dropped"))
            self.corrupt = _int(cur.get("corrupt"))
        firsts = []
        fixes = []
        for name in os.listdir(self.dir):
            if len(name) == 12 and (name.endswith(_SEG_EXT) or name.endswith(_FIX_EXT)):
                try:
                    first = int(name[:8], 16)
                except ValueError:
                    continue
                if name.endswith(_SEG_EXT):
                    firsts.append(first)
                else:
                    fixes.append(first)
        for first in fixes:
            # A .fix is renamed over its segment only once complete; if the
            # segment is gone the cut fell between remove and rename (FAT).
            if first in firsts:
                _rm(self._path(first, _FIX_EXT))
            else:
                os.rename(self._path(first, _FIX_EXT), self._path(first))
                firsts.append(first)
        firsts.sort()
        last = len(firsts) - 1
        for i in range(len(firsts)):
            first = firsts[i]
            count, good, size = self._scan(first, i == last)
            if good < size:
                # Torn tail: the newest segment after a cut, or an older one
                # whose last append failed (e.g. filesystem full).
                self._cut(first, good)
                self.corrupt += 1
                self._save_cursor()
            self._segs.append([first, count, good])
        if self._segs:
            s = self._segs[-1]
            self._next = s[0] + s[1]
        if self._next <= self._acked:
            self._next = self._acked + 1
        self._purge(keep_last=True)
        # Empty older segments carry nothing; the newest stays for appends.
        j = 0
        while j < len(self._segs) - 1:
            if self._segs[j][1] == 0:
                _rm(self._path(self._segs[j][0]))
                self._segs.pop(j)
            else:
                j += 1

    def _read_hdr(self, f):
        """(length, crc) of the header at the file position, or None."""
        h = self._hdr
        if f.readinto(h) != HDR:
            return None
        magic, ver, length, crc = struct.unpack(_HDR_FMT, h)
        if magic != MAGIC or ver != VERSION or length > self.max_payload:
            return None
        return length, crc

    def _payload_crc(self, f, rid, length):
        """CRC of the next `length` payload bytes read in small chunks, or
        None if the file ends first."""
        crc = _crc(rid, length)
        mv = memoryview(self._buf)
        left = length
        while left:
            k = len(self._buf) if left > len(self._buf) else left
            got = f.readinto(mv[:k])
            if not got:
                return None
            crc = binascii.crc32(mv[:got], crc)
            left -= got
        return crc & 0xFFFFFFFF

    def _scan(self, first, verify):
        """Walk a segment: (valid records, bytes they span, file size).
        verify=True checks every CRC (the newest segment, which may be torn);
        older segments were complete when closed, so headers suffice."""
        path = self._path(first)
        size = _size(path)
        count = 0
        off = 0
        f = open(path, "rb")
        try:
            while off < size:
                f.seek(off)
                h = self._read_hdr(f)
                if h is None:
                    break
                length, crc = h
                end = off + HDR + length
                if end > size:
                    break
                if verify and self._payload_crc(f, first + count, length) != crc:
                    break
                off = end
                count += 1
        finally:
            f.close()
        return count, off, size

    def _cut(self, first, good):
        """Keep only the first `good` bytes of a segment (no truncate() on
        MicroPython): copy them to .fix, then rename it over the segment."""
        src = self._path(first)
        fix = self._path(first, _FIX_EXT)
        mv = memoryview(self._buf)
        fi = open(src, "rb")
        try:
            fo = open(fix, "wb")
            try:
                left = good
                while left:
                    k = len(self._buf) if left > len(self._buf) else left
                    got = fi.readinto(mv[:k])
                    if not got:
                        break
                    fo.write(mv[:got])
                    left -= got
                fo.flush()
            finally:
                fo.close()
        finally:
            fi.close()
        try:
            os.rename(fix, src)
        except OSError:
            os.remove(src)  # FAT: cannot rename onto a file; .fix is complete
            os.rename(fix, src)

    def _purge(self, keep_last):
        """Delete whole segments whose records are all acked."""
        n = len(self._segs) - (1 if keep_last else 0)
        while n > 0 and self._segs and self._segs[0][0] + self._segs[0][1] - 1 <= self._acked:
            s = self._segs.pop(0)
            _rm(self._path(s[0]))
            n -= 1

    # ---- writing
    def append(self, payload):
        """Store payload (bytes, <= max_payload) durably; returns its id."""
        n = len(payload)
        if n > self.max_payload:
            raise ValueError("record of %d bytes exceeds %d" % (n, self.max_payload))
        rid = self._next
        segs = self._segs
        if (not segs or self._broken or segs[-1][0] + segs[-1][1] != rid
                or (segs[-1][1] and segs[-1][2] + HDR + n > self.seg_bytes)):
            self._new_segment(rid)
        seg = segs[-1]
        if self._w is None:
            self._w = open(self._path(seg[0]), "ab")
        crc = binascii.crc32(payload, _crc(rid, n)) & 0xFFFFFFFF
        try:
            self._w.write(struct.pack(_HDR_FMT, MAGIC, VERSION, n, crc))
            self._w.write(payload)
            self._w.flush()
        except OSError:
            # Whatever reached flash is a torn tail of this segment; leave it
            # behind and start a fresh segment next time.
            self.write_errors += 1
            self._broken = True
            self._close_writer()
            raise
        seg[1] += 1
        seg[2] += HDR + n
        self._next = rid + 1
        return rid

    def _close_writer(self):
        if self._w is not None:
            try:
                self._w.close()
            except OSError:
                pass
            self._w = None

    def _new_segment(self, first):
        self._close_writer()
        self._broken = False
        self._purge(keep_last=False)
        segs = self._segs
        if segs and segs[-1][1] == 0:
            # An empty newest segment with the wrong name: replace it.
            _rm(self._path(segs.pop()[0]))
        while len(segs) >= self.max_segs:
            old = segs[0]
            end = old[0] + old[1] - 1
            lost = end - (self._acked if self._acked >= old[0] else old[0] - 1)
            if lost > 0:
                self.dropped += lost
            # Dropping = consuming: the cursor moves past the segment first,
            # so a cut before the file is removed cannot count it twice.
            if end > self._acked:
                self._acked = end
            self._save_cursor()
            _rm(self._path(old[0]))
            segs.pop(0)
            self._rpos = None
        f = open(self._path(first), "wb")
        f.close()
        segs.append([first, 0, 0])

    # ---- reading
    def peek(self, n=1):
        """Up to n oldest unacked records as [(id, bytes)], reading only
        those. A record failing its CRC ends its segment's readable part (the
        rest of that segment is counted in .corrupt)."""
        out = []
        rid = self._acked + 1
        for seg in self._segs:
            if len(out) >= n:
                break
            first, count = seg[0], seg[1]
            if first + count <= rid:
                continue
            if rid < first:
                rid = first
            f = open(self._path(first), "rb")
            try:
                off = self._locate(f, seg, rid)
                while off is not None and rid < first + count and len(out) < n:
                    f.seek(off)
                    h = self._read_hdr(f)
                    data = None
                    if h is not None:
                        data = f.read(h[0])
                        if len(data) != h[0] or (binascii.crc32(data, _crc(rid, h[0])) & 0xFFFFFFFF) != h[1]:
                            data = None
                    if data is None or h is None:
                        self._lose_tail(seg, rid)
                        break
                    out.append((rid, data))
                    off += HDR + h[0]
                    rid += 1
                    self._rpos = (rid, first, off)
            finally:
                f.close()
        return out

    def _locate(self, f, seg, rid):
        """Byte offset of record rid in segment seg, skipping by headers."""
        p = self._rpos
        if p is not None and p[1] == seg[0] and p[0] <= rid:
            cur, off = p[0], p[2]
        else:
            cur, off = seg[0], 0
        while cur < rid:
            f.seek(off)
            h = self._read_hdr(f)
            if h is None:
                self._lose_tail(seg, cur)
                return None
            off += HDR + h[0]
            cur += 1
        return off

    def _lose_tail(self, seg, rid):
        lost = seg[0] + seg[1] - rid
        if lost > 0:
            seg[1] = rid - seg[0]
            self.corrupt += lost
            self._save_cursor()
        self._rpos = None

    def ack(self, upto_id):
        """Mark every record with id <= upto_id consumed; persisted before
        return. Fully consumed segments (except the one being written) are
        deleted."""
        if upto_id >= self._next:
            upto_id = self._next - 1
        if upto_id <= self._acked:
            return
        self._acked = upto_id
        self._save_cursor()
        self._purge(keep_last=True)

    def __len__(self):
        pending = 0
        a = self._acked + 1
        for first, count, _size in self._segs:
            lo = first if first > a else a
            if first + count > lo:
                pending += first + count - lo
        return pending

    @property
    def next_id(self):
        return self._next

    @property
    def acked(self):
        return self._acked

    def segments(self):
        return len(self._segs)

    def disk_bytes(self):
        return sum(s[2] for s in self._segs)

    def stats(self):
        return {"pending": len(self), "dropped": self.dropped, "corrupt": self.corrupt,
                "segs": len(self._segs), "bytes": self.disk_bytes(), "write_errors": self.write_errors}

    def close(self):
        self._close_writer()


def _int(v):
    return v if type(v) is int and v >= 0 else 0


def _size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return 0


def _rm(path):
    try:
        os.remove(path)
    except OSError:
        pass
