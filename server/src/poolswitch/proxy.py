"""The request loop: select a key -> forward -> classify -> record -> fail over or answer.

A raw ASGI callable (no framework on the hot path). The request body is read once, bounded by
`max_request_body_bytes`, so it can be sent again to another key. Failover is possible until the
first byte of an answer reaches the caller; after that the upstream's body is relayed as it
arrives and nothing is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

from poolswitch.classifier import NETWORK_ERROR, SUCCESS, TIMEOUT, Verdict, classify
from poolswitch.config import Config
from poolswitch.errors import (
    BadRequest,
    NoAvailableKeys,
    PayloadTooLarge,
    ProxyError,
    ReadTimeout,
    TransportError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from poolswitch.forwarder import Forwarder, UpstreamResponse
from poolswitch.metrics import Metrics, method_label, status_class
from poolswitch.pool import Pool
from poolswitch.retry import should_fail_over

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("poolswitch.access")
errlog = logging.getLogger("poolswitch.proxy")

ABSOLUTE_FORM = "poolswitch.absolute_form"
"""Scope flag set by the HTTP protocol when the request target was an absolute URL."""

BUFFER_LIMIT = 1024 * 1024
"""Bodies up to this size with a Content-Length are relayed in one piece; error bodies are read
whole up to it to be classified."""

_REQUEST_DROP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
        b"expect",
    }
)
_RESPONSE_DROP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_QUOTA_HEADERS = ("x-ratelimit-remaining-requests", "anthropic-ratelimit-requests-remaining")


class _ClientGone(Exception):
    """The caller disconnected before we answered."""


class _Exchange:
    """What the access log and metrics need to know about one request."""

    __slots__ = ("attempts", "key_id", "started", "status")

    def __init__(self) -> None:
        self.status = 0
        self.key_id: str | None = None
        self.attempts = 0
        self.started = False


class Proxy:
    def __init__(self, config: Config, pool: Pool, forwarder: Forwarder, metrics: Metrics):
        self.config = config
        self.pool = pool
        self.forwarder = forwarder
        self.metrics = metrics
        self.auth_header = config.auth_header_name
        self._drop = _REQUEST_DROP | {config.auth_header_name.lower().encode("latin-1")}
        self._key_ids = [key.id.encode("ascii") for key in pool.keys]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        ex = _Exchange()
        try:
            await self._serve(scope, receive, send, ex)
        except _ClientGone:
            ex.status = 499
        except ProxyError as err:
            if not ex.started:
                await self._answer_error(send, err, ex)
        except Exception:
            errlog.exception("internal error while proxying %s %s", scope["method"], scope["path"])
            if not ex.started:
                await self._answer_error(send, ProxyError("internal proxy error"), ex)
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.requests.labels(
                method_label(scope["method"]), status_class(ex.status)
            ).inc()
            self.metrics.request_duration.observe(elapsed)
            log.info(
                "%s %s %d key=%s attempts=%d %.1fms",
                scope["method"],
                scope["path"],
                ex.status,
                ex.key_id or "-",
                ex.attempts,
                elapsed * 1000.0,
            )

    async def _serve(self, scope: Scope, receive: Receive, send: Send, ex: _Exchange) -> None:
        method: str = scope["method"]
        target = request_target(scope)
        headers, declared = self._request_headers(scope["headers"])
        body = await self._read_body(receive, declared)

        pool, config = self.pool, self.config
        tried: set[int] = set()
        last_answer: tuple[int, list[tuple[bytes, bytes]], bytes, int] | None = None
        last_failure: TransportError | None = None
        while True:
            i = pool.select(tried)
            if i is None:
                break
            tried.add(i)
            ex.attempts += 1
            key = pool.keys[i]
            sent_at = time.perf_counter()
            resp = None
            try:
                resp = await self.forwarder.send(
                    method, target, [*headers, (self.auth_header, key.auth_value)], body
                )
                self.metrics.upstream_duration.observe(time.perf_counter() - sent_at)
                if resp.status < 400:
                    await self._relay(resp, i, ex, send, receive)
                    return
                head, complete = await _read_or_release(resp)
            except TransportError as exc:
                if resp is None:
                    self.metrics.upstream_duration.observe(time.perf_counter() - sent_at)
                last_failure = exc
                verdict = TIMEOUT if isinstance(exc, ReadTimeout) else NETWORK_ERROR
                if self._after_attempt(i, verdict, ex):
                    continue
                break
            verdict = classify(
                resp.status,
                resp.headers,
                head,
                cooldown_seconds=config.cooldown_seconds,
                now=pool.clock(),
            )
            if not complete:  # an error body over the limit: relay it as it comes
                self._after_attempt(i, verdict, ex, final=True)
                await self._stream(resp, i, ex, send, receive, head)
                return
            resp.release()
            last_answer = (resp.status, self._response_headers(resp, i, ex), head, i)
            last_failure = None
            if not self._after_attempt(i, verdict, ex):
                break

        if last_answer is not None:
            status, raw, content, i = last_answer
            ex.key_id = pool.keys[i].id
            raw[-1] = (b"x-poolswitch-attempts", str(ex.attempts).encode())  # the final count
            ex.status, ex.started = status, True
            await send({"type": "http.response.start", "status": status, "headers": raw})
            await send({"type": "http.response.body", "body": content})
            return
        if last_failure is not None:
            if isinstance(last_failure, ReadTimeout):
                raise UpstreamTimeout(
                    f"the upstream did not answer in time ({ex.attempts} attempt(s))"
                )
            raise UpstreamUnreachable(
                f"the upstream could not be reached ({ex.attempts} attempt(s)): {last_failure}"
            )
        wait = pool.retry_after()
        raise NoAvailableKeys(
            "every key is cooling down or disabled"
            + (f"; the first returns in {wait:.1f}s" if wait is not None else ""),
            retry_after=None if wait is None else float(max(1, math.ceil(wait))),
        )

    def _after_attempt(self, i: int, verdict: Verdict, ex: _Exchange, final: bool = False) -> bool:
        """Record an unsuccessful attempt; True when the request should move to another key."""
        outcome = verdict.outcome.value
        self.metrics.upstream_attempts.labels(self.pool.keys[i].id, outcome).inc()
        fail_over = not final and should_fail_over(verdict, ex.attempts, self.config.retry_attempts)
        self.pool.record(i, verdict, failover=fail_over)
        if fail_over:
            self.metrics.failovers.labels(outcome).inc()
        return fail_over

    async def _relay(
        self, resp: UpstreamResponse, i: int, ex: _Exchange, send: Send, receive: Receive
    ) -> None:
        """Relay a successful answer. Raises TransportError only before anything was sent."""
        length = resp.content_length
        if length is not None and length <= BUFFER_LIMIT and not _is_event_stream(resp):
            content, _ = await _read_or_release(resp, length)
            resp.release()
            self._record_success(i, resp)
            ex.status, ex.started = resp.status, True
            await send(
                {
                    "type": "http.response.start",
                    "status": resp.status,
                    "headers": self._response_headers(resp, i, ex),
                }
            )
            await send({"type": "http.response.body", "body": content})
            return
        self._record_success(i, resp)
        await self._stream(resp, i, ex, send, receive, b"")

    def _record_success(self, i: int, resp: UpstreamResponse) -> None:
        remaining = None
        for name in _QUOTA_HEADERS:
            value = resp.headers.get(name)
            if value is not None and value.isdigit():
                remaining = int(value)
                break
        self.metrics.upstream_attempts.labels(self.pool.keys[i].id, "success").inc()
        self.pool.record(i, SUCCESS, remaining_quota=remaining)

    async def _stream(
        self,
        resp: UpstreamResponse,
        i: int,
        ex: _Exchange,
        send: Send,
        receive: Receive,
        head: bytes,
    ) -> None:
        """Relay the body piece by piece as it arrives; stop if the caller goes away."""
        ex.status, ex.started = resp.status, True
        await send(
            {
                "type": "http.response.start",
                "status": resp.status,
                "headers": self._response_headers(resp, i, ex),
            }
        )
        gone = asyncio.ensure_future(_disconnected(receive))
        complete = False
        try:
            if head:
                await send({"type": "http.response.body", "body": head, "more_body": True})
            async for chunk in resp.chunks():
                if gone.done():
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            complete = True
        except TransportError as exc:
            # Too late to fail over: end the caller's answer abruptly so it is not mistaken
            # for a complete one, and count the failure against the key.
            errlog.warning("upstream failed mid-stream on key %s: %s", self.pool.keys[i].id, exc)
            self.pool.record(i, NETWORK_ERROR)
        finally:
            if not complete and gone.done():
                ex.status = 499
            gone.cancel()
            resp.release()

    def _response_headers(
        self, resp: UpstreamResponse, i: int, ex: _Exchange
    ) -> list[tuple[bytes, bytes]]:
        ex.key_id = self.pool.keys[i].id
        headers = [
            (name.lower(), value)
            for name, value in resp.raw_headers
            if name.lower().decode("latin-1") not in _RESPONSE_DROP
        ]
        headers.append((b"x-poolswitch-key-id", self._key_ids[i]))
        headers.append((b"x-poolswitch-attempts", str(ex.attempts).encode()))
        return headers

    def _request_headers(
        self, raw: list[tuple[bytes, bytes]]
    ) -> tuple[list[tuple[str, str]], int | None]:
        """The caller's headers minus hop-by-hop ones and its own auth; and its Content-Length."""
        drop = self._drop
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
            out.append((name.decode("latin-1"), value.decode("latin-1")))
        if listed:
            out = [(n, v) for n, v in out if n.encode("latin-1") not in listed]
        return out, declared

    async def _read_body(self, receive: Receive, declared: int | None) -> bytes:
        limit = self.config.max_request_body_bytes
        if declared is not None and declared > limit:
            raise PayloadTooLarge(
                f"request body of {declared} bytes is over the limit of {limit} bytes"
            )
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk: bytes = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _answer_error(self, send: Send, err: ProxyError, ex: _Exchange) -> None:
        status, headers, body = error_response(err)
        if ex.attempts:
            headers.append((b"x-poolswitch-attempts", str(ex.attempts).encode()))
        self.metrics.proxy_errors.labels(err.code).inc()
        ex.status, ex.started = status, True
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def error_response(err: ProxyError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The wire contract's envelope for an answer the proxy makes itself."""
    body = json.dumps(
        {
            "error": {
                "type": "poolswitch_error",
                "code": err.code,
                "message": err.message,
                "retry_after": err.retry_after,
            }
        }
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-poolswitch-error", err.code.encode()),
    ]
    if err.retry_after is not None:
        headers.append((b"retry-after", str(math.ceil(err.retry_after)).encode()))
    return err.status, headers, body


def request_target(scope: Scope) -> str:
    """The raw path and query to append to the upstream base URL, or BadRequest."""
    if scope.get(ABSOLUTE_FORM):
        raise BadRequest("absolute-form request targets are not proxied; send the path only")
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
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


async def _read_or_release(resp: UpstreamResponse, limit: int = BUFFER_LIMIT) -> tuple[bytes, bool]:
    try:
        return await resp.read(limit)
    except TransportError:
        resp.release()
        raise


def _is_event_stream(resp: UpstreamResponse) -> bool:
    return resp.headers.get("content-type", "").startswith("text/event-stream")


async def _disconnected(receive: Receive) -> None:
    """Returns when the caller disconnects."""
    with contextlib.suppress(Exception):
        while (await receive())["type"] != "http.disconnect":
            pass
