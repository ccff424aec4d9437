"""Per-caller limits: requests per minute and requests at once. Pure; the clock is passed in.

`rpm` allows at most that many requests in any 60 s window: the times of the caller's requests
in the last minute are kept (a sliding log, so the limit is exact and the wait a refused caller
is told is exactly the time until its oldest request leaves the window, never more than 60 s).
The log holds at most `rpm` entries per caller, and all callers' logs together at most what the
proxy serves in a minute.
`max_concurrency` bounds the caller's requests in flight; a refused caller is told to retry in
`CONCURRENCY_RETRY_SECONDS`. A refused request is not counted: nothing was sent upstream.
"""

from __future__ import annotations

from collections import deque

WINDOW_SECONDS = 60
CONCURRENCY_RETRY_SECONDS = 1.0

RPM = "rpm"
CONCURRENCY = "concurrency"
POOL = "pool"
"""Rejection reasons (the `reason` label of `poolswitch_caller_rejections_total`)."""


class CallerLimit:
    """One caller's use against its limits (`None`: no limit)."""

    __slots__ = ("_times", "in_flight", "max_concurrency", "rejected", "rpm")

    def __init__(self, rpm: int | None, max_concurrency: int | None) -> None:
        self.rpm = rpm
        self.max_concurrency = max_concurrency
        self.in_flight = 0
        self.rejected = 0
        self._times: deque[float] = deque()  # admitted requests of the last minute, oldest first

    def admit(self, now: float) -> tuple[str, float] | None:
        """Count a request and return None, or (reason, seconds to wait) when it is refused.
        A request admitted here must be `release()`d when it ends."""
        limit = self.max_concurrency
        if limit is not None and self.in_flight >= limit:
            self.rejected += 1
            return CONCURRENCY, CONCURRENCY_RETRY_SECONDS
        if self.rpm is not None:
            self._expire(now)
            if len(self._times) >= self.rpm:
                self.rejected += 1
                return RPM, max(self._times[0] + WINDOW_SECONDS - now, 0.001)
            self._times.append(now)
        self.in_flight += 1
        return None

    def release(self) -> None:
        self.in_flight -= 1

    def used(self, now: float) -> int:
        """Requests counted in the last minute (0 without an `rpm` limit: nothing is kept)."""
        self._expire(now)
        return len(self._times)

    def _expire(self, now: float) -> None:
        times = self._times
        while times and times[0] + WINDOW_SECONDS <= now:
            times.popleft()
