"""Content-Encoding, undone within a bound: gzip, deflate and br (brotli).

An upstream error body is read to be classified and redacted; official SDKs send
`Accept-Encoding: gzip, deflate` (some `br`), so it often arrives compressed. `decode()` undoes
every listed coding of a whole body and stops at `limit` decoded bytes, so a small compressed
body cannot expand into a large one (a decompression bomb). `Decoder` does the same piece by
piece for a body relayed as it arrives. Pure: no I/O.

`accept_encoding()` narrows a caller's `Accept-Encoding` to the codings this module can undo, so
that every answer the proxy may have to read is readable.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Protocol

import brotli

from poolswitch.errors import DecodeError

SUPPORTED = ("gzip", "x-gzip", "deflate", "br", "identity")
"""Codings `decode()` undoes (`identity` is no coding at all)."""

PIECE = 64 * 1024
"""A `Decoder` hands out decoded bytes in pieces of at most this size."""


class _Inflater(Protocol):
    def decompress(self, data: bytes, max_length: int = ...) -> bytes: ...

    @property
    def unconsumed_tail(self) -> bytes: ...


def codings(content_encoding: str | None) -> list[str]:
    """The codings named by a Content-Encoding header, in the order they were applied;
    `identity` and empty items dropped. Raises DecodeError for one we cannot undo."""
    if not content_encoding:
        return []
    names = [c.strip().lower() for c in content_encoding.split(",")]
    names = [c for c in names if c and c != "identity"]
    for name in names:
        if name not in SUPPORTED:
            raise DecodeError(f"unsupported content-encoding {name!r}")
    return names


def decode(body: bytes, content_encoding: str | None, limit: int) -> tuple[bytes, bool]:
    """Undo every coding of a whole body: (decoded bytes, complete). At most `limit` bytes come
    back; `complete` is False when the decoded body was longer (it was cut there).
    Raises DecodeError for a corrupt body or an unknown coding."""
    names = codings(content_encoding)
    complete = True
    for name in reversed(names):  # the last coding applied is undone first
        step = _StepDecoder(name)
        out = bytearray()
        for piece in step.feed(body):
            out += piece
            if len(out) > limit:
                break
        else:
            for piece in step.flush():
                out += piece
        if len(out) > limit:
            complete = False
            del out[limit:]
        body = bytes(out)
    return body, complete


class Decoder:
    """Decodes a body piece by piece as it arrives (each output piece at most PIECE bytes)."""

    def __init__(self, content_encoding: str | None) -> None:
        self._steps = [_StepDecoder(n) for n in reversed(codings(content_encoding))]

    @property
    def identity(self) -> bool:
        return not self._steps

    def feed(self, data: bytes) -> Iterator[bytes]:
        yield from self._through(data, 0)

    def flush(self) -> Iterator[bytes]:
        yield from self._flush_from(0)

    def _through(self, data: bytes, level: int) -> Iterator[bytes]:
        if level == len(self._steps):
            if data:
                yield data
            return
        for piece in self._steps[level].feed(data):
            yield from self._through(piece, level + 1)

    def _flush_from(self, level: int) -> Iterator[bytes]:
        if level == len(self._steps):
            return
        for piece in self._steps[level].flush():
            yield from self._through(piece, level + 1)
        yield from self._flush_from(level + 1)


class _StepDecoder:
    """Undoes one coding, handing out at most PIECE bytes at a time."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._first = True
        self._zlib: _Inflater | None = None
        self._brotli: brotli.Decompressor | None = None
        if name == "br":
            self._brotli = brotli.Decompressor()
        elif name in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not data:
            return
        if self._brotli is not None:
            yield from self._feed_brotli(data)
            return
        if self._zlib is None:
            # deflate: RFC 9110 means zlib-wrapped; some servers send raw deflate. Look once.
            wrapped = (
                len(data) >= 2 and (data[0] & 0x0F) == 8 and (data[0] << 8 | data[1]) % 31 == 0
            )
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        inflater = self._zlib
        try:
            while data:
                piece = inflater.decompress(data, PIECE)
                if piece:
                    yield piece
                data = inflater.unconsumed_tail
        except zlib.error as exc:
            raise DecodeError(f"corrupt {self.name} body") from exc

    def _feed_brotli(self, data: bytes) -> Iterator[bytes]:
        assert self._brotli is not None
        decompressor = self._brotli
        try:
            piece = decompressor.process(data, output_buffer_limit=PIECE)
            while True:
                if piece:
                    yield piece
                if decompressor.can_accept_more_data():
                    return
                piece = decompressor.process(b"", output_buffer_limit=PIECE)
        except brotli.error as exc:
            raise DecodeError("corrupt br body") from exc

    def flush(self) -> Iterator[bytes]:
        if self._zlib is not None:
            try:
                rest = self._zlib.flush()  # type: ignore[attr-defined]
            except zlib.error as exc:
                raise DecodeError(f"corrupt {self.name} body") from exc
            if rest:
                yield rest
        return


def accept_encoding(value: str) -> str:
    """A caller's Accept-Encoding narrowed to the codings `decode()` undoes (q-values kept);
    `identity` when nothing readable is left."""
    kept = []
    for item in value.split(","):
        name = item.split(";", 1)[0].strip().lower()
        if name in SUPPORTED or name == "*":
            kept.append(item.strip() if name != "*" else "gzip, deflate, br")
    return ", ".join(kept) if kept else "identity"
