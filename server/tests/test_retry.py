from __future__ import annotations

import random

import pytest

from poolswitch.classifier import Outcome, Verdict
from poolswitch.retry import (
    NO_KEYS,
    RELAY,
    TIMED_OUT,
    TRY,
    UNREACHABLE,
    Step,
    after_attempt,
    backoff,
    may_retry,
    may_reuse,
    when_no_key,
)

RATE = Verdict(Outcome.RATE_LIMITED, failover=True, cooldown=2.0)
NETWORK = Verdict(Outcome.NETWORK_ERROR, failover=True)
TIMEOUT = Verdict(Outcome.TIMEOUT, failover=True)
OVERLOADED = Verdict(Outcome.UPSTREAM_OVERLOADED, failover=True, backoff=True)
CLIENT = Verdict(Outcome.CLIENT_ERROR)


@pytest.mark.parametrize(
    ("verdict", "attempts", "method", "sent", "non_idempotent", "expected"),
    [
        (RATE, 1, "POST", True, False, True),
        (RATE, 3, "POST", True, False, False),  # out of attempts
        (CLIENT, 1, "GET", True, False, False),
        (NETWORK, 1, "POST", False, False, True),  # never sent: always safe
        (NETWORK, 1, "POST", True, False, False),  # sent, not idempotent
        (TIMEOUT, 1, "PATCH", True, False, False),
        (TIMEOUT, 1, "POST", True, True, True),  # retry_non_idempotent
        (TIMEOUT, 1, "GET", True, False, True),
        (NETWORK, 1, "PUT", True, False, True),
        (OVERLOADED, 2, "POST", True, False, True),
    ],
)
def test_may_retry(
    verdict: Verdict,
    attempts: int,
    method: str,
    sent: bool,
    non_idempotent: bool,
    expected: bool,
) -> None:
    got = may_retry(
        verdict, attempts, 3, method=method, sent=sent, retry_non_idempotent=non_idempotent
    )
    assert got is expected


def test_only_failures_that_are_not_the_keys_fault_reuse_a_key() -> None:
    assert may_reuse(OVERLOADED) and may_reuse(NETWORK) and may_reuse(TIMEOUT)
    assert may_reuse(Verdict(Outcome.UPSTREAM_ERROR, failover=True))
    assert not may_reuse(RATE)


def test_backoff_is_full_jitter_and_capped() -> None:
    rng = random.Random(1)
    for round_ in range(10):
        for _ in range(50):
            delay = backoff(round_, rng.random())
            assert 0 <= delay < min(2.0, 0.1 * 2**round_)


SERVER = Verdict(Outcome.UPSTREAM_ERROR, failover=True)
INVALID = Verdict(Outcome.KEY_INVALID, failover=True, disable=True)


@pytest.mark.parametrize(
    ("verdict", "answered", "attempts", "method", "sent", "now", "expected"),
    [
        (RATE, True, 1, "POST", True, 0.0, TRY),
        (RATE, True, 3, "POST", True, 0.0, RELAY),  # out of attempts: the last answer
        (RATE, True, 1, "POST", True, 10.0, RELAY),  # out of time
        (CLIENT, True, 1, "GET", True, 0.0, RELAY),  # never fails over
        (TIMEOUT, False, 1, "POST", True, 0.0, TIMED_OUT),  # sent, not idempotent
        (TIMEOUT, False, 1, "GET", True, 0.0, TRY),
        (TIMEOUT, False, 3, "GET", True, 0.0, TIMED_OUT),
        (NETWORK, False, 1, "POST", False, 0.0, TRY),  # never sent
        (NETWORK, False, 3, "POST", False, 0.0, UNREACHABLE),
        (NETWORK, False, 1, "PATCH", True, 0.0, UNREACHABLE),
    ],
)
def test_after_attempt(
    verdict: Verdict,
    answered: bool,
    attempts: int,
    method: str,
    sent: bool,
    now: float,
    expected: Step,
) -> None:
    got = after_attempt(
        verdict,
        answered=answered,
        attempts=attempts,
        retry_attempts=3,
        method=method,
        sent=sent,
        retry_non_idempotent=False,
        now=now,
        deadline=10.0,
    )
    assert got == expected


@pytest.mark.parametrize(
    ("last", "answered", "tried", "attempts", "rounds", "now", "returns_in", "expected"),
    [
        # nothing tried yet, no key free: queue if a key returns before the queue deadline
        (None, False, False, 0, 0, 0.0, 4.0, Step("queue", 4.005)),
        (None, False, False, 0, 0, 0.0, 6.0, NO_KEYS),  # after the queue deadline
        (None, False, False, 0, 0, 0.0, None, NO_KEYS),  # no key will return
        # every free key tried, not the key's fault: back off, then reuse
        (SERVER, True, True, 2, 0, 0.0, None, Step("backoff", 0.05)),
        (SERVER, True, True, 2, 3, 0.0, None, Step("backoff", 0.4)),
        (SERVER, True, True, 2, 9, 0.0, None, Step("backoff", 1.0)),  # capped at 2 s
        (OVERLOADED, True, True, 1, 0, 0.0, None, Step("backoff", 0.05)),
        (TIMEOUT, False, True, 1, 0, 0.0, None, Step("backoff", 0.05)),
        (SERVER, True, True, 3, 0, 0.0, None, RELAY),  # out of attempts
        (SERVER, True, True, 2, 0, 9.99, None, RELAY),  # the backoff would pass the deadline
        (TIMEOUT, False, True, 3, 0, 0.0, None, TIMED_OUT),
        (NETWORK, False, True, 3, 0, 0.0, None, UNREACHABLE),
        (SERVER, True, False, 2, 1, 0.0, None, RELAY),  # nothing free even after a backoff
        # the key's fault: never reused
        (RATE, True, True, 1, 0, 0.0, 1.0, RELAY),
        (INVALID, True, True, 1, 0, 0.0, None, RELAY),
    ],
)
def test_when_no_key(
    last: Verdict | None,
    answered: bool,
    tried: bool,
    attempts: int,
    rounds: int,
    now: float,
    returns_in: float | None,
    expected: Step,
) -> None:
    got = when_no_key(
        last=last,
        answered=answered,
        tried=tried,
        attempts=attempts,
        retry_attempts=3,
        rounds=rounds,
        now=now,
        deadline=10.0,
        queue_deadline=5.0,
        returns_in=returns_in,
        jitter=0.5,
    )
    assert got == expected


def test_only_the_keys_own_faults_are_never_reused() -> None:
    for outcome in Outcome:
        verdict = Verdict(outcome, failover=True)
        assert may_reuse(verdict) is not outcome.key_fault
    assert may_reuse(Verdict(Outcome.RATE_LIMITED, failover=True, backoff=True))  # a retry rule
