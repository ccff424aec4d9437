"""Read an upstream answer: (status, headers, body head) -> Verdict.

The verdict says what happened (`Outcome`), whether another key may do better (`failover`), and
for how long the key that answered should be parked (`cooldown`, seconds; None = not at all).
Pure functions over values: no I/O, the time is an argument.

    status                          outcome           failover  cooldown
    < 400                           success           no        -
    429 + quota marker in body      quota_exhausted   yes       cooldown_seconds
    429                             rate_limited      yes       provider's reset, else short
    402                             quota_exhausted   yes       cooldown_seconds
    401, 403                        key_invalid       yes       cooldown_seconds
    5xx                             upstream_error    yes       - (not the key's fault)
    other 4xx                       client_error      no        - (the caller's request)
    connection failed               network_error     yes       -
    no answer in time               timeout           yes       -
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import Enum

DEFAULT_RATE_LIMIT_COOLDOWN = 60.0
MAX_RESET_SECONDS = 86400.0 * 31

QUOTA_MARKERS = (b"insufficient_quota",)

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


class Outcome(str, Enum):
    SUCCESS = "success"
    RATE_LIMITED = "rate_limited"
    QUOTA_EXHAUSTED = "quota_exhausted"
    KEY_INVALID = "key_invalid"
    UPSTREAM_ERROR = "upstream_error"
    CLIENT_ERROR = "client_error"
    NETWORK_ERROR = "network_error"
    TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    failover: bool = False
    cooldown: float | None = None


SUCCESS = Verdict(Outcome.SUCCESS)
CLIENT_ERROR = Verdict(Outcome.CLIENT_ERROR)
UPSTREAM_ERROR = Verdict(Outcome.UPSTREAM_ERROR, failover=True)
NETWORK_ERROR = Verdict(Outcome.NETWORK_ERROR, failover=True)
TIMEOUT = Verdict(Outcome.TIMEOUT, failover=True)


def classify(
    status: int, headers: Mapping[str, str], body: bytes, *, cooldown_seconds: float, now: float
) -> Verdict:
    """Classify one upstream answer. `headers` must be case-insensitive or lower-cased."""
    if status < 400:
        return SUCCESS
    if status == 429:
        if any(marker in body for marker in QUOTA_MARKERS):
            return Verdict(Outcome.QUOTA_EXHAUSTED, True, cooldown_seconds)
        reset = reset_after(headers, now)
        if reset is None:
            reset = min(DEFAULT_RATE_LIMIT_COOLDOWN, cooldown_seconds)
        return Verdict(Outcome.RATE_LIMITED, True, reset)
    if status == 402:
        return Verdict(Outcome.QUOTA_EXHAUSTED, True, cooldown_seconds)
    if status in (401, 403):
        return Verdict(Outcome.KEY_INVALID, True, cooldown_seconds)
    if status >= 500:
        return UPSTREAM_ERROR
    return CLIENT_ERROR


def reset_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds until the provider says the key may be used again; the longest signal wins."""
    found: list[float] = []
    value = headers.get("retry-after-ms")
    if value is not None:
        with contextlib.suppress(ValueError):
            found.append(float(value) / 1000.0)
    value = headers.get("retry-after")
    if value is not None:
        seconds = parse_retry_after(value, now)
        if seconds is not None:
            found.append(seconds)
    for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"):
        value = headers.get(name)
        if value is not None:
            seconds = parse_duration(value)
            if seconds is not None:
                found.append(seconds)
    if not found:
        return None
    return min(max(max(found), 0.0), MAX_RESET_SECONDS)


def parse_retry_after(value: str, now: float) -> float | None:
    """RFC 9110 Retry-After: delay-seconds or an HTTP-date."""
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(when.timestamp() - now, 0.0)


def parse_duration(value: str) -> float | None:
    """Go-style durations as sent by OpenAI and Groq: `12ms`, `1s`, `6m0s`, `2m59.56s`."""
    value = value.strip()
    total = 0.0
    pos = 0
    for match in _DURATION_PART.finditer(value):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(value) or pos == 0:
        try:
            return float(value) if pos == 0 else None
        except ValueError:
            return None
    return total
