"""The HTTP/1.1 connection: uvicorn's httptools protocol plus the limits on what callers send.

The one place where connection-level limits live (uvicorn is imported only here and in cli.py):

- the request line and headers together are read up to `max_header_bytes` and counted up to
  `max_header_count`; beyond either the caller gets `431 headers_too_large` and the connection
  is closed, so a huge head is never held in memory;
- a request head must arrive within `header_timeout_seconds` (from the first byte, or from the
  accept for a new connection), and a body must not pause longer than `body_timeout_seconds`
  between two reads; otherwise the connection is closed. Both are checked by one sweep per
  server, a few times per second over the open connections, so the per-request path pays no
  timer: only a few integer stores;
- at most `max_connections` are open (capped by the file-descriptor limit); a new one beyond
  that is closed at once, so those already open keep working;
- when the caller goes away before its answer is complete, the request's task is cancelled:
  the proxy (proxy.py) stops its upstream attempt at once and counts the request as 499;
- bytes that are not HTTP get the wire contract's JSON `400 bad_request` (not uvicorn's plain
  text) and the connection is closed; a request still in flight on it is cancelled like one
  whose caller left (its answer could no longer be framed). `CONNECT` is refused the same way:
  the proxy forwards requests, it opens no tunnels.

The hooks into uvicorn's private internals are listed in `HOOKS` and checked by
tests/test_protocol_contract.py; pyproject.toml bounds uvicorn's version.
"""

from __future__ import annotations

import asyncio
import logging
import math
import resource
import time
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from poolswitch.config import Config
from poolswitch.envelope import error_response
from poolswitch.errors import BadRequest, HeadersTooLarge, ProxyError
from poolswitch.request import ABSOLUTE_FORM, CALLER_GONE

log = logging.getLogger("poolswitch.limits")

HOOKS = (
    "connection_made",
    "connection_lost",
    "data_received",
    "on_header",
    "on_headers_complete",
    "on_message_complete",
    "_start_asgi_task",
    "_unset_keepalive_if_required",
    "send_400_response",
    "_should_upgrade",
    "handle_websocket_upgrade",
    "_unsupported_upgrade_warning",
)
"""Methods of uvicorn's HttpToolsProtocol this module overrides or calls."""

FD_RESERVE = 64
"""File descriptors kept for everything but callers: listening sockets, the event loop, sqlite,
logs. The upstream connection pool's size is reserved on top."""

HEAD, BODY, WAIT = 0, 1, 2
"""Where a connection is: reading a request head, reading a body, or neither (waiting for the
answer, or idle between requests, where uvicorn's keep-alive timer applies)."""

