"""The I/O the request loop asks for, as values: the loop (`_loop.py`) is a generator that yields
these and gets their results back, so that one copy of it serves the sync client (which
carries them out with `httpx.Client` and `time.sleep`) and the async one (`httpx.AsyncClient`,
`asyncio.sleep`). A failed exchange comes back into the loop as the server's `TransportError`
(`transport_error`), as the proxy's forwarder raises it.

    Send(request)        -> Reader       the answer's head is in; its body is not read yet
    Next(reader)         -> bytes | None the body's next raw piece (still encoded); None at its end
    Close(reader)        -> None         stop reading; give the connection back (or drop it)
    Sleep(seconds)       -> None         a backoff, or a wait for a key to return
    Verify(key, run)     -> str          the key's verification (verify.py): cached, the one in
                                         flight, or `run` (a loop of its own) carried out now
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import httpx

from poolswitch.errors import ConnectError, ReadTimeout, TransportError


@dataclass(slots=True)
class Reader:
    """An answer whose body is read piece by piece (raw, as the upstream encoded it), with what
    was read ahead of a caller's limit kept for the next read."""

    response: httpx.Response
    pieces: Any  # Iterator[bytes] (sync) or AsyncIterator[bytes] (async): the raw body
    buffer: bytes = b""
    eof: bool = False
    received: int = 0


@dataclass(frozen=True, slots=True)
class Send:
    request: httpx.Request


@dataclass(frozen=True, slots=True)
class Next:
    reader: Reader


@dataclass(frozen=True, slots=True)
class Close:
    reader: Reader


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class Verify:
    key: int
    run: Generator[Effect, Any, str] = field(repr=False)


Effect = Send | Next | Close | Sleep | Verify
Loop = Generator[Effect, Any, Any]


def transport_error(exc: httpx.HTTPError) -> TransportError:
    """httpx's failure as the server's; the message names the failure, never a URL or a
    header (a key may travel in either)."""
    name = type(exc).__name__
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return ConnectError(f"cannot connect to upstream: {name}")
    if isinstance(exc, httpx.TimeoutException):
        return ReadTimeout("upstream did not answer in time")
    return TransportError(f"upstream connection failed: {name}")
