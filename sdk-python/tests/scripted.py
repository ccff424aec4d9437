"""A scripted proxy on `httpx.MockTransport`, a fake clock and recorded sleeps for the clients.

`Script(*answers)` answers each request with the next answer (the last one repeats); an answer
may be an `httpx.Response`, an exception to raise (a failed exchange), or a function of the
request. Each request is recorded with the timeout it was sent with. Sleeping advances the
clock instead of waiting.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeAlias

import httpx

from poolswitch_client import AsyncPoolSwitchClient, PoolSwitchClient

URL = "http://proxy.test"
Answer: TypeAlias = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


class Clock:
    """A monotonic clock the test moves; sleeping on it moves it and records the wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


class Script:
    """A MockTransport handler: answers in order (the last one repeats), requests recorded."""

    def __init__(self, *answers: Answer) -> None:
        self.answers: list[Answer] = list(answers) or [httpx.Response(200, json={})]
        self.requests: list[httpx.Request] = []
        self.timeouts: list[dict[str, float | None]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.timeouts.append(dict(request.extensions["timeout"]))
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer) and not isinstance(answer, httpx.Response):
            return answer(request)
        raw = b"".join(answer.stream) if isinstance(answer.stream, httpx.SyncByteStream) else b""
        return httpx.Response(answer.status_code, headers=answer.headers, stream=Pieces([raw]))

    @property
    def count(self) -> int:
        return len(self.requests)


class Pieces(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body that arrives in `pieces`; `between(i)` runs before piece i (to move a clock),
    and `error` is raised after the last one."""

    def __init__(
        self,
        pieces: list[bytes],
        between: Callable[[int], None] | None = None,
        error: Exception | None = None,
    ) -> None:
        self.pieces = pieces
        self.between = between
        self.error = error

    def __iter__(self) -> Iterator[bytes]:
        for i, piece in enumerate(self.pieces):
            if self.between is not None:
                self.between(i)
            yield piece
        if self.error is not None:
            raise self.error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self:
            yield piece


def proxy_answer(
    status: int,
    code: str,
    retry_after: float | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """An answer the proxy made itself: `x-poolswitch-error` and the JSON envelope."""
    error = {"type": "poolswitch_error", "code": code, "message": "m", "retry_after": retry_after}
    head = {"x-poolswitch-error": code, **(headers or {})}
    return httpx.Response(status, headers=head, json={"error": error})


def relayed(status: int, body: Any = None, key_id: str = "a", attempts: int = 1) -> httpx.Response:
    """An upstream answer relayed by the proxy."""
    head = {"x-poolswitch-key-id": key_id, "x-poolswitch-attempts": str(attempts)}
    return httpx.Response(status, headers=head, json={} if body is None else body)


def refused() -> httpx.ConnectError:
    return httpx.ConnectError("[Errno 111] Connection refused")


class Fixed(random.Random):
    """A `random.Random` whose `uniform(a, b)` is always at `where` between a and b."""

    def __init__(self, where: float) -> None:
        super().__init__(0)
        self.where = where

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.where


def sync_client(script: Script, clock: Clock | None = None, **options: Any) -> PoolSwitchClient:
    http = httpx.Client(transport=httpx.MockTransport(script))
    client = PoolSwitchClient(URL, http_client=http, **options)
    clock = clock or Clock()
    client._clock = clock
    client._sleep = clock.sleep
    return client


def async_client(
    script: Script, clock: Clock | None = None, **options: Any
) -> AsyncPoolSwitchClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(script))
    client = AsyncPoolSwitchClient(URL, http_client=http, **options)
    clock = clock or Clock()
    client._clock = clock
    client._sleep = clock.asleep
    return client
