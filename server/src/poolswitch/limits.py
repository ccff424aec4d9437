"""Per-caller limits: requests per minute and requests at once. Pure; the clock is passed in.

`rpm` allows at most that many requests in any 60 s window. Requests are counted in whole
seconds, rounded up (a request at 10.2 s counts as 11 s and leaves the window at 71 s), so the
window never lets more than `rpm` through and holds at most 61 counts whatever the rate. The
wait a refused caller is told is the time until the oldest count leaves the window.
`max_concurrency` bounds the caller's requests in flight; a refused caller is told to retry in
`CONCURRENCY_RETRY_SECONDS`. A refused request is not counted: nothing was sent upstream.
"""

from __future__ import annotations

import math
from collections import deque

WINDOW_SECONDS = 60
CONCURRENCY_RETRY_SECONDS = 1.0

RPM = "rpm"
CONCURRENCY = "concurrency"
POOL = "pool"
"""Rejection reasons (the `reason` label of `poolswitch_caller_rejections_total`)."""


class CallerLimit:
    """One caller's use against its limits (`None`: no limit)."""

    __slots__ = ("_count", "_seconds", "in_flight", "max_concurrency", "rejected", "rpm")

    def __init__(self, rpm: int | None, max_concurrency: int | None) -> None:
        self.rpm = rpm
        self.max_concurrency = max_concurrency
        self.in_flight = 0
        self.rejected = 0
        self._seconds: deque[list[int]] = deque()  # [second, requests counted in it], oldest first
        self._count = 0  # requests in the window

    def admit(self, now: float) -> tuple[str, float] | None:
        """Count a request and return None, or (reason, seconds to wait) when it is refused.
        A request admitted here must be `release()`d when it ends."""
        limit = self.max_concurrency
        if limit is not None and self.in_flight >= limit:
            self.rejected += 1
            return CONCURRENCY, CONCURRENCY_RETRY_SECONDS
        if self.rpm is not None:
            self._expire(now)
            if self._count >= self.rpm:
                self.rejected += 1
                return RPM, max(self._seconds[0][0] + WINDOW_SECONDS - now, 0.001)
            second = math.ceil(now)
            if self._seconds and self._seconds[-1][0] == second:
                self._seconds[-1][1] += 1
            else:
                self._seconds.append([second, 1])
            self._count += 1
        self.in_flight += 1
        return None

    def release(self) -> None:
        self.in_flight -= 1

    def used(self, now: float) -> int:
        """Requests counted in the last minute (0 without an `rpm` limit: nothing is kept)."""
        self._expire(now)
        return self._count

    def _expire(self, now: float) -> None:
        seconds = self._seconds
        while seconds and seconds[0][0] + WINDOW_SECONDS <= now:
            self._count -= seconds.popleft()[1]
