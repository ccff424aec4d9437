"""Keys and their state.

A `Key` is what the config says about one key: its id, weight and the header value that carries
its secret (never shown in a repr). A `KeyState` is what the pool has learned about it: whether it
may be used now, why not, and its counters. `KeyState` methods are the only state transitions;
they do no I/O and take the time as an argument.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from poolswitch.config import KeyConfig

AVAILABLE = "available"
COOLING_DOWN = "cooling_down"
DISABLED = "disabled"
DRAINING = "draining"
DRAINED = "drained"
OPERATOR = "disabled_by_operator"
"""The reason of a key an operator disabled, for good or for a while (source `admin`)."""


class Key:
    """A configured key. `auth_value` is the full auth header value; `secret` the bare key."""

    __slots__ = ("auth_value", "fingerprint", "id", "metadata", "secret", "weight")

    def __init__(self, config: KeyConfig, auth_scheme: str | None) -> None:
        self.id = config.id
        self.weight = config.weight
        self.metadata = dict(config.metadata)
        self.secret = config.value
        self.fingerprint = fingerprint(config.value)
        self.auth_value = f"{auth_scheme} {config.value}" if auth_scheme else config.value

    def __repr__(self) -> str:
        return f"Key(id={self.id!r})"


def fingerprint(secret: str) -> str:
    """A short, one-way digest of a key's value: tells a store whether the key behind an id
    is still the same one (a replaced key starts afresh), without keeping the value."""
    return hashlib.sha256(b"poolswitch-key:" + secret.encode()).hexdigest()[:16]


@dataclass(slots=True)
class KeyState:
    """Mutable state of one key, updated in place by the pool (one event loop: no locks).

    `available_at` folds the state into one number compared on the hot path: 0 when available,
    the cooldown deadline (epoch seconds) when cooling down, +inf when disabled.

    `draining` (an operator's drain): the strategies skip the key, whatever `available_at` says;
    `in_flight` counts the attempts using the key right now (the proxy's request loop). A drain
    lives in this process only: it is not stored, and a restart ends it.
    """

    key_id: str
    available_at: float = 0.0
    disabled: bool = False
    reason: str | None = None
    source: str | None = None
    strikes: int = 0
    consecutive_errors: int = 0  # 5xx or timeouts in a row (see Pool.record)
    streak_mark: int = 0  # the outage guard's recoveries when that run began
    total_requests: int = 0
    successes: int = 0
    errors: int = 0
    failovers: int = 0
    estimated_remaining_quota: int | None = None
    last_used_at: float | None = None
    in_flight: int = 0
    draining: bool = False

    def state(self, now: float) -> str:
        if self.disabled:
            return DISABLED
        if self.draining:
            return DRAINING if self.in_flight else DRAINED
        return COOLING_DOWN if self.available_at > now else AVAILABLE

    def cooldown_until(self, now: float) -> float | None:
        return self.available_at if not self.disabled and self.available_at > now else None

    def park(self, until: float, reason: str, source: str | None = None) -> None:
        """Cool down until `until`; an existing later deadline wins."""
        if not self.disabled and until >= self.available_at:
            self.available_at = until
            self.reason = reason
            self.source = source

    def escalated(self, seconds: float, reason: str, cap: float, now: float) -> float:
        """How long to park for `reason`: doubled for each time the key failed the same way
        again after returning, since its last success (capped at `cap`, never below the
        provider's `seconds`). A late answer while still parked is no new failure."""
        if self.available_at > now:
            return seconds
        if self.reason == reason and self.strikes:
            longer = min(seconds * (2**self.strikes), cap)
            seconds = max(seconds, longer)
        self.strikes += 1
        return seconds

    def succeeded(self) -> None:
        self.strikes = 0
        self.consecutive_errors = 0

    def disable(self, reason: str, source: str | None = None) -> None:
        self.draining = False
        self.disabled = True
        self.available_at = math.inf
        self.reason = reason
        self.source = source

    def restore(self) -> None:
        """Back in service: no cooldown, not disabled, not draining, no strikes."""
        self.draining = False
        self.disabled = False
        self.available_at = 0.0
        self.reason = None
        self.source = None
        self.strikes = 0
        self.consecutive_errors = 0

    def hold(self, until: float, reason: str, source: str | None = None) -> None:
        """An operator's timed disable: out of service until `until`, then back by itself like
        after a cooldown. Replaces whatever state the key had (a later cooldown, a disable)."""
        self.draining = False
        self.disabled = False
        self.available_at = until
        self.reason = reason
        self.source = source

    def reset(self, *, counters: bool = False) -> None:
        """An operator's reset: fresh and available (no cooldown, disable, drain, strikes or
        error streak); with `counters` also no history (requests, successes, errors, failovers,
        remaining quota, last use). `in_flight` stays: those attempts are still running."""
        self.restore()
        self.streak_mark = 0
        if counters:
            self.total_requests = self.successes = self.errors = self.failovers = 0
            self.estimated_remaining_quota = None
            self.last_used_at = None
