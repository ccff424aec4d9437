from __future__ import annotations

import pytest

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
BY_OUTCOME = {
    "rate_limited": RATE,
    "quota_exhausted": QUOTA,
    "key_invalid": KEY_INVALID,
    "upstream_error": UPSTREAM_ERROR,
    "upstream_overloaded": UPSTREAM_OVERLOADED,
    "timeout": TIMEOUT,
    "network_error": NETWORK_ERROR,
}


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


def test_only_an_upstream_outage_holds_requests() -> None:
    """A 429 storm parks each key for as long as its provider says; the pool then answers
    accurately by itself (a key still available is tried; none -> no_available_keys with the
    real wait), so the guard reports it (degraded) but holds nothing."""
    clock = Clock()
    guard = OutageGuard(2, clock)
    for key in (0, 1, 0):
        guard.failure(key, BY_OUTCOME["rate_limited"])
    assert guard.tripped_kind == "rate_limited" and not guard.holds
    assert all(guard.admit() for _ in range(5))  # no probe, no refusal


def test_a_rate_limit_storm_can_still_become_an_outage() -> None:
    clock = Clock()
    guard = OutageGuard(2, clock)
    for key in (0, 1, 0):
        guard.failure(key, BY_OUTCOME["rate_limited"])
    clock.now += 1
    for key in (0, 1, 0):
        guard.failure(key, BY_OUTCOME["upstream_error"])
    assert guard.tripped_kind == "upstream" and guard.holds and guard.since == 101.0
    for key in (0, 1, 0):
        guard.failure(key, BY_OUTCOME["rate_limited"])
    assert guard.tripped_kind == "upstream"  # an outage is not downgraded by 429s


def test_reset_clears_a_tripped_guard_and_its_window() -> None:
    clock = Clock()
    guard = OutageGuard(2, clock)
    for key in (0, 1, 0):
        guard.failure(key, BY_OUTCOME["upstream_overloaded"])
    assert guard.admit() and not guard.admit()  # one probe in flight, the rest held
    guard.reset()
    assert not guard.tripped and guard.since is None and guard.admit() and guard.admit()
    guard.failure(1, BY_OUTCOME["upstream_overloaded"])
    assert not guard.tripped  # the failures before the reset no longer count


@pytest.mark.parametrize(
    ("outcomes", "kind", "holds"),
    [
        (["rate_limited"] * 3, "rate_limited", False),
        (["upstream_error"] * 3, "upstream", True),
        (["timeout", "network_error", "upstream_overloaded"], "upstream", True),
        (["rate_limited", "upstream_error", "rate_limited"], None, False),  # not alike
        (["quota_exhausted"] * 3, None, False),  # the keys' own fault
        (["key_invalid"] * 3, None, False),
    ],
)
def test_what_trips_and_what_holds(outcomes: list[str], kind: str | None, holds: bool) -> None:
    guard = OutageGuard(2, Clock())
    for key, outcome in zip((0, 1, 0), outcomes, strict=True):
        guard.failure(key, BY_OUTCOME[outcome])
    assert (guard.tripped_kind, guard.holds) == (kind, holds)
