# Power-cut target for tests/test_store_powercut.py: appends records to a
# RecordLog forever, acking in batches like an uploader would, and reports
# "A <id>" after each append returned and "K <id>" after each ack returned.
# The test kills it with SIGKILL at random moments.
# Usage: micropython store_writer.py <dir> <seed>
import sys
import struct
import random
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


def main():
    d = sys.argv[1]
    random.seed(int(sys.argv[2]))
    log = RecordLog(d, seg_bytes=SEG_BYTES, max_segs=MAX_SEGS)
    out = sys.stdout
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
                log.ack(upto)
                out.write("K %d\n" % upto)
                out.flush()


if __name__ == "__main__":
    main()
