# Store and forward: every report goes to the flash ring first, then out
# from the ring oldest first; a record is deleted (store.ack) only once the
# link confirms the broker acknowledged it (QoS 1 PUBACK). A power cut at any
# moment loses nothing already appended: unacknowledged records are simply
# sent again after the reboot (consumers dedupe on (device id, seq)). When the
# ring is full the store drops the oldest segment and counts store.dropped.
#
# The link is any object with
#   publish(payload_bytes) -> bool      queue one QoS 1 message (False: no room)
#   async confirm() -> bool             True once everything published so far
#                                       is acknowledged; False if the link
#                                       failed and the rest must wait
#   connected() -> bool
# so the policy runs the same over the MQTT client, a test fake, or a driver.
from roadedge.core.store import HDR
from roadedge.tracker import record


def store_geometry(records, seg_bytes):
    """(seg_bytes, max_segs) so the ring holds at least `records` reports:
    one extra segment because the oldest is dropped as a whole."""
    per = (seg_bytes // (record.SIZE + HDR))
    segs = (records + per - 1) // per + 1
    return seg_bytes, max(2, segs)


class Forwarder:
    def __init__(self, store, tid, window=8):
        self.store = store
        self.tid = tid
        self.window = window
        self.sent = 0  # records confirmed
        self.batches = 0
        self._live_from = None  # ids >= this were made while the link was up and nothing was waiting

    def add(self, report, connected):
        """Append one report durably; returns its store id."""
        if connected and self._live_from is None and len(self.store) == 0:
            self._live_from = self.store.next_id
        elif not connected:
            self._live_from = None
        return self.store.append(report.pack())

    def link_down(self):
        self._live_from = None

    def backlog(self):
        return len(self.store)

    def dropped(self):
        return self.store.dropped

    def batch(self, now_s=0):
        """[(id, payload_json)] of the oldest unsent records, marked live or
        catch-up. Records that fail to decode are skipped (acked with the
        batch) and counted by the caller through `bad`."""
        out = []
        self.bad = 0
        for rid, data in self.store.peek(self.window):
            try:
                r = record.unpack(data)
            except ValueError:
                self.bad += 1
                out.append((rid, None))
                continue
            live = self._live_from is not None and rid >= self._live_from
            out.append((rid, record.owntracks_json(r, self.tid, live, now_s)))
        return out

    async def pump_once(self, link, now_s=0):
        """Send one batch and wait for its acknowledgement. Returns the number
        of records confirmed and deleted (0: nothing to send or link failed)."""
        items = self.batch(now_s)
        if not items:
            if link.connected() and self._live_from is None:
                self._live_from = self.store.next_id  # backlog drained: new reports are live
            return 0
        last = 0
        for rid, payload in items:
            if payload is not None and not link.publish(payload):
                break
            last = rid
        if not last:
            return 0
        if not await link.confirm():
            self._live_from = None
            return 0
        n = 0
        for rid, _p in items:
            if rid <= last:
                n += 1
        self.store.ack(last)
        self.sent += n
        self.batches += 1
        return n
