"""Key values out of every relayed part: one pass over the bytes for every secret at once.

A `Redactor` is built once at start-up from the pool's keys. It knows every form a key value
takes on the wire — raw, percent-encoded (`quote`, `quote(safe='')`, `quote_plus`, with upper
or lower hex digits), JSON-escaped (`\\/`) — and replaces each by the key's id. The forms the
proxy itself puts on the wire (`Bearer <value>`, `key=<percent-encoded value>`) contain one of
these, so they come out as `Bearer <id>` and `key=<id>`.

All forms are compiled into one regular expression shaped like a trie (forms sharing a prefix
share a branch), so the C regex engine scans the bytes once, whatever the number of keys; the
longest form wins where several start at the same place. When the keys share no start (many
random keys), `bytes.find` first skips to runs of the bytes keys are made of that are long enough
to hold one, and the trie scans only those. `StreamRedactor` does the same for a
body that arrives piece by piece: it holds back the last (longest form - 1) bytes of each piece,
so a value split across two pieces is still found, and gives the same bytes as redacting the
whole body would.

The error-answer helpers (`held_error`, `error_stream`) decode a body with
`poolswitch.decoding` (bounded), redact it and fix the headers that described the bytes before
(Content-Encoding, Content-Length, validators). A body that cannot be decoded is never relayed:
its bytes are replaced by `UNDECODABLE_BODY`. Pure: no I/O.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import NamedTuple
from urllib.parse import quote, quote_plus

from poolswitch.decoding import Decoder, decode
from poolswitch.errors import DecodeError, TransportError

Headers = list[tuple[bytes, bytes]]

HOLD_LIMIT = 1024 * 1024
"""An error answer kept whole is at most this many bytes once decoded; a larger one is relayed
as a stream (or, when it is not the last answer, kept cut at this size)."""

UNDECODABLE_BODY = json.dumps(
    {
        "error": {
            "type": "upstream_error",
            "code": "undecodable_body",
            "message": "the upstream's error body could not be decoded (corrupt or unknown "
            "Content-Encoding), so the proxy did not relay it: it might carry a key",
        }
    }
).encode()
"""The body relayed, with the upstream's status, in place of an error body we cannot read."""

_DESCRIBES_BYTES = frozenset(
    {b"content-encoding", b"content-length", b"etag", b"content-md5", b"digest"}
    | {b"content-digest", b"repr-digest"}
)
"""Headers about the body's bytes: dropped when the proxy changes those bytes."""

_PERCENT = re.compile(r"%[0-9A-F]{2}")


def wire_forms(value: str) -> set[str]:
    """Every form `value` may take on the wire (raw, percent-encoded, JSON-escaped)."""
    encoded = {quote(value, safe=""), quote(value), quote_plus(value), quote_plus(value, "/")}
    lower = {_PERCENT.sub(lambda m: m.group().lower(), form) for form in encoded}
    return {value, value.replace("/", "\\/"), *encoded, *lower}


class HeldError(NamedTuple):
    """An error answer made safe to relay whole (Content-Length still to be added)."""

    headers: Headers
    body: bytes
    fits: bool
    """False when the decoded body was longer than the limit and `body` is cut there."""


