"""The admin API: the operator's actions on keys (docs/protocol.md, "Admin API").

    GET  /poolswitch/admin/keys                                   every key of every pool
    POST /poolswitch/admin/[pools/{pool}/]keys/{key_id}/{action}  one key; JSON body optional

    enable    back in service: no cooldown, disable or drain, no strikes
    disable   out of service until enabled; `{"seconds": N}` (or `?seconds=N`): for N seconds,
              then back by itself (stored like a cooldown, so it survives a restart)
    reset     state back to fresh (as enable, and no error streak); the counters are history
              and stay, unless `{"counters": true}`
    test      one GET with the key on a path that only needs a valid key (the pool's
              `verify_path`, or `{"path": "/..."}`); the key's state changes only with
              `{"apply": true}` (then the answer counts like an attempt's: an invalid key is
              disabled; a success re-enables nothing)
    drain     no new requests on the key; those using it finish (`draining`, then `drained`);
              `enable` (or any other action) ends it. In this process's memory only

    POST /poolswitch/admin/reload                                 re-read the config file

`reload` answers 200 `{"result": "ok", "config_version"}` or 422 `config_refused` naming every
problem (the old config keeps serving). Under the workers' supervisor the file is checked here,
then the supervisor is sent SIGHUP, so that every worker reloads it.

Every call needs the admin token (`admin_caller`) and writes one line on `poolswitch.access`
with the caller's id, never a token or a key value. The current pools are read from the host
at each call, so a reload's swap is seen at once.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from poolswitch.classifier import NETWORK_ERROR, TIMEOUT
from poolswitch.config import Config
from poolswitch.errors import (
    BadRequest,
    ConfigRefused,
    NotFound,
    ProxyError,
    TransportError,
    Unauthorized,
)
from poolswitch.pool import Pool
from poolswitch.proxy import Proxy
from poolswitch.redact import Redactor
from poolswitch.reload import ReloadResult
from poolswitch.reports import key_status
from poolswitch.verify import VERIFY_TIMEOUT, reading
from poolswitch.workers import supervisor_pid

log = logging.getLogger("poolswitch.access")

ADMIN_PREFIX = "/poolswitch/admin"
ADMIN_KEYS = ADMIN_PREFIX + "/keys"
ADMIN_RELOAD = ADMIN_PREFIX + "/reload"
ACTIONS = ("enable", "disable", "reset", "test", "drain")
MAX_BODY = 16 * 1024
MAX_SECONDS = 366 * 24 * 3600.0
"""The longest timed disable (a year); for longer, disable for good."""
TEST_READ_TIMEOUT = VERIFY_TIMEOUT
_FIELDS = {"disable": {"seconds"}, "reset": {"counters"}, "test": {"apply", "path"}}


class AdminHost(Protocol):
    """What the admin API reads, at each call, from the app that mounts it."""

    @property
    def config(self) -> Config: ...

    @property
    def pools(self) -> Mapping[str, Pool]: ...

    @property
    def lanes(self) -> Mapping[str, Proxy]: ...

    @property
    def redactor(self) -> Redactor: ...

    async def reload_file(self) -> ReloadResult: ...

    def checked_file(self) -> ReloadResult: ...


class AdminAPI:
    """`session`: whether a request carries another admin credential the app accepts (the
    dashboard's admin session cookie with its CSRF header); checked after the bearer token."""

    def __init__(
        self, host: AdminHost, session: Callable[[Request], bool] = lambda _request: False
    ) -> None:
        self.host = host
        self.session = session

    def routes(self) -> list[Route]:
        return [
            Route(ADMIN_KEYS, self.list_keys, methods=["GET"]),
            Route(ADMIN_KEYS + "/{key_id}/{action:str}", self.act, methods=["POST"]),
            Route(
                ADMIN_PREFIX + "/pools/{pool}/keys/{key_id}/{action:str}",
                self.act,
                methods=["POST"],
            ),
            Route(ADMIN_RELOAD, self.reload, methods=["POST"]),
        ]

    def admin_caller(self, request: Request) -> str:
        """The id of who may use the admin API ("admin": the admin token, compared in
        constant time), or Unauthorized."""
        token = self.host.config.admin_token or ""
        given = request.headers.get("authorization", "")
        if not token or not (
            hmac.compare_digest(given.encode(), f"Bearer {token}".encode()) or self.session(request)
        ):
            raise Unauthorized("the admin API needs Authorization: Bearer <admin_token>")
        return "admin"

    async def list_keys(self, request: Request) -> Response:
        return await self._logged(request, "list", self._list)

    async def act(self, request: Request) -> Response:
        return await self._logged(request, request.path_params["action"], self._act)

    async def reload(self, request: Request) -> Response:
        return await self._logged(request, "reload", self._reload)

    async def _reload(
        self, _request: Request, _action: str, facts: dict[str, str]
    ) -> dict[str, Any]:
        facts["action"] = "reload"
        supervisor = supervisor_pid()
        if supervisor is None:
            result = await self.host.reload_file()
        else:
            result = self.host.checked_file()
            if result.ok:
                logging.getLogger("poolswitch.reload").info(
                    "reload asked: signalling the supervisor, every worker reloads"
                )
                os.kill(supervisor, signal.SIGHUP)
        if result.version:
            facts["config_version"] = result.version
        if not result.ok:
            raise ConfigRefused("the config was not reloaded: " + "; ".join(result.problems))
        return result.document()

    async def _logged(
        self,
        request: Request,
        action: str,
        run: Callable[[Request, str, dict[str, str]], Awaitable[dict[str, Any]]],
    ) -> Response:
        """Run one admin call and write its access-log line (the refused ones too)."""
        caller, status, facts = "-", 500, dict[str, str]()
        try:
            caller = self.admin_caller(request)
            doc = await run(request, action, facts)
            status = 200
            return JSONResponse(doc)
        except ProxyError as err:
            status = err.status
            err.message = self.host.redactor.redact_text(err.message)  # a value sent as an id
            raise
        finally:
            if log.isEnabledFor(logging.INFO):
                extra = "".join(f" {k}={v}" for k, v in facts.items())
                line = f"{request.method} {request.url.path} {status} caller={caller}"
                log.info("%s", _printable(self.host.redactor.redact_text(line + extra)))

    async def _list(self, _request: Request, _action: str, facts: dict[str, str]) -> dict[str, Any]:
        facts["action"] = "list"
        keys = [
            {"pool": name, **key_status(k)}
            for name, pool in self.host.pools.items()
            for k in pool.snapshot()
        ]
        return {"keys": keys}

    async def _act(self, request: Request, action: str, facts: dict[str, str]) -> dict[str, Any]:
        key_id = request.path_params["key_id"]
        facts.update(action=action, key=key_id)
        if action not in ACTIONS:
            raise NotFound(f"unknown admin action {action!r} ({', '.join(ACTIONS)})")
        name, lane = self._lane(request.path_params.get("pool"), key_id, action)
        pool = lane.pool
        facts["pool"] = name
        i = pool.index.get(key_id)
        if i is None:
            raise NotFound(f"no key with id {key_id!r} in pool {name!r}")
        body = await _body(request, _FIELDS.get(action, set()))
        extra: dict[str, Any] = {}
        if action == "enable":
            pool.enable(key_id)
        elif action == "disable":
            seconds = _seconds(body)
            if seconds is not None:
                facts["seconds"] = f"{seconds:g}"
            pool.disable(key_id, seconds)
        elif action == "reset":
            counters = _flag(body, "counters")
            facts["counters"] = str(counters).lower()
            pool.reset(key_id, counters=counters)
        elif action == "drain":
            pool.drain(key_id)
        else:
            extra["test"] = await self._test(lane, i, body)
            facts["outcome"] = extra["test"]["outcome"]
        if pool.transitions_pending:  # the operator's change is durable before the answer
            await pool.commit_transitions()
        return {"pool": name, **key_status(pool.snapshot()[i]), **extra}

    async def _test(self, lane: Proxy, i: int, body: dict[str, Any]) -> dict[str, Any]:
        """One GET with key `i` on a path that needs only a valid key: what it said."""
        path = body.get("path", lane.verifier.path)
        if path is None:
            raise BadRequest(
                f"pool {lane.pool.name!r} has no verify_path to test a key on: set one, or "
                'send {"path": "/..."}'
            )
        if not isinstance(path, str) or not path.startswith("/") or path.startswith("//"):
            raise BadRequest('"path" must be a path starting with "/"')
        apply = _flag(body, "apply")
        timeout = min(TEST_READ_TIMEOUT, lane.config.request_timeout_seconds)
        started = time.perf_counter()
        status: int | None = None
        try:
            status, verdict = await lane.probe(i, path, timeout)
            detail = f"GET {path} answered {status}" + (
                f" ({verdict.source})" if verdict.source else ""
            )
        except TimeoutError:
            verdict, detail = TIMEOUT, f"GET {path}: no answer within {timeout:g}s"
        except TransportError as exc:
            verdict, detail = NETWORK_ERROR, f"GET {path}: {exc}"
        latency = (time.perf_counter() - started) * 1000.0
        pool = lane.pool
        if apply:
            if verdict.confirm:
                pool.confirmed_invalid(i, "confirmed: an operator's test")
            else:
                pool.record(i, verdict)
        return {
            "status": status,
            "outcome": verdict.outcome.value,
            "key": reading(verdict.outcome),
            "applied": apply,
            "latency_ms": round(latency, 3),
            "detail": lane.redactor.redact_text(detail),
        }

    def _lane(self, name: str | None, key_id: str, action: str) -> tuple[str, Proxy]:
        """The pool an admin call is for: the one named, else the only one that has `key_id`."""
        lanes = self.host.lanes
        if name is not None:
            lane = lanes.get(name)
            if lane is None:
                raise NotFound(f"no pool named {name!r}")
            return name, lane
        having = [n for n, lane in lanes.items() if key_id in lane.pool.index]
        if not having:
            raise NotFound(f"no key with id {key_id!r}")
        if len(having) > 1:
            raise NotFound(
                f"key id {key_id!r} is in several pools ({', '.join(having)}): use "
                f"{ADMIN_PREFIX}/pools/<pool>/keys/{key_id}/{action}"
            )
        return having[0], lanes[having[0]]


async def _body(request: Request, allowed: set[str]) -> dict[str, Any]:
    """The call's options: its JSON object body (optional, bounded), then its query string
    (`?seconds=600`, `?counters=true`). Anything else is a BadRequest."""
    data = b""
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY:
            raise BadRequest(f"the admin API takes a JSON body of at most {MAX_BODY} bytes")
    body: Any = {}
    if data.strip():
        try:
            body = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("the body is not JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
    for name, value in request.query_params.items():
        body.setdefault(name, value)
    unknown = sorted(set(body) - allowed)
    if unknown:
        takes = ", ".join(sorted(allowed)) or "none"
        raise BadRequest(f"unknown option(s) {', '.join(unknown)} (this action takes: {takes})")
    return dict(body)


def _seconds(body: Mapping[str, Any]) -> float | None:
    value = body.get("seconds")
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            value = None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest('"seconds" must be a number of seconds')
    if not math.isfinite(value) or not 0 < value <= MAX_SECONDS:
        raise BadRequest(f'"seconds" must be more than 0 and at most {MAX_SECONDS:g}')
    return float(value)


def _flag(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    if not isinstance(value, bool):
        raise BadRequest(f'"{name}" must be true or false')
    return value


def _printable(text: str) -> str:
    """A log line with no control characters (a caller's path can hold any)."""
    return text if text.isprintable() else "".join(c if c.isprintable() else "?" for c in text)
