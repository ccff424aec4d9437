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

`POST /poolswitch/admin/reload` (admin.py), SIGHUP and `watch_config` re-read the config file and
swap a new generation in (reload.py); everything here reads the current one.

The lifespan owns the long-lived resources: the store, the pool's background writer and the
upstream client session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
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
from poolswitch.errors import ConfigError, Forbidden, ProxyError, Unauthorized
from poolswitch.forwarder import Forwarder
from poolswitch.gateway import Gateway
from poolswitch.metrics import CONTENT_TYPE, Metrics, PoolView, StorageView
from poolswitch.pool import Clock, Pool
from poolswitch.proxy import Proxy
from poolswitch.reload import (
    Generation,
    ReloadResult,
    load_versioned,
    needs_restart,
    refused,
    swap,
    version_of_config,
    version_of_file,
)
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
WATCH_SECONDS = 1.0
"""How often `watch_config` looks at the config file."""


class PoolSwitchApp:
    """The whole server as one ASGI callable."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock = time.time,
        rng: random.Random | None = None,
        registry: CollectorRegistry | None = None,
        max_connections: int | None = None,
        config_path: str | None = None,
        config_version: str | None = None,
    ) -> None:
        # a pool's upstream connections: one per request in flight at most (not a hidden cap
        # below max_in_flight_requests, which would queue streams past it with no deadline)
        self.upstream_connections = max_connections or config.max_in_flight_requests
        self.clock, self.rng = clock, rng
        self.config_path = config_path
        self.store = create_store(config.storage, clock)
        self.metrics = Metrics(
            registry or CollectorRegistry(), self._pool_views, clock, self._storage_view
        )
        self.budget = BodyBudget(config.max_buffered_body_bytes)
        version = config_version
        if version is None:
            version = version_of_file(config_path) if config_path else version_of_config(config)
        self.generation = self._build(config, version, {}, attach=True)
        self._point(self.generation)
        self.gateway = Gateway(config, self.lanes, self.metrics, clock=clock)
        self.reloaded_at: float | None = None
        self.replica = f"{socket.gethostname()}:{os.getpid()}"
        self.store.announce(self.replica, version)
        self.reload_on_sighup = False
        """Reload `config_path` on SIGHUP (`poolswitch start` sets it; the serving loop's
        signal handler is installed by the lifespan)."""
        self.on_reload: list[Callable[[PoolSwitchApp], None]] = []
        """Called after each successful reload's swap (cli: the log mask learns new keys)."""
        self._reloading = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
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

    def _build(
        self, config: Config, version: str, clients: Mapping[str, Forwarder], *, attach: bool
    ) -> Generation:
        return Generation.build(
            config,
            version,
            self.store,
            self.metrics,
            budget=self.budget,
            clock=self.clock,
            rng=self.rng,
            max_connections=self.upstream_connections,
            on_remote=self._propagated,
            forwarders=clients,
            attach=attach,
        )

    def _point(self, gen: Generation) -> None:
        """Point what the built-in endpoints read at generation `gen` (synchronous)."""
        config = gen.config
        self.generation = gen
        self.config = config
        self.pools, self.forwarders, self.lanes = gen.pools, gen.forwarders, gen.lanes
        self.redactor = gen.redactor
        self.budget.limit = config.max_buffered_body_bytes
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

    def _swap(self, gen: Generation) -> None:
        """A reload's swap: every reader at once (no await)."""
        self._point(gen)
        self.gateway.install(gen.config, gen.lanes)
        self.reloaded_at = self.clock()
        self.store.announce(self.replica, gen.version)
        for hook in self.on_reload:
            hook(self)

    def _keep(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reload(self, config: Config, version: str | None = None) -> ReloadResult:
        """Serve `config` from now on, carrying key state over (reload.py); refused whole, and
        nothing changes, when it cannot be applied live."""
        async with self._reloading:
            return await swap(
                self.generation,
                config,
                version or version_of_config(config),
                store=self.store,
                metrics=self.metrics,
                build=lambda c, v, f: self._build(c, v, f, attach=False),
                install=self._swap,
                retire=self._keep,
                max_connections=self.upstream_connections,
            )

    async def reload_file(self) -> ReloadResult:
        """Read `config_path` again and reload it (SIGHUP, the admin API)."""
        read = self._read_file()
        if isinstance(read, ReloadResult):
            return read
        return await self.reload(*read)

    def _read_file(self) -> tuple[Config, str] | ReloadResult:
        """`config_path` read and validated, with its version; or the refusal."""
        if self.config_path is None:
            return refused("", ["this proxy was not started from a config file"], self.metrics)
        try:
            return load_versioned(self.config_path)
        except ConfigError as err:
            return refused("", list(err.problems), self.metrics)

    async def _watch(self, path: str) -> None:
        """With `watch_config`: reload when the file's time or size changes (checked every
        WATCH_SECONDS, off the event loop); a refused file is not retried until it changes."""
        seen = await asyncio.to_thread(_stamp, path)
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            if not self.config.watch_config:
                continue
            stamp = await asyncio.to_thread(_stamp, path)
            if stamp != seen:
                seen = stamp
                log.info("%s changed: reloading", path)
                await self.reload_file()

    def _hangup(self) -> None:
        log.info("SIGHUP: reloading %s", self.config_path)
        self._keep(self.reload_file())

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
        hangup = self.reload_on_sighup and self.config_path is not None
        ready = False
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
            if hangup:
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._hangup)
                assert self.config_path is not None
                self._keep(self._watch(self.config_path))
            ready = True  # from here on, what is closed is the current generation's
            yield
        finally:
            if hangup and ready:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            for task in list(self._tasks):  # reloads, retiring upstream clients
                task.cancel()
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=5)
            for forwarder in self.forwarders.values() if ready else started:
                await forwarder.close()
            for pool in self.pools.values() if ready else opened:
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
        doc = status_document(
            pools, self.store.name, self.storage_health(), self.gateway.callers_status()
        )
        doc["config_version"] = self.generation.version
        doc["reloaded_at"] = self.reloaded_at
        replicas = self.store.replicas()
        if replicas is not None:
            doc["replicas"] = replicas
        return doc

    def checked_file(self) -> ReloadResult:
        """`config_path` read and checked against the running config, not applied."""
        read = self._read_file()
        if isinstance(read, ReloadResult):
            return read
        config, version = read
        problems = needs_restart(self.config, config)
        if problems:
            return refused(version, problems, self.metrics)
        return ReloadResult(True, version)

    async def prometheus(self, request: Request) -> Response:
        readers = self.metrics_readers
        if readers is not None and readers.identify(request.scope["headers"]) is None:
            raise Unauthorized("/metrics needs Authorization: Bearer <metrics_token>")
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)


def _stamp(path: str) -> tuple[int, int] | None:
    """A file's modification time and size (None when it cannot be read)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


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
