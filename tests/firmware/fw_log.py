# roadedge.core.log: bounded ring, level filter, sink errors, tail.
from roadedge.core.log import Log, MAX_MSG


class FakeClock:
    def __init__(self, t):
        self.t = t

    def now_s(self):
        return self.t


def test_ring_bounded_and_tail():
    log = Log(capacity=4, level="D", echo=False)
    for i in range(10):
        log.info("m%d" % i)
    assert len(log) == 4 and log.dropped == 6
    assert [r[2] for r in log.tail()] == ["m6", "m7", "m8", "m9"]
    assert [r[2] for r in log.tail(2)] == ["m8", "m9"]
    assert log.tail(0) == []


def test_level_filter():
    log = Log(capacity=8, level="W", echo=False)
    log.debug("d")
    log.info("i")
    log.warn("w")
    log.error("e")
    assert [(r[1], r[2]) for r in log.tail()] == [("W", "w"), ("E", "e")]
    assert log.counts["I"] == 0 and log.counts["W"] == 1


def test_sink_receives_and_failures_are_counted():
    log = Log(capacity=8, echo=False)
    got = []
    log.sink = got.append
    log.info("hello")
    assert got == [(0, "I", "hello")]

    def bad(rec):
        raise OSError("mqtt down")

    log.sink = bad
    log.error("x")
    log.error("y")
    assert log.sink_errors == 2 and len(log) == 3


def test_sink_that_logs_does_not_recurse():
    log = Log(capacity=8, echo=False)
    calls = []

    def sink(rec):
        calls.append(rec)
        log.warn("sink trouble")

    log.sink = sink
    log.info("a")
    assert len(calls) == 1 and [r[2] for r in log.tail()] == ["a", "sink trouble"]


def test_timestamps_long_messages_and_exceptions():
    clk = FakeClock(None)
    log = Log(capacity=4, echo=True, clock=clk)
    log.info("before clock")
    clk.t = 1790000000.5
    log.info("x" * 1000)
    log.exc(ValueError("bad"), "parse")
    recs = log.tail()
    assert recs[0][0] == 0 and recs[1][0] == 1790000000.5
    assert len(recs[1][2]) == MAX_MSG
    assert recs[2][1] == "E" and "ValueError" in recs[2][2] and "parse" in recs[2][2]
    log.info(12345)  # non-strings are logged as text
    assert log.tail(1)[0][2] == "12345"
