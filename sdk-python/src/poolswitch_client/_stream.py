"""A successful answer read as it arrives: server-sent events, or raw bytes.

`client.stream()` yields one of these once the status line is in; a non-2xx answer never gets
here (it is raised as an error instead). The body can be read once, as events or as bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from poolswitch_client._errors import translate_errors
from poolswitch_client._response import ResponseHead
from poolswitch_client._sse import ServerSentEvent, SSEDecoder


class ProxyStream(ResponseHead):
    """A streamed answer: iterate it for SSE events, or call `iter_bytes()`."""

    def __iter__(self) -> Iterator[ServerSentEvent]:
        return self.iter_events()

    def iter_events(self) -> Iterator[ServerSentEvent]:
        """Each server-sent event as soon as its closing blank line arrives."""
        decoder = SSEDecoder()
        for chunk in self.iter_bytes():
            yield from decoder.feed(chunk)
        yield from decoder.close()

    def iter_bytes(self) -> Iterator[bytes]:
        """The body in pieces as they arrive (decompressed)."""
        with translate_errors():
            yield from self._response.iter_bytes()

    def close(self) -> None:
        self._response.close()


class AsyncProxyStream(ResponseHead):
    """A streamed answer: `async for` it for SSE events, or call `aiter_bytes()`."""

    def __aiter__(self) -> AsyncIterator[ServerSentEvent]:
        return self.aiter_events()

    async def aiter_events(self) -> AsyncIterator[ServerSentEvent]:
        """Each server-sent event as soon as its closing blank line arrives."""
        decoder = SSEDecoder()
        async for chunk in self.aiter_bytes():
            for event in decoder.feed(chunk):
                yield event
        for event in decoder.close():
            yield event

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body in pieces as they arrive (decompressed)."""
        with translate_errors():
            async for chunk in self._response.aiter_bytes():
                yield chunk

    async def close(self) -> None:
        await self._response.aclose()