_REFUSAL_LOG_SECONDS = 60.0


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request the limits refuse."""


def raw_answer(err: ProxyError, reason: bytes) -> bytes:
    """A proxy-made answer (the wire contract's envelope) as bytes on the wire, closing."""
    status, headers, body = error_response(err)
    head = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
    head += [name + b": " + value + b"\r\n" for name, value in headers]
    return b"".join([*head, b"connection: close\r\n\r\n", body])


ANSWER_431 = raw_answer(
    HeadersTooLarge("the request line and headers are over the proxy's limit"),
    b"Request Header Fields Too Large",
)
NOT_HTTP = "the request is not valid HTTP/1.1"
NO_TUNNELS = "CONNECT is not proxied: PoolSwitch forwards requests, it opens no tunnels"


def raise_fd_limit() -> tuple[int, int] | None:
    """Lift the soft open-file limit to the hard one, as nginx and Go programs do (a default
    soft limit of 1,024 would cap the connections far below what the host allows): (before,
    after), or None when nothing changed or the system refused."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard or soft == resource.RLIM_INFINITY:
        return None
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (OSError, ValueError):
        return None
    return soft, hard


def effective_max_connections(configured: int, upstream_connections: int) -> tuple[int, int]:
    """The connection cap the process can keep: (cap, soft file-descriptor limit)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured, soft
    return max(1, min(configured, soft - upstream_connections - FD_RESERVE)), soft


def sweep_ticks(header_timeout: float, body_timeout: float) -> tuple[float, int, int]:
    """(sweep period, ticks for a head, ticks for a body pause): a connection is closed on the
    first sweep after its deadline, never before, at most one period late."""
    period = min(max(min(header_timeout, body_timeout) / 4, 0.05), 1.0)
    return period, math.ceil(header_timeout / period), math.ceil(body_timeout / period)


class _Sweeper:
    """One per server: closes connections whose head or body is late, a few times a second."""

    def __init__(self, header_timeout: float, body_timeout: float) -> None:
        self.period, self.head_ticks, self.body_ticks = sweep_ticks(header_timeout, body_timeout)
        self.running = False
        self.refused = 0
        self.refusal_logged = -math.inf

    def start(self, loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
        self.running = True
        loop.call_later(self.period, self.sweep, loop, connections)

    def sweep(self, loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
        head_ticks, body_ticks = self.head_ticks, self.body_ticks
        for conn in tuple(connections):
            if not isinstance(conn, LimitedProtocol) or conn._phase == WAIT:
                continue
            conn._ticks += 1
            if conn._ticks > (head_ticks if conn._phase == HEAD else body_ticks):
                conn._phase = WAIT
                if not conn.transport.is_closing():
                    conn.transport.close()
        if connections:
            loop.call_later(self.period, self.sweep, loop, connections)
        else:
            self.running = False


class LimitedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above, plus a scope flag when the request
    target was an absolute URL (uvicorn keeps only its path, which would hide where the caller
    meant to go). Use `protocol_class()` to get one bound to a config."""

    max_head: ClassVar[int]
    max_headers: ClassVar[int]
    max_connections: ClassVar[int]
    sweeper: ClassVar[_Sweeper]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase = HEAD
        self._ticks = 0
        self._head_left = self.max_head
        self._headers_left = self.max_headers
        self._refused = False
        self._task: asyncio.Task[None] | None = None
        self._task_cycle: RequestResponseCycle | None = None

    # connections

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.max_connections:
            self._refuse_connection(transport)
            return
        super().connection_made(transport)
        if not self.sweeper.running:
            self.sweeper.start(self.loop, self.connections)

    def _refuse_connection(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self._refused = True
        self._phase = WAIT
        transport.abort()
        sweeper = self.sweeper
        sweeper.refused += 1
        now = time.monotonic()
        if now - sweeper.refusal_logged >= _REFUSAL_LOG_SECONDS:
            sweeper.refusal_logged = now
            log.warning(
                "refusing new connections: %d are open (max_connections); %d refused so far",
                len(self.connections),
                sweeper.refused,
            )

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused and self.flow is None:  # refused at accept: nothing else to undo
            return
        self._phase = WAIT
        self._cancel_in_flight()
        super().connection_lost(exc)

    def _cancel_in_flight(self) -> None:
        """The request being answered on this connection can no longer be: cancel its task
        (the proxy counts it as 499 and stops its upstream attempt)."""
        cycle, task = self._task_cycle, self._task
        if (
            cycle is not None
            and task is not None
            and not cycle.response_complete
            and not task.done()
        ):
            cycle.scope[CALLER_GONE] = True  # type: ignore[literal-required]
            cycle.disconnected = True  # as uvicorn's connection_lost sets it, a moment early
            task.cancel()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        if getattr(self.config, "reset_contextvars", False):
            super()._start_asgi_task(cycle, app)
            return
        task = self.loop.create_task(cycle.run_asgi(app))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)
        self._task, self._task_cycle = task, cycle

    # reading

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        phase = self._phase
        if phase == BODY:
            self._ticks = 0
        else:
            if phase == WAIT:
                if self._refused:
                    return  # answered 431: the rest is discarded until the close
                self._phase = HEAD
                self._ticks = 0
            if len(data) > self._head_left:
                self._head_over_limit(data)
                return
            self._head_left -= len(data)
        try:  # as _feed, inlined: this runs once per read
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._parser_stopped(exc)

    def _head_over_limit(self, data: bytes) -> None:
        """Feed the parser up to the limit; if the head is still not complete, refuse it."""
        left, self._head_left = self._head_left, 0
        if left:
            self._feed(data[:left])
            if self._refused or self.transport.is_closing():
                return
        if self._phase == HEAD:
            self._refuse_request()
            return
        self._feed(data[left:])

    def _feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._parser_stopped(exc)

    def _parser_stopped(self, exc: Exception) -> None:
        """What uvicorn's data_received does when the parser stops, plus our refusals."""
        if self.transport.is_closing():
            return  # already answered (CONNECT) or closed
        if isinstance(exc, httptools.HttpParserUpgrade):
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        elif self._refused:
            self._refuse_request()
        else:
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response(NOT_HTTP)

    def send_400_response(self, msg: str) -> None:
        """Answer `400 bad_request` in the wire contract's envelope and close (uvicorn's own
        answers plain text). A request still in flight here is cancelled first: its answer
        would come after this one on a closed connection."""
        self._cancel_in_flight()
        self._refused = True
        self._phase = WAIT
        transport = self.transport
        if transport.is_closing():
            return
        transport.write(raw_answer(BadRequest(msg), b"Bad Request"))
        transport.close()

    def _refuse_request(self) -> None:
        """Answer 431, stop reading, and close once the caller had a moment to read it (closing
        at once, with its unread bytes pending, would reset the connection over the answer)."""
        self._cancel_in_flight()  # its answer could not follow this one (write_eof below)
        self._refused = True
        self._phase = WAIT
        transport = self.transport
        if transport.is_closing():
            return
        transport.write(ANSWER_431)
        if transport.can_write_eof():
            transport.write_eof()
        self.loop.call_later(1.0, transport.close)

    # parser callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers_left -= 1
        if self._headers_left < 0:
            self._refused = True
            raise _Refused
        # as uvicorn's own on_header (inlined: it runs once per header)
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.parser.get_method() == b"CONNECT":
            self.send_400_response(NO_TUNNELS)
            return
        self._phase = BODY
        self._ticks = 0
        self._headers_left = self.max_headers
        if not self.url.startswith(b"/"):
            self.scope[ABSOLUTE_FORM] = True  # type: ignore[literal-required]
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._phase = WAIT
        self._head_left = self.max_head
        super().on_message_complete()


def protocol_class(config: Config, max_connections: int) -> type[LimitedProtocol]:
    """A LimitedProtocol bound to `config`'s limits; one per server (it holds the sweeper)."""
    return type(
        "LimitedProtocol",
        (LimitedProtocol,),
        {
            "max_head": config.max_header_bytes,
            "max_headers": config.max_header_count,
            "max_connections": max_connections,
            "sweeper": _Sweeper(config.header_timeout_seconds, config.body_timeout_seconds),
        },
    )
