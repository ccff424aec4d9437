"""Helpers of the embedded clients' tests: either client behind one sync face, and a clock."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from poolswitch.embedded import AsyncPoolSwitchClient, PoolSwitchClient
from poolswitch_client import ProxyResponse, ServerSentEvent, StatusDocument

from conftest import VALUES

T = TypeVar("T")
START = 1_800_000_000.0


class Clock:
    """Unix seconds that move only when told (the embedded clients' `clock`)."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def keys(ids: str) -> list[dict[str, str]]:
    """The conftest keys with the fake upstream's own ids."""
    return [{"id": i, "value": VALUES[i]} for i in ids]


class Either(AbstractContextManager["Either"]):
    """A `PoolSwitchClient` or an `AsyncPoolSwitchClient` (run on a loop of its own), called
    the same way, so that one test covers both."""

    def __init__(self, kind: str, **options: Any) -> None:
        self.kind = kind
        self.loop = asyncio.new_event_loop() if kind == "async" else None
        if kind == "async":
            self.aclient = AsyncPoolSwitchClient(**options)
        else:
            self.client = PoolSwitchClient(**options)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self.loop is not None
        return self.loop.run_until_complete(coro)

    def send(self, method: str, path: str, **kwargs: Any) -> ProxyResponse:
        if self.loop is None:
            return self.client.send(method, path, **kwargs)
        return self._run(self.aclient.send(method, path, **kwargs))

    def events(
        self, method: str, path: str, **kwargs: Any
    ) -> tuple[str | None, list[ServerSentEvent]]:
        """(key id, the events) of a streamed call."""
        if self.loop is None:
            with self.client.stream(method, path, **kwargs) as stream:
                return stream.key_id, list(stream)

        async def run() -> tuple[str | None, list[ServerSentEvent]]:
            async with self.aclient.stream(method, path, **kwargs) as stream:
                return stream.key_id, [event async for event in stream]

        return self._run(run())

    def status(self) -> StatusDocument:
        if self.loop is None:
            return self.client.status()
        return self._run(self.aclient.status())

    def __repr__(self) -> str:
        return repr(self.client if self.loop is None else self.aclient)

    def close(self) -> None:
        if self.loop is None:
            self.client.close()
        else:
            self._run(self.aclient.close())
            self._run(self.loop.shutdown_asyncgens())
            self.loop.close()

    def __exit__(self, *exc: object) -> None:
        self.close()


def states(client: Either) -> dict[str, tuple[str, str | None]]:
    """Each key's (state, reason) in the client's status document."""
    return {k["id"]: (k["state"], k["reason"]) for k in client.status()["keys"]}
