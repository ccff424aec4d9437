"""The body of a relayed answer that is still arriving: what was read of it already (a held-back
first event), then the rest of the upstream's raw body as it comes. httpx decodes it (by its
Content-Encoding) as the caller reads, as it would an answer from the proxy.

The pieces are an async iterator in both clients, so the server's own `Redactor.error_stream`
(an async generator) decodes and redacts an error stream for both: the sync client steps it by
hand, and its pieces come from a blocking iterator that never awaits, so no step ever waits
for an event loop.

When the upstream fails mid-way, it is too late to fail over: `on_cut` counts the failure
against the key (and logs it), and the caller's read fails with an httpx error (the proxy
client's stream raises `ProxyConnectionError`), so the answer is never mistaken for a complete
one.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator

import httpx

from poolswitch.embedded._effects import Reader
from poolswitch.errors import TransportError

OnCut = Callable[[], None]


def sync_rest(head: bytes, reader: Reader) -> AsyncIterator[bytes]:
    """`head`, then the rest of the body from a sync client's answer (blocking reads)."""

    async def pieces() -> AsyncIterator[bytes]:
        if head:
            yield head
        if reader.buffer:
            yield reader.buffer
        if not reader.eof:
            for piece in reader.pieces:  # blocking: no await, so a step never waits
                yield piece

    return pieces()


def async_rest(head: bytes, reader: Reader) -> AsyncIterator[bytes]:
    """`head`, then the rest of the body from an async client's answer."""

    async def pieces() -> AsyncIterator[bytes]:
        if head:
            yield head
        if reader.buffer:
            yield reader.buffer
        if not reader.eof:
            async for piece in reader.pieces:
                yield piece

    return pieces()


def _broken(exc: Exception) -> httpx.HTTPError:
    if isinstance(exc, httpx.HTTPError):
        return exc
    return httpx.ReadError("the upstream's answer broke off mid-way (corrupt in its coding)")


class SyncBody(httpx.SyncByteStream):
    def __init__(self, pieces: AsyncIterator[bytes], reader: Reader, on_cut: OnCut):
        self._pieces = pieces
        self._reader = reader
        self._on_cut = on_cut

    def __iter__(self) -> Iterator[bytes]:
        iterator = self._pieces.__aiter__()
        while True:
            step = iterator.__anext__()
            try:
                step.send(None)  # type: ignore[attr-defined]
            except StopIteration as done:
                yield done.value
                continue
            except StopAsyncIteration:
                return
            except (httpx.HTTPError, TransportError) as exc:
                self._on_cut()
                raise _broken(exc) from exc
            step.close()  # type: ignore[attr-defined]
            raise RuntimeError("a sync body waited for an event loop")

    def close(self) -> None:
        closing = self._pieces.aclose()  # type: ignore[attr-defined]
        with contextlib.suppress(StopIteration):
            closing.send(None)  # the pieces never await: closed in one step
        close_sync(self._reader)


class AsyncBody(httpx.AsyncByteStream):
    def __init__(self, pieces: AsyncIterator[bytes], reader: Reader, on_cut: OnCut):
        self._pieces = pieces
        self._reader = reader
        self._on_cut = on_cut

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for piece in self._pieces:
                yield piece
        except (httpx.HTTPError, TransportError) as exc:
            self._on_cut()
            raise _broken(exc) from exc

    async def aclose(self) -> None:
        await self._pieces.aclose()  # type: ignore[attr-defined]
        await close_async(self._reader)


def close_sync(reader: Reader) -> None:
    """Stop reading `reader` (its raw pieces' generator too) and close its answer."""
    reader.pieces.close()
    reader.response.close()


async def close_async(reader: Reader) -> None:
    await reader.pieces.aclose()
    await reader.response.aclose()
