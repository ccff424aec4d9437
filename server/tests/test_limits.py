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
        (2, [0.5, 0.6, 0.7], 0.7, 60.3),  # counted at 1 s: free again at 61 s
        (1, [10.2, 70.9], 70.9, 0.1),
        (1, [10.2, 71.0], None, None),
        (3, [0, 1, 2, 59.5], 59.5, 0.5),
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


def test_window_holds_at_most_61_seconds() -> None:
    limit = CallerLimit(1_000_000, None)
    for i in range(200_000):
        limit.admit(i / 1000)
        limit.release()
    assert len(limit._seconds) <= 61
    assert limit.used(200.0) == 59_999  # counted at 141 s .. 200 s


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
