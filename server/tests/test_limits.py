from __future__ import annotations

import pytest

from poolswitch.limits import CONCURRENCY, RPM, CallerLimit


def test_no_limits_admit_everything() -> None:
    limit = CallerLimit(None, None)
    for i in range(10_000):
        assert limit.admit(i / 100) is None
    assert limit.in_flight == 10_000
    assert limit.used(100.0) == 0


@pytest.mark.parametrize(
    ("rpm", "times", "refused_at", "wait"),
    [
        (2, [0.5, 0.6, 0.7], 0.7, 59.8),  # the oldest leaves the window at 60.5 s
        (1, [10.2, 70.1], 70.1, 0.1),
        (1, [10.2, 70.2], None, None),
        (3, [0, 1, 2, 59.5], 59.5, 0.5),
        (1, [10.2, 10.2000001], 10.2000001, 60.0),  # never more than a minute
    ],
)
def test_rpm_window(
    rpm: int, times: list[float], refused_at: float | None, wait: float | None
) -> None:
    limit = CallerLimit(rpm, None)
    for now in times:
        verdict = limit.admit(now)
        if now == refused_at:
            assert verdict is not None
            assert verdict[0] == RPM
            assert verdict[1] == pytest.approx(wait)
        else:
            assert verdict is None
            limit.release()


def test_rpm_never_more_than_the_limit_in_any_minute() -> None:
    limit = CallerLimit(5, None)
    admitted: list[float] = []
    now = 0.0
    while now < 300:
        if limit.admit(now) is None:
            admitted.append(now)
            limit.release()
        now += 0.37
    for start in admitted:
        assert sum(1 for t in admitted if start <= t < start + 60) <= 5
    assert len(admitted) >= 5 * 4  # and it lets the limit through every minute
    assert limit.rejected > 0


def test_the_log_holds_the_last_minute_only() -> None:
    limit = CallerLimit(1_000_000, None)
    for i in range(200_000):
        limit.admit(i / 1000)
        limit.release()
    assert limit.used(200.0) == 59_999  # the requests after 140 s
    assert len(limit._times) == 59_999
    small = CallerLimit(3, None)
    for i in range(1000):
        small.admit(i / 10)
    assert len(small._times) <= 3  # never more than rpm entries


def test_concurrency() -> None:
    limit = CallerLimit(None, 2)
    assert limit.admit(0) is None
    assert limit.admit(0) is None
    assert limit.admit(0) == (CONCURRENCY, 1.0)
    limit.release()
    assert limit.admit(0) is None
    assert limit.rejected == 1


def test_refused_requests_are_not_counted() -> None:
    limit = CallerLimit(1, 1)
    assert limit.admit(0.5) is None
    assert limit.admit(0.6) is not None  # concurrency
    limit.release()
    assert limit.admit(0.7) is not None  # rpm
    assert limit.used(0.8) == 1
    assert limit.in_flight == 0
