"""ProxyStream and AsyncProxyStream over in-memory answers (no network)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from poolswitch_client import (
    AsyncProxyStream,
    ProxyConnectionError,
    ProxyStream,
    ProxyTimeoutError,
    ServerSentEvent,
)

CHUNKS = [b"data: o", b"ne\r", b"\n\r\nevent: x\n", b"data: two\n\n", b"data: unfinished"]
EVENTS = [ServerSentEvent("one"), ServerSentEvent("two", "x")]
HEADERS = {"x-poolswitch-key-id": "a", "x-poolswitch-attempts": "1"}


class Chunks(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body that arrives in `chunks`, then fails with `error` if given."""

    def __init__(self, chunks: list[bytes], error: Exception | None = None) -> None:
        self.chunks = chunks
        self.error = error

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        if self.error is not None:
            raise self.error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.error is not None:
            raise self.error


def streamed(chunks: list[bytes], error: Exception | None = None) -> httpx.Response:
    return httpx.Response(200, headers=HEADERS, stream=Chunks(chunks, error))


def test_events_from_a_chunked_body() -> None:
    stream = ProxyStream(streamed(CHUNKS))
    assert (stream.status, stream.key_id, stream.attempts) == (200, "a", 1)
    assert list(stream) == EVENTS
    stream.close()


def test_bytes_as_they_come() -> None:
    stream = ProxyStream(streamed(CHUNKS))
    assert list(stream.iter_bytes()) == CHUNKS


@pytest.mark.parametrize(
    ("error", "cls"),
    [
        (httpx.RemoteProtocolError("incomplete chunked read"), ProxyConnectionError),
        (httpx.ReadTimeout("slow"), ProxyTimeoutError),
    ],
)
def test_failures_mid_stream_are_translated(error: Exception, cls: type[Exception]) -> None:
    got: list[ServerSentEvent] = []
    with pytest.raises(cls):
        for event in ProxyStream(streamed(CHUNKS, error)):
            got.append(event)
    assert got == EVENTS


@pytest.mark.anyio
async def test_async_events_bytes_and_failures() -> None:
    stream = AsyncProxyStream(streamed(CHUNKS))
    assert [event async for event in stream] == EVENTS
    await stream.close()
    assert [chunk async for chunk in AsyncProxyStream(streamed(CHUNKS)).aiter_bytes()] == CHUNKS
    got: list[ServerSentEvent] = []
    with pytest.raises(ProxyConnectionError):
        async for event in AsyncProxyStream(streamed(CHUNKS, httpx.ReadError("reset"))):
            got.append(event)
    assert got == EVENTS
