"""What the sync and async embedded clients share: the options, the pool's lane, request
building, the `/status` and `/health` documents, and the log mask.

The twins in `_client.py` and `_async_client.py` only carry out the loop's effects (send, read,
close, sleep, verify) and close their connections.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, cast
from urllib.parse import urlsplit

import httpx

from poolswitch import __version__
from poolswitch.embedded._answers import pool_error
from poolswitch.embedded._lane import Call
from poolswitch.embedded._loop import Lane
from poolswitch.embedded._options import pool_config
from poolswitch.errors import BadRequest
from poolswitch.logmask import LogMask
from poolswitch.reports import health_document, pool_status, status_document, storage_health
from poolswitch.request import dropped_headers, escapes_base, forward_headers, without_query_param
from poolswitch_client import HealthDocument, StatusDocument
from poolswitch_client._base import _check_timeout
from poolswitch_client._types import HeaderTypes, QueryParamTypes, RequestContent, UseClientDefault

USER_AGENT = f"poolswitch-embedded-python/{__version__}"
HTTP_LOGGERS = ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2")
"""Where httpx and httpcore log (a request's URL, with a key in an `auth_query_param`): the
client masks their records while it is open."""


class BaseEmbeddedClient:
    """The pool, its request loop and everything that decides; see `PoolSwitchClient`."""

    def __init__(
        self,
        options: Mapping[str, Any],
        *,
        headers: HeaderTypes | None,
        clock: Callable[[], float] | None,
        rng: random.Random | None,
        sync: bool,
    ) -> None:
        config = pool_config(options)
        if rng is not None and not isinstance(rng, random.Random):
            raise TypeError("rng must be a random.Random")
        self._lane = Lane(
            config,
            clock=time.time if clock is None else clock,
            monotonic=time.monotonic if clock is None else clock,
            rng=rng or random.Random(),
            sync=sync,
        )
        self._headers = httpx.Headers(headers)
        self._drop = dropped_headers(config.auth_header_name)
        self._base_path = httpx.URL(self._lane.base_url).raw_path.decode("ascii").rstrip("/")
        params = [config.auth_query_param] if config.auth_query_param else []
        self._mask = LogMask([config.auth_header_name], params, self._lane.redactor)
        for name in HTTP_LOGGERS:
            logging.getLogger(name).addFilter(self._mask)

    @property
    def upstream_base_url(self) -> str:
        """The upstream's URL (credentials in it are not shown)."""
        parts = urlsplit(self._lane.base_url)
        host = parts.netloc.rpartition("@")[2]
        return parts._replace(netloc=host).geturl()

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The ids of the pool's keys (never their values)."""
        return self._lane.pool.key_ids

    @property
    def strategy(self) -> str:
        return self._lane.config.strategy

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(upstream_base_url={self.upstream_base_url!r}, "
            f"keys={list(self.key_ids)!r}, strategy={self.strategy!r})"
        )

    def _status(self) -> StatusDocument:
        """`GET /status` of a proxy serving this one pool (ids only)."""
        lane = self._lane
        with lane.lock:
            pools = [pool_status(lane.config, lane.pool, lane.classifier.profile)]
            doc = status_document(pools, lane.store.name, storage_health(lane.store), [])
        # no config file, no reload: the version names the kind of pool (docs/protocol.md)
        doc["config_version"], doc["reloaded_at"] = "embedded", None
        return cast(StatusDocument, doc)

    def _health(self) -> HealthDocument:
        """`GET /health` of a proxy serving this one pool."""
        lane = self._lane
        with lane.lock:
            storage = {"backend": lane.store.name, **storage_health(lane.store)}
            doc = health_document([(lane.config.name, lane.pool)], storage)
        return cast(HealthDocument, doc)

    def _unmask(self) -> None:
        for name in HTTP_LOGGERS:
            logging.getLogger(name).removeFilter(self._mask)

    def _call(
        self,
        http: httpx.Client | httpx.AsyncClient,
        method: str,
        path: str,
        *,
        json: Any,
        params: QueryParamTypes | None,
        headers: HeaderTypes | None,
        content: RequestContent | None,
        timeout: float | UseClientDefault | None,
    ) -> Call:
        """A request ready for the loop. `timeout`: a deadline for this call shorter than
        `request_timeout_seconds` (which always applies)."""
        if json is not None and content is not None:
            raise TypeError("pass json or content, not both")
        if "://" in path.partition("?")[0]:
            raise ValueError("path must be relative to the upstream base URL")
        if not path.startswith("/"):
            path = "/" + path
        # the HTTP client's headers, the client's, then the call's own (which win); built as a
        # plain Request: no cookie jar (the proxy keeps none between keys and callers)
        merged = httpx.Headers(http.headers)
        merged.update(self._headers)
        if headers:
            merged.update(headers)
        request = httpx.Request(
            method.upper(),
            self._lane.base_url + path,
            json=json,
            params=params,
            headers=merged,
            content=content,
        )
        # checked before httpx's URL has resolved any `..` (the proxy refuses them: 400)
        if escapes_base(path.partition("?")[0].encode("utf-8")):
            raise pool_error(
                BadRequest("the request path climbs above the upstream base path"), 0, request
            )
        target = request.url.raw_path.decode("ascii")
        if target.startswith(self._base_path):
            target = target[len(self._base_path) :] or "/"
        query_param = self._lane.query_param
        if query_param:
            target = without_query_param(target, query_param)
        raw = [(name.lower(), value) for name, value in request.headers.raw]
        try:
            forwarded, _ = forward_headers(raw, self._drop)
        except BadRequest as err:
            raise pool_error(err, 0, request) from None
        config = self._lane.config
        seconds = config.request_timeout_seconds
        if not isinstance(timeout, UseClientDefault):
            own = _check_timeout(timeout, "timeout")
            if own is not None:
                seconds = min(seconds, own)
        return Call(
            method=request.method,
            target=target,
            headers=[(n.encode("latin-1"), v.encode("utf-8")) for n, v in forwarded],
            body=request.read(),
            request=request,
            deadline=self._lane.monotonic() + seconds,
        )
