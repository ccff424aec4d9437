"""What to do after an attempt: answer the caller, or try again. Pure.

The rotation walks the pool: each attempt uses a key not yet tried for this request while untried
keys remain, and never sleeps before trying another healthy key. Only when every available key
has been tried does a retry reuse one, after a backoff with full jitter. Everything is bounded by
`retry_attempts` attempts and by the request's deadline.

A connection that failed before the request was sent is always safe to retry. A timeout or a
reset after a non-idempotent request (POST, PATCH) was sent is not retried — the upstream may
have acted on it — unless `retry_non_idempotent` is set.
"""

from __future__ import annotations

import random

from poolswitch.classifier import Outcome, Verdict

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
BACKOFF_BASE = 0.1
BACKOFF_CAP = 2.0

_TRANSPORT = (Outcome.NETWORK_ERROR, Outcome.TIMEOUT)


def may_retry(
    verdict: Verdict,
    attempts: int,
    retry_attempts: int,
    *,
    method: str,
    sent: bool = True,
    retry_non_idempotent: bool = False,
) -> bool:
    """True when the request should get another attempt after `attempts` attempts."""
    if not verdict.failover or attempts >= retry_attempts:
        return False
    if verdict.outcome in _TRANSPORT and sent:
        return method in IDEMPOTENT or retry_non_idempotent
    return True


def may_reuse(verdict: Verdict) -> bool:
    """May a key already tried for this request be tried again (after a backoff)? Only when the
    failure was not the key's fault; a parked or disabled key is never selected anyway."""
    return verdict.backoff or verdict.outcome in (Outcome.UPSTREAM_ERROR, *_TRANSPORT)


def backoff(round_: int, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**round))."""
    return rng.uniform(0.0, min(BACKOFF_CAP, BACKOFF_BASE * (2**round_)))
