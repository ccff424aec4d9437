"""Retry hints: what a proxy-made answer tells clients about trying again.

Official SDKs retry on their own, and each reads the hints differently: the Stainless-generated
ones (openai, anthropic, groq in Python, Node and Go) obey `x-should-retry` before anything else,
and otherwise sleep for whatever `Retry-After` says (some for hours); others only look at the
status. So the proxy sends `Retry-After` only for a wait worth sleeping through, with
`x-should-retry: true`; for a longer wait, or none, it says `x-should-retry: false` and leaves the
real wait to the body's `retry_after`. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math

SHOULD_RETRY_WITHIN = 60.0
"""A client is invited to retry when the proxy expects to serve it within this many seconds."""

DEFAULT_RETRY_AFTER = 1
"""Retry-After for a transient answer that names no wait of its own."""

TRANSIENT = frozenset({"upstream_unavailable", "overloaded"})
"""Answers that hold a request for a moment: always worth a retry soon."""

CALLER_LIMIT = "caller_rate_limited"
"""The caller is over its own limit: the wait is always known (at most a minute) and always
said, so a client can plan; a retry is invited only within the window."""


def retry_hint(code: str, wait: float | None) -> tuple[int | None, bool | None]:
    """(Retry-After in whole seconds or None, x-should-retry or None) for a proxy-made answer
    with `code`, when the proxy expects to serve again in `wait` seconds (None: not by itself).
    (None, None) means: say nothing, the status speaks for itself."""
    if code in TRANSIENT:
        seconds = DEFAULT_RETRY_AFTER if wait is None else max(1, math.ceil(wait))
        return min(seconds, int(SHOULD_RETRY_WITHIN)), True
    if code == CALLER_LIMIT:
        seconds = 1 if wait is None else max(1, math.ceil(wait))
        return seconds, seconds <= SHOULD_RETRY_WITHIN
    if code == "no_available_keys":
        if wait is None:
            return None, False
        seconds = max(1, math.ceil(wait))
        if seconds > SHOULD_RETRY_WITHIN:
            return None, False
        return seconds, True
    return None, None


def retry_headers(code: str, wait: float | None) -> list[tuple[bytes, bytes]]:
    """The hint as response headers (lower-case names, as ASGI wants them)."""
    retry_after, should_retry = retry_hint(code, wait)
    headers = []
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    if should_retry is not None:
        headers.append((b"x-should-retry", b"true" if should_retry else b"false"))
    return headers
