"""The ASGI application: built-in endpoints (Starlette) beside the proxy (raw ASGI).

`GET /health`, `GET /status` and `GET /metrics` are answered here; every other request goes
straight to the proxy, with no router in between. The lifespan owns the long-lived resources:
the store, the pool's background writer and the upstream client session.
"""

from __future__ import annotations

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

from poolswitch.config import Config
from poolswitch.errors import ProxyError
from poolswitch.forwarder import Forwarder
from poolswitch.metrics import CONTENT_TYPE, Metrics
from poolswitch.pool import Clock, Pool
from poolswitch.proxy import Proxy, Receive, Scope, Send, error_response
from poolswitch.storage import create_store

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
        self.store = create_store(config.storage)
        self.pool = Pool(config, self.store, clock=clock, rng=rng)
        self.forwarder = Forwarder(
            config.upstream_base_url,
            connect_timeout=config.connect_timeout_seconds,
            read_timeout=config.request_timeout_seconds,
            max_connections=max_connections,
        )
        self.metrics = Metrics(registry or CollectorRegistry(), self.pool.snapshot, clock)
        self.proxy = Proxy(config, self.pool, self.forwarder, self.metrics)
        self.builtins = Starlette(
            routes=[
                Route("/health", self.health, methods=["GET"]),
                Route("/status", self.status, methods=["GET"]),
                Route("/metrics", self.prometheus, methods=["GET"]),
            ],
            exception_handlers={Exception: _internal_error},
            lifespan=self.lifespan,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not (
            scope["path"] in BUILTIN_PATHS and scope["method"] in ("GET", "HEAD")
        ):
            await self.proxy(scope, receive, send)
        else:
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
                "status": "ok" if available else "degraded",
                "keys_available": available,
                "keys_total": total,
            }
        )

    async def status(self, _request: Request) -> Response:
        return JSONResponse(self.status_document())

    def status_document(self) -> dict[str, Any]:
        return {
            "strategy": self.config.strategy,
            "storage": self.store.name,
            "upstream_base_url": self.config.upstream_base_url,
            "keys": [
                {
                    "id": k.id,
                    "state": k.state,
                    "cooldown_until": k.cooldown_until,
                    "reason": k.reason,
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

    async def prometheus(self, _request: Request) -> Response:
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)


async def _internal_error(_request: Request, exc: Exception) -> Response:
    log.error("internal error in a built-in endpoint: %s", type(exc).__name__)
    status, headers, body = error_response(ProxyError("internal error"))
    return Response(
        body,
        status_code=status,
        headers={k.decode(): v.decode() for k, v in headers if k != b"content-length"},
    )
