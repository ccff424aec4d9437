"""What the caller sent, made ready to forward: the target, the headers, the body.

The request target is refused (400) when it would leave the configured upstream: an absolute-form
URL, or `..` segments (plain or percent-encoded) climbing above the base path. Headers lose the
hop-by-hop ones and every header a caller's credential travels in, and `Accept-Encoding` is
narrowed to the codings the proxy can undo (so it can read, and redact, any error answer); the
body is read once, bounded.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

from poolswitch.decoding import accept_encoding
from poolswitch.errors import BadRequest, ClientGone, Overloaded, PayloadTooLarge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

ABSOLUTE_FORM = "poolswitch.absolute_form"
"""Scope flag set by the HTTP protocol when the request target was an absolute URL."""

CALLER_GONE = "poolswitch.caller_gone"
"""Scope flag set by the HTTP protocol when it cancels a request because its caller left."""

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
"""Headers that belong to one connection (RFC 9110 7.6.1): never forwarded, either way."""

CALLER_CREDENTIALS = frozenset(
    {b"authorization", b"x-api-key", b"x-goog-api-key", b"x-poolswitch-token"}
)
"""Where callers put their own credentials (their SDK's API key, their caller token): never
forwarded, whichever header or query parameter the pool key travels in."""

POOL_HEADER = b"x-poolswitch-pool"
"""Names the pool a request is for (the SDKs' `pool` option); the proxy's own, never forwarded."""

REQUEST_DROP = HOP_BY_HOP | CALLER_CREDENTIALS | {b"host", b"content-length", b"expect"}


def dropped_headers(auth_header_name: str) -> frozenset[bytes]:
    """Every request header not forwarded upstream: hop-by-hop, the caller's credentials, and
    the pool's auth header (the pool key goes there instead). Built once at start-up."""
    return REQUEST_DROP | {POOL_HEADER, auth_header_name.lower().encode("latin-1")}


def raw_path_of(scope: Scope) -> bytes:
    """The request path as received, byte for byte."""
    raw: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
    return raw


def request_target(scope: Scope, raw_path: bytes | None = None) -> str:
    """The raw path (`raw_path`, default the request's) and query to append to the upstream
    base URL, or BadRequest."""
    if scope.get(ABSOLUTE_FORM):
        raise BadRequest("absolute-form request targets are not proxied; send the path only")
    if raw_path is None:
        raw_path = raw_path_of(scope)
    if not raw_path.startswith(b"/"):
        raise BadRequest("the request target must be a path starting with /")
    if escapes_base(raw_path):
        raise BadRequest("the request path climbs above the upstream base path")
    query: bytes = scope.get("query_string", b"")
    target = raw_path.decode("latin-1")
    return target + "?" + query.decode("latin-1") if query else target


def escapes_base(raw_path: bytes) -> bool:
    """True when `..` segments (plain or percent-encoded) climb above the path's root."""
    if b"." not in raw_path and b"%" not in raw_path and b"\\" not in raw_path:
        return False
    path = unquote(raw_path.decode("latin-1")).replace("\\", "/")
    depth = 0
    for segment in path.split("/"):
        if segment == "..":
            depth -= 1
            if depth < 0:
                return True
        elif segment and segment != ".":
            depth += 1
    return False


def without_query_param(target: str, name: str) -> str:
    """The target minus every `name=` parameter of its query (the caller's own key)."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    prefix = name + "="
    kept = [p for p in query.split("&") if p != name and not p.startswith(prefix)]
    return path + "?" + "&".join(kept) if kept else path


def forward_headers(
    raw: list[tuple[bytes, bytes]], drop: frozenset[bytes] = REQUEST_DROP
) -> tuple[list[tuple[str, str]], int | None]:
    """The caller's headers minus those in `drop` (see `dropped_headers`); and its
    Content-Length. Values must be UTF-8 (they are forwarded byte for byte); otherwise
    BadRequest."""
    declared: int | None = None
    out: list[tuple[str, str]] = []
    listed: set[bytes] = set()
    for name, value in raw:
        if name in drop:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise BadRequest("invalid Content-Length header") from None
            elif name == b"connection":
                listed.update(t.strip().lower() for t in value.split(b","))
            continue
        if name == b"accept-encoding":
            out.append(("accept-encoding", _readable_codings(value)))
            continue
        try:
            # UTF-8, as the upstream client encodes it again: the same bytes go out
            out.append((name.decode("latin-1"), value.decode("utf-8")))
        except UnicodeDecodeError:
            raise BadRequest(
                f"the value of header {name.decode('latin-1')!r} is not UTF-8, so it cannot be "
                "forwarded unchanged"
            ) from None
    if listed:
        out = [(n, v) for n, v in out if n.encode("latin-1") not in listed]
    return out, declared


@functools.lru_cache(maxsize=64)
def _readable_codings(value: bytes) -> str:
    """A caller's Accept-Encoding narrowed to what `poolswitch.decoding` undoes (the few values
    SDKs send are cached)."""
    return accept_encoding(value.decode("latin-1"))


class BodyBudget:
    """The bytes of request bodies held at once by all requests (`max_buffered_body_bytes`).

    One event loop, no `await` between the check and the update: plain integers suffice."""

    __slots__ = ("held", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, size: int) -> None:
        """Hold `size` more bytes, or Overloaded when that would pass the limit."""
        if self.held + size > self.limit:
            raise Overloaded(
                "the proxy holds too many request bodies at once; try again shortly",
                retry_after=1,
            )
        self.held += size

    def give(self, size: int) -> None:
        self.held -= size


async def read_body(
    receive: Receive, declared: int | None, limit: int, budget: BodyBudget
) -> bytes:
    """The whole request body (kept to send again on failover), or PayloadTooLarge, or
    Overloaded when all bodies held at once would pass the budget. On return the body's
    length is held in `budget` (the caller gives it back when the request ends); on an
    exception nothing is."""
    if declared is not None:
        if declared > limit:
            raise PayloadTooLarge(
                f"request body of {declared} bytes is over the limit of {limit} bytes"
            )
        budget.take(declared)  # before reading any of it, like the 413
    held = declared or 0
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk: bytes = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
                if size > held:
                    budget.take(size - held)
                    held = size
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
    except BaseException:
        budget.give(held)
        raise
    if held != size:
        budget.give(held - size)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
