"""Reading an upstream answer's body as the request loop needs it, as the proxy's forwarder
does: up to a limit (and whether that was all of it), up to the end of the first server-sent
event, or all of it. Generators of `Next` effects (`_effects.py`), raw bytes as the upstream
encoded them."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import httpx

from poolswitch.embedded._effects import Effect, Next, Reader


def read(reader: Reader, limit: int) -> Generator[Effect, Any, tuple[bytes, bool]]:
    """Up to `limit` raw bytes of the body, and whether that was all of it."""
    data = bytearray(reader.buffer)
    reader.buffer = b""
    while len(data) < limit and not reader.eof:
        piece = yield Next(reader)
        if piece is None:
            reader.eof = True
            break
        reader.received += len(piece)
        data += piece
    if len(data) > limit:
        reader.buffer = bytes(data[limit:])
        del data[limit:]
    length = content_length(reader.response)
    if not reader.eof and not reader.buffer and length is not None and reader.received >= length:
        # all of it came: see its end, so the connection goes back to the pool for reuse
        piece = yield Next(reader)
        if piece is None:
            reader.eof = True
        else:
            reader.received += len(piece)
            reader.buffer = piece
    complete = not reader.buffer and reader.eof
    return bytes(data), complete


def read_event(reader: Reader, limit: int) -> Generator[Effect, Any, bytes]:
    """Read until the first server-sent event is complete (a blank line), the body ends or
    `limit` bytes have come; all that was read (as the proxy's forwarder does)."""
    data = bytearray(reader.buffer)
    reader.buffer = b""
    while len(data) < limit and not reader.eof:
        if b"\n\n" in data or b"\r\n\r\n" in data:
            break
        piece = yield Next(reader)
        if piece is None:
            reader.eof = True
            break
        reader.received += len(piece)
        data += piece
    return bytes(data)


def read_all(reader: Reader) -> Generator[Effect, Any, list[bytes]]:
    """The rest of the body, in the pieces it came in."""
    pieces = [reader.buffer] if reader.buffer else []
    reader.buffer = b""
    while not reader.eof:
        piece = yield Next(reader)
        if piece is None:
            reader.eof = True
            break
        reader.received += len(piece)
        pieces.append(piece)
    return pieces


def content_length(resp: httpx.Response) -> int | None:
    value = resp.headers.get("content-length", "")
    return int(value) if value.isascii() and value.isdigit() else None
