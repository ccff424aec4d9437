"""trace: the decision trace header, attempt by attempt, waits included; ids and outcomes only."""

from __future__ import annotations

from poolswitch.trace import HEADER, Trace


def test_each_attempt_in_order_with_the_wait_before_it() -> None:
    trace = Trace()
    trace.attempt("k1", "rate_limited")
    trace.wait(0.25)
    trace.wait(0.0504)
    trace.attempt("k2", "success")
    assert trace.header() == (HEADER, b"k1 rate_limited 0ms, k2 success 300ms")


def test_no_attempt_reads_none() -> None:
    assert Trace().header() == (b"x-poolswitch-trace", b"none")


def test_the_wait_counts_once() -> None:
    trace = Trace()
    trace.wait(1.0)
    trace.attempt("a", "timeout")
    trace.attempt("a", "timeout")
    assert trace.header()[1] == b"a timeout 1000ms, a timeout 0ms"
    assert "a timeout" in repr(trace)
