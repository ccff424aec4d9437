"""tally.py: the same exposition as prometheus_client's own metrics for the same updates."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from poolswitch.tally import Tally

BUCKETS = (0.001, 0.0025, 0.01, 0.5, 1, 60)
LABELS = ("method", "pool")


def exposition(registry: CollectorRegistry) -> str:
    """The text a scrape gets, creation times blanked (they differ by construction)."""
    return re.sub(r"(_created(?:\{[^}]*\})?) \S+", r"\1 T", generate_latest(registry).decode())


def both(counts: list[tuple[str, str, float]], observations: list[float]) -> tuple[str, str]:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    counter = Counter("t_requests", "Requests.", LABELS, registry=theirs)
    histogram = Histogram("t_seconds", "Seconds.", buckets=BUCKETS, registry=theirs)
    tally = Tally()
    ours.register(tally)
    our_counter = tally.counter("t_requests", "Requests.", LABELS)
    our_histogram = tally.histogram("t_seconds", "Seconds.", BUCKETS)
    for method, pool, amount in counts:
        counter.labels(method, pool).inc(amount)
        our_counter.labels(method, pool).inc(amount)
    for value in observations:
        histogram.observe(value)
        our_histogram.observe(value)
    return exposition(theirs), exposition(ours)


@pytest.mark.parametrize(
    ("counts", "observations"),
    [
        ([], []),  # nothing yet: the families' HELP and TYPE, an empty histogram
        ([("POST", "default", 1)], [0.0005]),
        ([("POST", "a", 1), ("GET", "b", 2), ("POST", "a", 1)], [0.001, 0.0025, 1.0]),
        ([], [0.0, 60.0, 61.0, 1e9]),  # on a bound, above the last, far beyond
        ([("GET", 'q"\\\n', 1)], [0.7]),  # a label value that needs escaping
    ],
)
def test_the_same_samples_as_prometheus_client(
    counts: list[tuple[str, str, float]], observations: list[float]
) -> None:
    theirs, ours = both(counts, observations)
    assert ours == theirs


@given(
    st.lists(
        st.tuples(st.sampled_from(["GET", "POST"]), st.sampled_from(["a", "b"]), st.just(1.0))
    ),
    st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False)),
)
def test_any_updates_give_the_same_samples(
    counts: list[tuple[str, str, float]], observations: list[float]
) -> None:
    theirs, ours = both(counts, observations)
    assert ours == theirs


def test_a_child_is_one_object_per_label_values() -> None:
    counter = Tally().counter("t", "T.", ("a",))
    assert counter.labels("x") is counter.labels("x")
    assert counter.labels("x") is not counter.labels("y")


@pytest.mark.parametrize(
    ("values", "error"),
    [(("x", "y"), ValueError), ((), ValueError), ((1,), TypeError)],
)
def test_wrong_label_values_are_refused(values: tuple[object, ...], error: type) -> None:
    counter = Tally().counter("t", "T.", ("a",))
    with pytest.raises(error):
        counter.labels(*values)  # type: ignore[arg-type]


def test_bucket_bounds_must_ascend() -> None:
    with pytest.raises(ValueError, match="ascend"):
        Tally().histogram("t", "T.", (1, 0.5))
    assert Tally().histogram("t", "T.", (1, math.inf)).bounds == [1.0, math.inf]
