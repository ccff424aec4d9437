"""The ASGI application: built-in endpoints (Starlette) beside the proxy (raw ASGI).

`GET /health`, `GET /status` and `GET /metrics` are answered here; every other request goes
straight to the proxy, with no router in between.

Who may read them: `/health` is open (no Host check either, for load balancers that send an IP);
`/status` is open, unless `callers` is set: then it needs a caller token or the admin token (in
any position a caller token may take); `/metrics` is open unless `metrics_token` is set: then it
needs `Authorization: Bearer <metrics_token>` (or the admin token); the admin API needs
`Authorization: Bearer <admin_token>`. The Host check (origins.py) applies to all but `/health`,
the Origin check to all.

The lifespan owns the long-lived resources: the store, the pool's background writer and the
upstream client session.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
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

from poolswitch.callers import Callers, positions
from poolswitch.config import Config
from poolswitch.errors import NotFound, ProxyError, Unauthorized
from poolswitch.forwarder import Forwarder
from poolswitch.metrics import CONTENT_TYPE, Metrics
from poolswitch.pool import Clock, Pool
from poolswitch.proxy import Proxy, error_response, with_cors
from poolswitch.request import Receive, Scope, Send
from poolswitch.storage import create_store

log = logging.getLogger("poolswitch.app")

BUILTIN_PATHS = frozenset({"/health", "/status", "/metrics"})
ADMIN_PREFIX = "/poolswitch/admin/keys"
"""The admin API (list, enable, disable keys); served only when `admin_token` is set."""


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
        self.upstream_connections = max_connections
        self.store = create_store(config.storage)
        self.pool = Pool(config, self.store, clock=clock, rng=rng)
        self.forwarder = Forwarder(
            config.upstream_base_url,
            connect_timeout=config.connect_timeout_seconds,
            read_timeout=config.request_timeout_seconds,
            max_connections=max_connections,
        )
        self.metrics = Metrics(
            registry or CollectorRegistry(),
            self.pool.snapshot,
            clock,
            degraded=lambda: self.pool.guard.tripped,
        )
        self.proxy = Proxy(config, self.pool, self.forwarder, self.metrics, rng=rng)
        self.admin = config.admin_token is not None
        admin = [("admin", config.admin_token)] if config.admin_token else []
        self.status_readers = (
            Callers(
                [*((c.id, c.token) for c in config.callers), *admin],
                positions(config.auth_header_name, config.auth_scheme),
                config.auth_query_param,
            )
            if config.callers
            else None
        )
        self.metrics_readers = (
            Callers(
                [("metrics", config.metrics_token), *admin],
                positions(config.auth_header_name, config.auth_scheme, extra=False),
            )
            if config.metrics_token
            else None
        )
        self.builtins = Starlette(
            routes=[
                Route("/health", self.health, methods=["GET"]),
                Route("/status", self.status, methods=["GET"]),
                Route("/metrics", self.prometheus, methods=["GET"]),
                Route(ADMIN_PREFIX, self.admin_list, methods=["GET"]),
                Route(ADMIN_PREFIX + "/{key_id}/{action:str}", self.admin_action, methods=["POST"]),
            ],
            exception_handlers={ProxyError: _proxy_error, Exception: _internal_error},
            lifespan=self.lifespan,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not (
            (scope["path"] in BUILTIN_PATHS and scope["method"] in ("GET", "HEAD"))
            or (self.admin and scope["path"].startswith(ADMIN_PREFIX))
        ):
            await self.proxy(scope, receive, send)
            return
        if scope["type"] == "http":
            try:
                origin = self.proxy.gate.check(scope["headers"], host=scope["path"] != "/health")
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

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        await self.store.open()
        try:
            await self.pool.open()
            await self.forwarder.open()
            log.info(
                "serving %d keys with %s, storage %s, upstream %s",
                len(self.pool.keys),
                self.config.strategy,
                self.store.name,
                self.config.upstream_base_url,
            )
            yield
        finally:
            await self.forwarder.close()
            await self.pool.close()
            await self.store.close()

    async def health(self, _request: Request) -> Response:
        available, total = self.pool.counts()
        return JSONResponse(
            {
                "status": "ok" if available and not self.pool.guard.tripped else "degraded",
                "keys_available": available,
                "keys_total": total,
            }
        )

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
        return {
            "strategy": self.config.strategy,
            "storage": self.store.name,
            "upstream_base_url": self.config.upstream_base_url,
            "provider": self.proxy.classifier.profile,
            "degraded": self.pool.guard.tripped,
            "outage": None
            if self.pool.guard.tripped_kind is None
            else {"kind": self.pool.guard.tripped_kind, "since": self.pool.guard.since},
            "keys": [
                {
                    "id": k.id,
                    "state": k.state,
                    "cooldown_until": k.cooldown_until,
                    "reason": k.reason,
                    "cooldown_source": k.source,
                    "total_requests": k.total_requests,
                    "successes": k.successes,
                    "errors": k.errors,
                    "failovers": k.failovers,
                    "estimated_remaining_quota": k.estimated_remaining_quota,
                    "last_used_at": k.last_used_at,
                }
                for k in self.pool.snapshot()
            ],
        }

    def _check_admin(self, request: Request) -> None:
        token = self.config.admin_token or ""
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise Unauthorized("the admin API needs Authorization: Bearer <admin_token>")

    async def admin_list(self, request: Request) -> Response:
        self._check_admin(request)
        return JSONResponse({"keys": self.status_document()["keys"]})

    async def admin_action(self, request: Request) -> Response:
        self._check_admin(request)
        key_id, action = request.path_params["key_id"], request.path_params["action"]
        if action not in ("enable", "disable"):
            raise NotFound(f"unknown admin action {action!r} (enable or disable)")
        done = self.pool.enable(key_id) if action == "enable" else self.pool.disable(key_id)
        if not done:
            raise NotFound(f"no key with id {key_id!r}")
        if self.pool.transitions_pending:  # the operator's change is durable before the answer
            await self.pool.commit_transitions()
        keys = {k["id"]: k for k in self.status_document()["keys"]}
        return JSONResponse(keys[key_id])

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
