"""The retry decision after each failed exchange with the proxy, within the call's deadline.

Retried, at most `max_retries` times:

- a failure to reach the proxy before any byte of its answer (refused, DNS, reset), and
- the proxy's own `no_available_keys`, `overloaded`, `upstream_unavailable` and
  `caller_rate_limited` answers, unless they say `x-should-retry: false`.

Never an upstream answer relayed by the proxy, any other proxy code, or a timeout. The wait before
retry n (0, 1, ...) is the answer's named wait (`Retry-After`, else the body's `retry_after`)
times U(1.0, 1.1), or, with none, `min(8, 0.5 * 2**n) * U(0.5, 1.0)`. A named wait over 60 s is
never taken, no wait is ever longer than 60 s, and a wait that would end at or after the deadline
is not taken either: the last error is raised at once.
"""

from __future__ import annotations

import random

import httpx

from poolswitch_client._codes import ErrorCode
from poolswitch_client._deadline import Deadline
from poolswitch_client._errors import ProxyError, error_from_response, parse_retry_after, translate
from poolswitch_client._response import ProxyResponse

BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 8.0
# The longest the client ever waits on its own before a retry; a longer named wait is raised.
MAX_RETRY_WAIT = 60.0
SHOULD_RETRY_HEADER = "x-should-retry"
# The proxy's answers worth asking again (nothing went upstream).
RETRIED_CODES = frozenset(
    {
        ErrorCode.NO_AVAILABLE_KEYS,
        ErrorCode.OVERLOADED,
        ErrorCode.UPSTREAM_UNAVAILABLE,
        ErrorCode.CALLER_RATE_LIMITED,
    }
)
# Failures of an exchange before the answer's head: the proxy never answered this request.
_BEFORE_THE_ANSWER = (httpx.NetworkError, httpx.RemoteProtocolError)


class RetryPolicy:
    """The retry decisions for one call. Each method returns the seconds to wait before the
    next try, or raises the call's error."""

    def __init__(
        self, max_retries: int, deadline: Deadline, rng: random.Random | None = None
    ) -> None:
        self._left = max_retries
        self._deadline = deadline
        self._rng = rng if rng is not None else random.Random()
        self.retries = 0

    def after_failure(self, exc: httpx.HTTPError) -> float:
        """The exchange raised `exc` before any answer: how long to wait, or raise it as ours."""
        error = translate(exc)
        if isinstance(exc, _BEFORE_THE_ANSWER) and not isinstance(exc, httpx.TimeoutException):
            wait = self._backoff()
            if self._take(wait):
                return wait
        raise error from exc

    def after_error(self, response: ProxyResponse) -> float:
        """The proxy answered non-2xx (body read): how long to wait, or raise the error."""
        error = error_from_response(response)
        if (
            not isinstance(error, ProxyError)
            or error.code not in RETRIED_CODES
            or response.headers.get(SHOULD_RETRY_HEADER, "").strip().lower() == "false"
        ):
            raise error
        named = parse_retry_after(response.headers.get("retry-after"))
        if named is None:
            named = error.retry_after
        if named is None:
            wait = self._backoff()
        elif named > MAX_RETRY_WAIT:
            raise error
        else:
            wait = min(named * self._rng.uniform(1.0, 1.1), MAX_RETRY_WAIT)
        if self._take(wait):
            return wait
        raise error

    def _backoff(self) -> float:
        base = min(BACKOFF_MAX, BACKOFF_INITIAL * 2.0**self.retries)
        return base * self._rng.uniform(0.5, 1.0)

    def _take(self, wait: float) -> bool:
        if self._left <= 0 or not self._deadline.allows(wait):
            return False
        self._left -= 1
        self.retries += 1
        return True
