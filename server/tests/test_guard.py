from __future__ import annotations

from poolswitch.guard import OutageGuard


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_trips_when_most_keys_fail_alike_and_clears_on_success() -> None:
    clock = Clock()
    guard = OutageGuard(4, clock)
    guard.failure(0, "upstream_overloaded")
    guard.failure(1, "upstream_error")
    assert not guard.tripped  # two keys of four, two failures
    guard.failure(2, "network_error")
    assert guard.tripped and guard.tripped_kind == "upstream" and guard.since == 100.0
    guard.success()
    assert not guard.tripped


def test_key_faults_never_trip_it() -> None:
    guard = OutageGuard(2, Clock())
    for key in (0, 1, 0, 1):
        guard.failure(key, "key_invalid")
        guard.failure(key, "quota_exhausted")
    assert not guard.tripped


def test_one_key_failing_is_not_an_outage() -> None:
    guard = OutageGuard(3, Clock())
    for _ in range(10):
        guard.failure(0, "upstream_error")
    assert not guard.tripped


def test_rate_limit_storm_across_keys_trips_it() -> None:
    guard = OutageGuard(3, Clock())
    for key in (0, 1, 2):
        guard.failure(key, "rate_limited")
    assert guard.tripped_kind == "rate_limited"


def test_old_failures_leave_the_window() -> None:
    clock = Clock()
    guard = OutageGuard(3, clock)
    guard.failure(0, "upstream_error")
    guard.failure(1, "upstream_error")
    clock.now += 11
    guard.failure(2, "upstream_error")
    assert not guard.tripped


def test_tripped_guard_admits_one_probe_at_a_time() -> None:
    clock = Clock()
    guard = OutageGuard(1, clock, probe_interval=0.5)
    assert guard.admit()
    for _ in range(3):
        guard.failure(0, "upstream_overloaded")
    assert guard.tripped
    assert guard.admit()  # the probe
    assert not guard.admit()  # one in flight
    guard.probe_done()
    assert not guard.admit()  # too soon after the last probe
    assert guard.retry_after() == 0.5
    clock.now += 0.5
    assert guard.admit()