class Redactor:
    """Replaces every wire form of every key value by its key id (see the module docstring)."""

    __slots__ = ("_ids", "_pattern", "_runs", "window")

    def __init__(
        self, secrets: Iterable[tuple[str, str]], *, run_filter: bool | None = None
    ) -> None:
        """`secrets`: (key value, key id) pairs. `run_filter`: look for forms only within runs
        of their bytes (None: when the forms start with many distinct bytes)."""
        ids: dict[bytes, bytes] = {}
        for value, key_id in secrets:
            for form in wire_forms(value):
                ids.setdefault(form.encode(), key_id.encode())
        self._ids = ids
        self._pattern = re.compile(_trie_pattern(list(ids))) if ids else None
        self._runs = _run_pattern(list(ids), run_filter)
        self.window = max(map(len, ids), default=1) - 1
        """Bytes a `StreamRedactor` holds back: a value split across pieces is still found."""

    def __repr__(self) -> str:
        return f"Redactor({len(self._ids)} forms)"

    def redact(self, data: bytes) -> bytes:
        """`data` with every key form replaced by its id (the same object when none is in it)."""
        matches = self._finditer(data)
        first = next(matches, None)
        if first is None:
            return data
        ids = self._ids
        out: list[bytes] = []
        pos = 0
        for m in itertools.chain((first,), matches):
            out += (data[pos : m.start()], ids[m.group()])
            pos = m.end()
        out.append(data[pos:])
        return b"".join(out)

    def _finditer(self, data: bytes) -> Iterator[re.Match[bytes]]:
        """Every key form in `data`, left to right, the longest where several start at once."""
        pattern = self._pattern
        if pattern is None:
            return
        if self._runs is None:
            yield from pattern.finditer(data)
            return
        # Many keys with no common start: the trie's first branch would be tried at every
        # byte. Every form lies within a run of the bytes forms are made of, at least as long
        # as the shortest form; such runs are rare in an error body. Map those bytes to "a",
        # the others to " ", and let bytes.find skip to the runs.
        table, run = self._runs
        mapped = data.translate(table)
        pos = 0
        while (i := mapped.find(run, pos)) >= 0:
            start = max(pos, mapped.rfind(b" ", 0, i) + 1)
            end = mapped.find(b" ", i)
            end = len(data) if end < 0 else end
            yield from pattern.finditer(data, start, end)
            pos = end

    def redact_text(self, text: str) -> str:
        """The same for text (a log line)."""
        data = text.encode("utf-8", "surrogateescape")
        safe = self.redact(data)
        return text if safe is data else safe.decode("utf-8", "surrogateescape")

    def redact_headers(self, headers: Headers) -> Headers:
        """Headers with key forms replaced in their values; a header whose name holds one is
        dropped. The same list when none does (one scan over all of them)."""
        if next(self._finditer(b"\n".join(itertools.chain.from_iterable(headers))), None) is None:
            return headers
        return [
            (name, self.redact(value))
            for name, value in headers
            if next(self._finditer(name), None) is None
        ]

    def stream(self) -> StreamRedactor:
        return StreamRedactor(self)

    def held_error(self, headers: Headers, body: bytes, content_encoding: str | None) -> HeldError:
        """An error answer read whole: body decoded (at most HOLD_LIMIT bytes) and redacted;
        headers redacted, minus those describing the old bytes when the bytes changed. A body
        that cannot be decoded becomes UNDECODABLE_BODY."""
        try:
            decoded, fits = decode(body, content_encoding, HOLD_LIMIT)
        except DecodeError:
            return HeldError(_undecodable(headers), UNDECODABLE_BODY, True)
        safe = self.redact(decoded)
        headers = self.redact_headers(headers)
        if safe is not body:
            headers = [h for h in headers if h[0] not in _DESCRIBES_BYTES]
        return HeldError(headers, safe, fits)

    def error_stream(
        self,
        headers: Headers,
        head: bytes,
        rest: AsyncIterator[bytes],
        content_encoding: str | None,
    ) -> tuple[Headers, AsyncIterator[bytes]]:
        """An error answer relayed as it arrives: (headers, body pieces), the body decoded and
        redacted piece by piece (`head` first, then `rest`), the headers minus those describing
        the old bytes (it goes chunked). The pieces raise TransportError if the body turns out
        corrupt, so the caller's answer ends abruptly instead of looking complete."""
        headers = self.redact_headers(headers)
        try:
            decoder = Decoder(content_encoding)
        except DecodeError:
            return _undecodable(headers), _pieces([UNDECODABLE_BODY])
        return [h for h in headers if h[0] not in _DESCRIBES_BYTES], self._decoded(
            decoder, head, rest
        )

    async def _decoded(
        self, decoder: Decoder, head: bytes, rest: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes]:
        stream = self.stream()
        try:
            for piece in decoder.feed(head):
                if out := stream.feed(piece):
                    yield out
            async for chunk in rest:
                for piece in decoder.feed(chunk):
                    if out := stream.feed(piece):
                        yield out
            for piece in decoder.flush():
                if out := stream.feed(piece):
                    yield out
        except DecodeError as exc:
            raise TransportError("the upstream's error body is corrupt in its coding") from exc
        if out := stream.flush():
            yield out


