from __future__ import annotations

import random

import pytest

from poolswitch.classifier import Outcome, Verdict
from poolswitch.retry import backoff, may_retry, may_reuse

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
            delay = backoff(round_, rng)
            assert 0 <= delay < min(2.0, 0.1 * 2**round_)
