"""The gateway: every proxied request, from its arrival to the pool that serves it.

In order: shed load beyond `max_in_flight_requests`; check Host and Origin (origins.py); pick
the pool (router.py: the `x-poolswitch-pool` header, else the longest route prefix); identify
the caller by token in the pool's credential positions (callers.py); check the caller may use
the pool and is within its limits (limits.py); then the pool's request loop (proxy.py) serves
it. Every refusal is a proxy-made answer (envelope.py) and sends nothing upstream. Writes the
access log line and the request metrics of every request. Gives each request its id
(requestid.py) and, when an authorised caller asks, a decision trace (trace.py).

A raw ASGI callable: no framework on the hot path.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence

from poolswitch.accesslog import AccessLog
from poolswitch.callers import Callers, positions
from poolswitch.config import CallerConfig, Config
from poolswitch.envelope import error_response, with_cors
from poolswitch.errors import (
    CallerRateLimited,
    ClientGone,
    Forbidden,
    NoSuchPool,
    Overloaded,
    ProxyError,
    Unauthorized,
)
from poolswitch.limits import CONCURRENCY, POOL, CallerLimit
from poolswitch.metrics import Metrics, method_label, status_class
from poolswitch.origins import Gate, cors_headers, is_preflight, preflight_headers
from poolswitch.proxy import Exchange, Proxy
from poolswitch.request import CALLER_GONE, POOL_HEADER, Receive, Scope, Send, raw_path_of
from poolswitch.requestid import HEADER as REQUEST_ID
from poolswitch.requestid import OWN_HEADER as OWN_REQUEST_ID
from poolswitch.requestid import RequestIds
from poolswitch.router import Router
from poolswitch.trace import ASK, Trace
from poolswitch.trace import HEADER as TRACE

errlog = logging.getLogger("poolswitch.proxy")

UNAUTHORIZED = (
    "a caller token is needed: send it as your SDK's API key "
    "(Authorization: Bearer, x-api-key, x-goog-api-key) or in x-poolswitch-token"
)


class Caller:
    """A configured caller: the pools it may use (None: all) and its limits."""

    __slots__ = ("id", "limit", "pools")

    def __init__(self, config: CallerConfig) -> None:
        self.id = config.id
        self.pools = None if config.pools is None else frozenset(config.pools)
        self.limit = CallerLimit(config.rpm, config.max_concurrency)

    def status(self, now: float) -> dict[str, object]:
        """This caller in `/status` (its id and use; never its token)."""
        limit = self.limit
        return {
            "id": self.id,
            "pools": None if self.pools is None else sorted(self.pools),
            "rpm": limit.rpm,
            "max_concurrency": limit.max_concurrency,
            "requests_last_minute": limit.used(now),
            "in_flight": limit.in_flight,
            "rejected": limit.rejected,
        }


class Gateway:
    """Every proxied request as one ASGI callable. `lanes`: each pool's request loop, by pool
    name, in config order; `clock`: Unix seconds, for the callers' limits."""

    def __init__(
        self,
        config: Config,
        lanes: Mapping[str, Proxy],
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = metrics
        self.clock = clock
        self._in_flight = 0
        self.callers: dict[str, Caller] = {}
        self.install(config, lanes)

    def install(self, config: Config, lanes: Mapping[str, Proxy]) -> None:
        """Serve `config` with `lanes` from the next request on (at start, and on a reload:
        synchronous, so requests see one config or the other). A caller whose id remains keeps
        its use (its rpm window, requests in flight); the in-flight count carries over."""
        metrics = self.metrics
        before = self.callers
        self.lanes = dict(lanes)
        self.router = Router((p.name, p.route) for p in config.pools)
        self.gate = Gate(config.listen_host, config.allowed_hosts, config.allowed_origins)
        callers = {c.id: Caller(c) for c in config.callers}
        for caller in callers.values():
            was = before.get(caller.id)
            if was is not None:
                limit = was.limit
                limit.rpm, limit.max_concurrency = caller.limit.rpm, caller.limit.max_concurrency
                caller.limit = limit
        self.callers = callers
        tokens = [(c.id, c.token) for c in config.callers]
        # A caller's token is looked for where the pool's SDKs put their API key.
        self._identify: dict[str, Callers] | None = (
            {
                p.name: Callers(
                    tokens, positions(p.auth_header_name, p.auth_scheme), p.auth_query_param
                )
                for p in config.pools
            }
            if tokens
            else None
        )
        self._anywhere = Callers(tokens, positions("authorization", "Bearer")) if tokens else None
        # no request id may carry a secret: a key value, a caller's, the admin or metrics token
        self.request_ids = RequestIds(
            [
                *(key.secret for lane in self.lanes.values() for key in lane.pool.keys),
                *(token for _, token in tokens),
                *(t for t in (config.admin_token, config.metrics_token) if t),
            ]
        )
        self._max_in_flight = config.max_in_flight_requests
        self.access_log = AccessLog()
        self._rejections = {
            (caller, reason): metrics.caller_rejections.labels(caller, reason)
            for caller in self.callers
            for reason in ("rpm", CONCURRENCY, POOL)
        }

    def callers_status(self) -> list[dict[str, object]]:
        now = self.clock()
        return [caller.status(now) for caller in self.callers.values()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        ex = Exchange()
        given = asked = None
        for header, value in scope["headers"]:
            if header == REQUEST_ID:
                given = value
            elif header == TRACE:
                asked = value
        ex.request_id = self.request_ids.take(given)
        if asked == ASK and self._identify is None:  # no callers: anyone may ask
            ex.trace = Trace()
        try:
            if self._in_flight >= self._max_in_flight:
                raise Overloaded(
                    f"the proxy is serving {self._in_flight} requests "
                    "(max_in_flight_requests); try again shortly",
                    retry_after=1,
                )
            self._in_flight += 1
            try:
                await self._serve(scope, receive, send, ex, asked == ASK)
            finally:
                self._in_flight -= 1
        except ClientGone:
            ex.status = 499
        except asyncio.CancelledError:
            # protocol.py cancels a request whose caller left (the upstream attempt is dropped
            # with it, and the key is not blamed); uvicorn cancels what its shutdown drain cut.
            # Either way this request ends here, without a traceback.
            if scope.get(CALLER_GONE):
                ex.status = 499
            else:
                errlog.warning("%s %s cut by the shutdown drain", scope["method"], scope["path"])
                if not ex.started:
                    await self._answer_error(
                        send, Overloaded("the proxy is shutting down", retry_after=1), ex
                    )
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
                method_label(scope["method"]), status_class(ex.status), ex.caller, ex.pool
            ).inc()
            self.metrics.request_duration.observe(elapsed)
            self.access_log.write(
                scope["method"],
                scope["path"],
                ex.status,
                " incomplete" if ex.incomplete else "",
                ex.key_id or "-",
                ex.attempts,
                ex.caller,
                ex.pool,
                elapsed * 1000.0,
                ex.request_id,
            )

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, ex: Exchange, trace: bool = False
    ) -> None:
        raw_headers: Sequence[tuple[bytes, bytes]] = scope["headers"]
        origin = self.gate.check(raw_headers)
        if origin is not None:
            ex.cors = origin
            if is_preflight(scope["method"], raw_headers):
                ex.status, ex.started = 204, True
                answer = preflight_headers(origin, raw_headers)
                rid = ex.request_id.encode()
                answer += [(REQUEST_ID, rid), (OWN_REQUEST_ID, rid)]
                await send({"type": "http.response.start", "status": 204, "headers": answer})
                await send({"type": "http.response.body", "body": b""})
                return
            send = with_cors(send, origin)
        name, raw_path = self._route(scope, raw_headers)
        if name:
            ex.pool = name
        caller = None
        if self._identify is not None:
            # in the routed pool's credential positions; with no pool, the common ones
            readers = self._identify[name] if name else self._anywhere
            assert readers is not None
            found = readers.identify(raw_headers, scope.get("query_string", b""))
            if found is None:
                raise Unauthorized(UNAUTHORIZED)
            ex.caller = found
            caller = self.callers[found]
            if trace:  # an identified caller may ask for the decision trace
                ex.trace = Trace()
        if not name:  # known caller (or no callers): now it may learn there is no such pool
            raise NoSuchPool(
                "no pool serves this path: use a pool's route as the base URL "
                "(see /status) or name the pool in x-poolswitch-pool"
            )
        lane = self.lanes[name]
        ex.lane = lane
        if caller is None:
            lane.in_flight += 1
            try:
                await lane.handle(scope, raw_path, receive, send, ex)
            finally:
                lane.in_flight -= 1
            return
        if caller.pools is not None and name not in caller.pools:
            self._rejections[caller.id, POOL].inc()
            caller.limit.rejected += 1
            raise Forbidden(f"caller {caller.id!r} may not use pool {name!r}")
        refused = caller.limit.admit(self.clock())
        if refused is not None:
            reason, wait = refused
            self._rejections[caller.id, reason].inc()
            what = "requests per minute (rpm)" if reason != CONCURRENCY else "max_concurrency"
            raise CallerRateLimited(
                f"caller {caller.id!r} is over its {what}; retry in {wait:.1f}s",
                retry_after=max(1, math.ceil(wait)),
            )
        lane.in_flight += 1
        try:
            await lane.handle(scope, raw_path, receive, send, ex)
        finally:
            lane.in_flight -= 1
            caller.limit.release()

    def _route(self, scope: Scope, raw_headers: Sequence[tuple[bytes, bytes]]) -> tuple[str, bytes]:
        """(pool name or "", the path to forward)."""
        raw_path = raw_path_of(scope)
        for header, value in raw_headers:
            if header == POOL_HEADER:
                return self.router.by_name(value) or "", raw_path
        match = self.router.match(raw_path)
        return match if match is not None else ("", raw_path)

    async def _answer_error(self, send: Send, err: ProxyError, ex: Exchange) -> None:
        status, headers, body = error_response(err, ex.request_id)
        if ex.attempts:
            headers.append((b"x-poolswitch-attempts", str(ex.attempts).encode()))
        if ex.trace is not None:
            headers.append(ex.trace.header())
        if ex.cors is not None:
            headers += cors_headers(ex.cors)
        self.metrics.proxy_errors.labels(err.code).inc()
        ex.status, ex.started = status, True
        lane = ex.lane
        if lane is not None and lane.pool.transitions_pending:  # keys parked: durable first
            await lane.pool.commit_transitions()
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