class StreamRedactor:
    """Redacts a body piece by piece; `feed()` each piece, then `flush()` once at the end.
    Concatenated, the outputs equal `Redactor.redact()` of the whole body."""

    __slots__ = ("_carry", "_redactor")

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._carry = b""

    def feed(self, data: bytes) -> bytes:
        """What can be relayed of the body so far; up to `window` bytes are held back."""
        redactor = self._redactor
        if redactor._pattern is None:
            return data
        buf = self._carry + data if self._carry else data
        safe = len(buf) - redactor.window
        # A match starting before `safe` is final: even the longest form would fit in `buf`,
        # and no earlier start can still grow. One starting later waits for more bytes.
        if safe <= 0:
            self._carry = buf
            return b""
        ids = redactor._ids
        out: list[bytes] = []
        pos = 0
        for m in redactor._finditer(buf):
            if m.start() >= safe:
                break
            out += (buf[pos : m.start()], ids[m.group()])
            pos = m.end()
        if pos < safe:
            out.append(buf[pos:safe])
            pos = safe
        self._carry = buf[pos:]
        return out[0] if len(out) == 1 else b"".join(out)

    def flush(self) -> bytes:
        """The bytes held back, redacted."""
        rest, self._carry = self._carry, b""
        return self._redactor.redact(rest)


def _undecodable(headers: Headers) -> Headers:
    kept = [h for h in headers if h[0] not in _DESCRIBES_BYTES and h[0] != b"content-type"]
    return [*kept, (b"content-type", b"application/json")]


async def _pieces(pieces: Iterable[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


RUN_FILTER_FIRST_BYTES = 4
"""With more distinct first bytes than this among the forms, `_finditer` looks in runs only."""


def _run_pattern(words: list[bytes], wanted: bool | None) -> tuple[bytes, bytes] | None:
    """(a translation table: the bytes forms are made of -> "a", the others -> " "; the
    shortest form's length of "a"s). None when the trie alone is faster: the forms start with
    few distinct bytes, which the regex engine skips to by itself."""
    if wanted is None:
        wanted = len({w[0] for w in words if w}) > RUN_FILTER_FIRST_BYTES
    if not wanted or not words:
        return None
    alphabet = set(b"".join(words))
    table = bytes(0x61 if b in alphabet else 0x20 for b in range(256))
    return table, b"a" * min(map(len, words))


def _trie_pattern(words: list[bytes]) -> bytes:
    """A regular expression matching any of `words`, longest first, shaped like their trie."""
    root: dict[int, dict] = {}  # type: ignore[type-arg]
    end = -1  # marks a node where a word ends
    for word in words:
        node = root
        for byte in word:
            node = node.setdefault(byte, {})
        node[end] = {}
    return b"".join(_alternatives(root, end))


def _alternatives(node: dict, end: int) -> Iterator[bytes]:  # type: ignore[type-arg]
    branches = []
    for byte in sorted(b for b in node if b != end):
        literal = bytearray([byte])
        child = node[byte]
        while len(child) == 1 and end not in child:  # a chain with no choice: one literal
            ((byte, child),) = child.items()
            literal.append(byte)
        branches.append(re.escape(bytes(literal)) + b"".join(_alternatives(child, end)))
    if not branches:
        return
    body = branches[0] if len(branches) == 1 else b"(?:" + b"|".join(branches) + b")"
    # Where a word ends but longer ones go on, try the longer ones first (greedy `?`).
    yield b"(?:" + body + b")?" if end in node else body
