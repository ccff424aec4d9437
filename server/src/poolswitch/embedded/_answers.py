"""What a call of the embedded client ends in, as the proxy client would see it from a proxy.

A relayed answer becomes an `httpx.Response` with the upstream's status and headers (minus
hop-by-hop ones, key values redacted) plus `x-poolswitch-key-id` and `x-poolswitch-attempts`;
its `request` is the caller's own (no key in it). Errors are made by the proxy client's own
`error_from_response`, from a response identical to the proxy's answer: an upstream error with
its body decoded and redacted (`UpstreamError`), or a pool-made one with the envelope, the
`x-poolswitch-error` header and the retry hints of envelope.py (`ProxyError`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from poolswitch.envelope import error_response
from poolswitch.errors import ProxyError
from poolswitch_client import PoolSwitchError, ProxyResponse
from poolswitch_client._errors import error_from_response

Headers = list[tuple[bytes, bytes]]


def relayed(
    status: int,
    headers: Headers,
    stream: httpx.SyncByteStream | httpx.AsyncByteStream,
    request: httpx.Request,
) -> httpx.Response:
    """A successful answer whose body (still as the upstream encoded it) is `stream`."""
    return httpx.Response(status, headers=headers, stream=stream, request=request)


def upstream_error(
    status: int, headers: Headers, body: bytes, request: httpx.Request
) -> PoolSwitchError:
    """The error the proxy client raises for this answer (body already decoded and redacted)."""
    response = httpx.Response(status, headers=headers, content=body, request=request)
    return error_from_response(ProxyResponse(response))


def pool_error(err: ProxyError, attempts: int, request: httpx.Request) -> PoolSwitchError:
    """The proxy client's `ProxyError` for an answer the pool makes itself (gateway.py:
    `x-poolswitch-attempts` added when attempts were made)."""
    status, headers, body = error_response(err)
    if attempts:
        headers.append((b"x-poolswitch-attempts", str(attempts).encode()))
    return upstream_error(status, headers, body, request)


def in_memory(pieces: list[bytes]) -> AsyncIterator[bytes]:
    """Pieces already read, as the async iterator redact.py's error_stream takes."""

    async def gen() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    return gen()


def drain(pieces: AsyncIterator[bytes]) -> bytes:
    """Every piece of an async iterator that never waits (redact.py's decoding and redacting
    of pieces already in memory), without an event loop: the sync client uses the server's
    error_stream as it is. Raises what the iterator raises."""
    out: list[bytes] = []
    iterator = pieces.__aiter__()
    while True:
        step = iterator.__anext__()
        try:
            step.send(None)  # type: ignore[attr-defined]
        except StopIteration as done:
            out.append(done.value)
            continue
        except StopAsyncIteration:
            break
        step.close()  # type: ignore[attr-defined]
        raise RuntimeError("an in-memory body waited for I/O")
    return b"".join(out)
