from __future__ import annotations

from poolswitch.classifier import (
    KEY_INVALID,
    NETWORK_ERROR,
    TIMEOUT,
    UPSTREAM_ERROR,
    UPSTREAM_OVERLOADED,
    Outcome,
    Verdict,
)
from poolswitch.guard import OutageGuard

QUOTA = Verdict(Outcome.QUOTA_EXHAUSTED, failover=True, cooldown=60.0)
RATE = Verdict(Outcome.RATE_LIMITED, failover=True, cooldown=1.0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_trips_when_most_keys_fail_alike_and_clears_on_success() -> None:
    clock = Clock()
    guard = OutageGuard(4, clock)
    guard.failure(0, UPSTREAM_OVERLOADED)
    guard.failure(1, UPSTREAM_ERROR)
    assert not guard.tripped  # two keys of four, two failures
    guard.failure(2, NETWORK_ERROR)
    assert guard.tripped and guard.tripped_kind == "upstream" and guard.since == 100.0
    guard.success()
    assert not guard.tripped


def test_key_faults_never_trip_it() -> None:
    guard = OutageGuard(2, Clock())
    for key in (0, 1, 0, 1):
        guard.failure(key, KEY_INVALID)
        guard.failure(key, QUOTA)
    assert not guard.tripped


def test_one_key_failing_is_not_an_outage() -> None:
    guard = OutageGuard(3, Clock())
    for _ in range(10):
        guard.failure(0, UPSTREAM_ERROR)
    assert not guard.tripped


def test_rate_limit_storm_across_keys_trips_it() -> None:
    guard = OutageGuard(3, Clock())
    for key in (0, 1, 2):
        guard.failure(key, RATE)
    assert guard.tripped_kind == "rate_limited"


def test_timeouts_on_most_keys_trip_it() -> None:
    guard = OutageGuard(2, Clock())
    for key in (0, 1, 0):
        guard.failure(key, TIMEOUT)
    assert guard.tripped_kind == "upstream"


def test_a_success_after_failures_counts_as_a_recovery() -> None:
    guard = OutageGuard(2, Clock())
    guard.success()
    assert guard.recoveries == 0  # nothing had failed
    guard.failure(0, TIMEOUT)
    guard.success()
    guard.success()
    assert guard.recoveries == 1


def test_old_failures_leave_the_window() -> None:
    clock = Clock()
    guard = OutageGuard(3, clock)
    guard.failure(0, UPSTREAM_ERROR)
    guard.failure(1, UPSTREAM_ERROR)
    clock.now += 11
    guard.failure(2, UPSTREAM_ERROR)
    assert not guard.tripped


def test_tripped_guard_admits_one_probe_at_a_time() -> None:
    clock = Clock()
    guard = OutageGuard(1, clock, probe_interval=0.5)
    assert guard.admit()
    for _ in range(3):
        guard.failure(0, UPSTREAM_OVERLOADED)
    assert guard.tripped
    assert guard.admit()  # the probe
    assert not guard.admit()  # one in flight
    guard.probe_done()
    assert not guard.admit()  # too soon after the last probe
    assert guard.retry_after() == 0.5
    clock.now += 0.5
    assert guard.admit()
