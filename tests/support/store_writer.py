# Power-cut target for tests/test_store_powercut.py: appends records to a
# RecordLog forever, acking in batches like an uploader would, and reports
# "A <id>" after each append returned, "k <id>" just before each ack and
# "K <id>" after it returned. The test kills it with SIGKILL at random
# moments; a kill between "k" and "K" may or may not have consumed the batch
# (the ack is one atomic cursor write), so the test reads the cursor back.
# Optional kill point: "cursor:N" or "rm:N" stops the writer right after the
# store's Nth cursor write or Nth segment removal returned (it reports
# "P <point>" and waits to be killed), to hit those windows every time.
# Usage: micropython store_writer.py <dir> <seed> [<point>:<n>]
import sys
import struct
import random
import time
from roadedge.core import state, store
from roadedge.core.store import RecordLog

SEG_BYTES = 1024
MAX_SEGS = 64


def payload(rid):
    # id + length-varying deterministic filler: a misread shows as a mismatch
    n = 8 + rid % 41
    b = bytearray(struct.pack("<I", rid)) + bytearray(n)
    for k in range(n):
        b[4 + k] = (rid * 13 + k) & 0xFF
    return bytes(b)


def _stop_after(mod, name, label, n, out):
    """Wrap mod.name so that its nth call returns into a report and a wait
    for SIGKILL: the store's own code stays untouched."""
    orig = getattr(mod, name)
    calls = [0]

    def wrapped(*args):
        r = orig(*args)
        calls[0] += 1
        if calls[0] == n:
            out.write("P %s:%d\n" % (label, n))
            out.flush()
            while True:
                time.sleep(1)
        return r

    setattr(mod, name, wrapped)


def main():
    d = sys.argv[1]
    random.seed(int(sys.argv[2]))
    out = sys.stdout
    if len(sys.argv) > 3:
        label, n = sys.argv[3].split(":")
        if label == "cursor":
            _stop_after(state, "write_json", label, int(n), out)
        elif label == "rm":
            _stop_after(store, "_rm", label, int(n), out)
        else:
            raise ValueError("unknown kill point " + label)
    log = RecordLog(d, seg_bytes=SEG_BYTES, max_segs=MAX_SEGS)
    while True:
        rid = log.next_id
        got = log.append(payload(rid))
        if got != rid:
            out.write("E append returned %d, expected %d\n" % (got, rid))
            out.flush()
            return
        out.write("A %d\n" % got)
        out.flush()
        if random.randint(0, 15) == 0:
            batch = log.peek(random.randint(1, 40))
            if batch:
                for i, data in batch:
                    if data != payload(i):
                        out.write("E bad record %d\n" % i)
                        out.flush()
                        return
                upto = batch[-1][0]
                out.write("k %d\n" % upto)
                out.flush()
                log.ack(upto)
                out.write("K %d\n" % upto)
                out.flush()


if __name__ == "__main__":
    main()
