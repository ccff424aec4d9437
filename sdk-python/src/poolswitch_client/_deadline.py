"""One deadline for a whole call: every attempt, every wait between attempts, and the reading
of a whole answer's body (`timeout=None`: no deadline).

Each attempt's httpx timeout (connect, write, pool and each read) is what is left of the
deadline, and a whole body is checked against it after each piece. A stream's head is bounded by
the deadline; once it is in, each read waits up to `timeout` (the longest silence between two
pieces) and the stream has no deadline of its own.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator

import httpx

from poolswitch_client._errors import ProxyTimeoutError

Clock = Callable[[], float]


class Deadline:
    """The end of one call, on a monotonic `clock`; `None` seconds: no end."""

    def __init__(self, seconds: float | None, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self.end = None if seconds is None else clock() + seconds

    def remaining(self) -> float | None:
        """Seconds left (may be <= 0), or None without a deadline."""
        return None if self.end is None else self.end - self._clock()

    def timeout(self) -> httpx.Timeout:
        """The httpx timeout of the next attempt: what is left, for each phase; raises when
        nothing is."""
        self.check()
        return httpx.Timeout(self.remaining())

    def check(self) -> None:
        """Raise `ProxyTimeoutError` once the deadline has passed."""
        left = self.remaining()
        if left is not None and left <= 0:
            raise ProxyTimeoutError("the call's timeout ran out before the proxy's answer was in")

    def allows(self, wait: float) -> bool:
        """Whether a wait of `wait` seconds ends before the deadline."""
        return self.end is None or self._clock() + wait < self.end


def stream_opened(response: httpx.Response, timeout: float | None) -> None:
    """A stream's head is in: from now on each read waits up to `timeout` (the silence between
    two pieces), no longer what was left of the call's deadline.

    httpcore reads the request's `timeout` extension when the body starts to be read, so
    changing it here applies to every read of the body (checked on loopback by hand: a 1.5 s
    silence after a retry that left 0.9 s of a 2 s deadline passes).
    """
    response.request.extensions["timeout"] = httpx.Timeout(timeout).as_dict()


def bound_body(response: httpx.Response, deadline: Deadline) -> None:
    """Make reading the whole body of `response` raise `ProxyTimeoutError` past `deadline`."""
    response.stream = _BoundedStream(response.stream, deadline)


class _BoundedStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body that checks the call's deadline after each piece."""

    def __init__(self, stream: httpx.SyncByteStream | httpx.AsyncByteStream, deadline: Deadline):
        self._stream = stream
        self._deadline = deadline

    def __iter__(self) -> Iterator[bytes]:
        if not isinstance(self._stream, httpx.SyncByteStream):
            raise RuntimeError("a sync read of an async body")
        for chunk in self._stream:
            yield chunk
            self._deadline.check()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if not isinstance(self._stream, httpx.AsyncByteStream):
            raise RuntimeError("an async read of a sync body")
        async for chunk in self._stream:
            yield chunk
            self._deadline.check()

    def close(self) -> None:
        if isinstance(self._stream, httpx.SyncByteStream):
            self._stream.close()

    async def aclose(self) -> None:
        if isinstance(self._stream, httpx.AsyncByteStream):
            await self._stream.aclose()
