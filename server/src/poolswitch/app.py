"""The ASGI application: built-in endpoints (Starlette) beside the proxy (raw ASGI).

`GET /health`, `GET /status` and `GET /metrics` are answered here; every other request goes
straight to the proxy, with no router in between.

Who may read them: `/health` is open (no Host check either, for load balancers that send an IP);
`/status` is open, unless `callers` is set: then it needs a caller token or the admin token (in
any position a caller token may take); `/metrics` is open unless `metrics_token` is set: then it
needs `Authorization: Bearer <metrics_token>` (or the admin token); the admin API (admin.py,
served only when `admin_token` is set) needs `Authorization: Bearer <admin_token>`. The Host
check (origins.py) applies to all but `/health`, the Origin check to all.

With `dashboard: true`, `/dashboard` and `/dashboard/...` are the web page (dashboard/); its
own form posts and `fetch` calls (an `Origin` naming the proxy itself) pass the Origin check,
on those paths and the admin API only, and the admin API also takes the page's admin session
cookie with its CSRF header (dashboard/session.py).

The lifespan owns the long-lived resources: the store, the pool's background writer and the
upstream client session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from poolswitch.admin import ADMIN_PREFIX, AdminAPI
from poolswitch.callers import Callers, positions
from poolswitch.config import Config
from poolswitch.dashboard import Dashboard, is_dashboard_path, same_origin
from poolswitch.dashboard.session import admin_by_cookie
from poolswitch.envelope import error_response, with_cors
from poolswitch.errors import Forbidden, ProxyError, Unauthorized
from poolswitch.forwarder import Forwarder
from poolswitch.gateway import Gateway
from poolswitch.metrics import CONTENT_TYPE, Metrics, PoolView, StorageView
from poolswitch.pool import Clock, Pool
from poolswitch.proxy import Proxy
from poolswitch.redact import Redactor
from poolswitch.reports import (
    health_document,
    pool_status,
    status_document,
    storage_health,
)
from poolswitch.request import BodyBudget, Receive, Scope, Send
from poolswitch.storage import KeyRecord, create_store

log = logging.getLogger("poolswitch.app")

BUILTIN_PATHS = frozenset({"/health", "/status", "/metrics"})


class PoolSwitchApp:
    """The whole server as one ASGI callable."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock = time.time,
        rng: random.Random | None = None,
        registry: CollectorRegistry | None = None,
        max_connections: int = 256,
    ) -> None:
        self.config = config
        self.clock = clock
        self.upstream_connections = max_connections
        self.store = create_store(config.storage, clock)
        self.metrics = Metrics(
            registry or CollectorRegistry(), self._pool_views, clock, self._storage_view
        )
        self.pools = {
            p.name: Pool(p, self.store, clock=clock, rng=rng, on_remote=self._propagated)
            for p in config.pools
        }
        self.forwarders = {
            p.name: Forwarder(
                p.upstream_base_url,
                connect_timeout=p.connect_timeout_seconds,
                read_timeout=p.request_timeout_seconds,
                max_connections=max_connections,
            )
            for p in config.pools
        }
        # One redactor for every relayed answer: it knows every key value of every pool.
        self.redactor = Redactor(
            (key.secret, key.id) for pool in self.pools.values() for key in pool.keys
        )
        budget = BodyBudget(config.max_buffered_body_bytes)
        self.lanes = {
            p.name: Proxy(
                p,
                self.pools[p.name],
                self.forwarders[p.name],
                self.metrics,
                redactor=self.redactor,
                max_request_body_bytes=config.max_request_body_bytes,
                budget=budget,
                rng=rng,
            )
            for p in config.pools
        }
        self.gateway = Gateway(config, self.lanes, self.metrics, clock=clock)
        self.admin = config.admin_token is not None
        admin = [("admin", config.admin_token)] if config.admin_token else []
        first = config.pools[0]
        self.status_readers = (
            Callers(
                [*((c.id, c.token) for c in config.callers), *admin],
                positions(first.auth_header_name, first.auth_scheme),
                first.auth_query_param,
            )
            if config.callers
            else None
        )
        self.metrics_readers = (
            Callers(
                [("metrics", config.metrics_token), *admin],
                positions(first.auth_header_name, first.auth_scheme, extra=False),
            )
            if config.metrics_token
            else None
        )
        # reads the pools at each call, not now; the dashboard's admin session works there too
        self.admin_api = AdminAPI(
            self, session=lambda request: admin_by_cookie(request, self.config, self.clock())
        )
        self.dashboard = Dashboard(self, clock)
        self.builtins = Starlette(
            routes=[
                *self.dashboard.routes(),
                Route("/health", self.health, methods=["GET"]),
                Route("/status", self.status, methods=["GET"]),
                Route("/metrics", self.prometheus, methods=["GET"]),
                *self.admin_api.routes(),
            ],
            exception_handlers={ProxyError: _proxy_error, Exception: _internal_error},
            lifespan=self.lifespan,
        )

    @property
    def pool(self) -> Pool:
        """The first pool (the only one of a single-pool config)."""
        return next(iter(self.pools.values()))

    @property
    def proxy(self) -> Proxy:
        """The first pool's request loop (the only one of a single-pool config)."""
        return next(iter(self.lanes.values()))

    def _pool_views(self) -> list[PoolView]:
        return [(name, pool.snapshot(), pool.guard.tripped) for name, pool in self.pools.items()]

    def _storage_view(self) -> StorageView:
        return (self.store.name, self.store.problem is None, self.store.outages)

    def _propagated(self, record: KeyRecord, now: float) -> None:
        """Another process's transition reached this one's key selection."""
        if record.changed_at is not None:
            self.metrics.propagation.observe(max(now - record.changed_at, 0.0))

    def storage_health(self) -> dict[str, Any]:
        return storage_health(self.store)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not (
            (scope["path"] in BUILTIN_PATHS and scope["method"] in ("GET", "HEAD"))
            or (self.admin and scope["path"].startswith(ADMIN_PREFIX))
            or (self.config.dashboard and is_dashboard_path(scope["path"]))
        ):
            await self.gateway(scope, receive, send)
            return
        if scope["type"] == "http":
            try:
                origin = self._gate(scope)
            except ProxyError as err:
                status, headers, body = error_response(err)
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            if origin is not None:
                send = with_cors(send, origin)
            # the caller left (protocol.py cancels its request) or the drain cut it
            with contextlib.suppress(asyncio.CancelledError):
                await self.builtins(scope, receive, send)
            return
        await self.builtins(scope, receive, send)

    def _gate(self, scope: Scope) -> bytes | None:
        """The Host and Origin checks; the dashboard's own page may call its routes and the
        admin API (same origin), no other page may."""
        try:
            return self.gateway.gate.check(scope["headers"], host=scope["path"] != "/health")
        except Forbidden:  # raised after the Host check passed
            path = scope["path"]
            if not (
                self.config.dashboard
                and (is_dashboard_path(path) or path.startswith(ADMIN_PREFIX))
                and same_origin(scope["headers"], scope["scheme"])
            ):
                raise
            return None

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        await self.store.open()
        opened: list[Pool] = []
        started: list[Forwarder] = []
        try:
            for p in self.config.pools:
                pool, forwarder = self.pools[p.name], self.forwarders[p.name]
                await pool.open()
                opened.append(pool)
                await forwarder.open()
                started.append(forwarder)
                log.info(
                    "pool %s at %s: %d keys with %s, storage %s, upstream %s",
                    p.name,
                    p.route,
                    len(pool.keys),
                    p.strategy,
                    self.store.name,
                    p.upstream_base_url,
                )
            yield
        finally:
            for forwarder in started:
                await forwarder.close()
            for pool in opened:
                await pool.close()
            await self.store.close()

    async def health(self, _request: Request) -> Response:
        storage = {"backend": self.store.name, **self.storage_health()}
        return JSONResponse(health_document(self.pools.items(), storage))

    async def status(self, request: Request) -> Response:
        readers = self.status_readers
        if (
            readers is not None
            and readers.identify(request.scope["headers"], request.scope.get("query_string", b""))
            is None
        ):
            raise Unauthorized("/status needs a caller token or the admin token")
        return JSONResponse(self.status_document())

    def status_document(self) -> dict[str, Any]:
        pools = [
            pool_status(p, self.pools[p.name], self.lanes[p.name].classifier.profile)
            for p in self.config.pools
        ]
        return status_document(
            pools, self.store.name, self.storage_health(), self.gateway.callers_status()
        )

    async def prometheus(self, request: Request) -> Response:
        readers = self.metrics_readers
        if readers is not None and readers.identify(request.scope["headers"]) is None:
            raise Unauthorized("/metrics needs Authorization: Bearer <metrics_token>")
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)


async def _proxy_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProxyError)
    return _envelope(exc)


async def _internal_error(_request: Request, exc: Exception) -> Response:
    log.error("internal error in a built-in endpoint: %s", type(exc).__name__)
    return _envelope(ProxyError("internal error"))


def _envelope(err: ProxyError) -> Response:
    status, headers, body = error_response(err)
    return Response(
        body,
        status_code=status,
        headers={k.decode(): v.decode() for k, v in headers if k != b"content-length"},
    )
