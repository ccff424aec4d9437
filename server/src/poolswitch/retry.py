"""What to do next in a request: try a key, wait, or answer. Pure: values in, a `Step` out.

The request loop (proxy.py) only carries the steps out. It asks at two moments:

- `after_attempt`: an attempt did not succeed. `TRY` another key, or stop: `RELAY` the last
  upstream answer, or `FAIL` with a proxy error when the last attempt got no answer.
- `when_no_key`: no key that is free now is left untried. `BACKOFF` (wait, then keys already
  tried may be used again), `QUEUE` (wait for a cooling key to return), or stop as above.

The rotation walks the pool: each attempt uses a key not yet tried for this request while untried
keys remain, and never sleeps before trying another healthy key. Only when every available key
has been tried does a retry reuse one — and only when the failure was not the key's fault
(`Verdict.key_fault`) — after a backoff with full jitter. Everything is bounded by
`retry_attempts` attempts and by the request's deadline.

A connection that failed before the request was sent is always safe to retry. A timeout or a
reset after a non-idempotent request (POST, PATCH) was sent is not retried — the upstream may
have acted on it — unless `retry_non_idempotent` is set.
"""

from __future__ import annotations

from dataclasses import dataclass

from poolswitch.classifier import Outcome, Verdict

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
BACKOFF_BASE = 0.1
BACKOFF_CAP = 2.0
QUEUE_SLACK = 0.005
"""A queued request wakes this long after the first key's return, so that the key is free."""

_TRANSPORT = (Outcome.NETWORK_ERROR, Outcome.TIMEOUT)


@dataclass(frozen=True, slots=True)
class Step:
    """The next thing the request loop does.

    action: "try" (select another key now) | "backoff" (wait `delay`, then tried keys may be
    reused) | "queue" (wait `delay` for a key to return) | "relay" (answer with the last upstream
    answer) | "fail" (answer with the proxy error `error`)."""

    action: str
    delay: float = 0.0
    error: str | None = None  # upstream_timeout | upstream_unreachable | no_available_keys


TRY = Step("try")
RELAY = Step("relay")
TIMED_OUT = Step("fail", error="upstream_timeout")
UNREACHABLE = Step("fail", error="upstream_unreachable")
NO_KEYS = Step("fail", error="no_available_keys")


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
    return verdict.failover and not verdict.key_fault


def backoff(round_: int, jitter: float) -> float:
    """Full jitter: `jitter` (uniform in [0, 1)) times min(cap, base * 2**round)."""
    return jitter * min(BACKOFF_CAP, BACKOFF_BASE * (2.0**round_))


def give_up(last: Verdict | None, answered: bool) -> Step:
    """The answer when the request stops: the last upstream answer if there is one, else the
    proxy error that names why the last attempt got none (or that no key was free)."""
    if answered:
        return RELAY
    if last is None:
        return NO_KEYS
    return TIMED_OUT if last.outcome is Outcome.TIMEOUT else UNREACHABLE


def after_attempt(
    verdict: Verdict,
    *,
    answered: bool,
    attempts: int,
    retry_attempts: int,
    method: str,
    sent: bool,
    retry_non_idempotent: bool,
    now: float,
    deadline: float,
) -> Step:
    """An attempt ended in `verdict` (`answered`: with an upstream answer, not a transport
    failure; `sent`: the request reached the upstream)."""
    if now < deadline and may_retry(
        verdict,
        attempts,
        retry_attempts,
        method=method,
        sent=sent,
        retry_non_idempotent=retry_non_idempotent,
    ):
        return TRY
    return give_up(verdict, answered)


def when_no_key(
    *,
    last: Verdict | None,
    answered: bool,
    tried: bool,
    attempts: int,
    retry_attempts: int,
    rounds: int,
    now: float,
    deadline: float,
    queue_deadline: float,
    returns_in: float | None,
    jitter: float,
) -> Step:
    """No free key is left untried. `last`: the last attempt's verdict (None: none yet);
    `tried`: keys were tried since the last backoff; `rounds`: backoffs so far; `returns_in`:
    seconds until the first cooling key returns (None: none will); `jitter` in [0, 1)."""
    if tried and last is not None and may_reuse(last) and attempts < retry_attempts:
        delay = backoff(rounds, jitter)
        if now + delay >= deadline:
            return give_up(last, answered)
        return Step("backoff", delay)
    if last is None and returns_in is not None and now + returns_in < queue_deadline:
        return Step("queue", returns_in + QUEUE_SLACK)
    return give_up(last, answered)
