"""The dashboard (`dashboard: true`): one self-contained, server-rendered page over `/status`.

Routes (app.py sends `/dashboard` and `/dashboard/...` here only when the dashboard is on; else
they are proxied like any path):

- `GET /dashboard`: the page, numbers included; without a valid session (session.py) the
  sign-in form, `401`.
- `GET /dashboard/state`: JSON, the `/status` document plus `dashboard` (the server's clock, the
  session's role, each key's recent outcomes and the page's fragments); the page polls it.
- `POST /dashboard/login`: the form (`token=...`); a valid token sets the session cookie and
  redirects (`303`) to `/dashboard`, else the form again with `401`.
- `POST /dashboard/logout`: clears the cookie, `303` to `/dashboard`.

Every answer has a strict Content-Security-Policy (inline style and script only with the
response's nonce), `X-Frame-Options: DENY`, `Cache-Control: no-store` and
`Referrer-Policy: same-origin`. Everything is read from the app at request time, so a reloaded
config shows at the next refresh.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from poolswitch.config import Config
from poolswitch.dashboard import page
from poolswitch.dashboard.session import (
    Session,
    clear_cookie,
    cookie_value,
    match_token,
    needs_login,
    session_of,
    set_cookie,
)
from poolswitch.errors import BadRequest, NotFound, PayloadTooLarge, Unauthorized

if TYPE_CHECKING:
    from poolswitch.proxy import Proxy

log = logging.getLogger("poolswitch.dashboard")

PREFIX = "/dashboard"
ROUTES = "GET /dashboard, GET /dashboard/state, POST /dashboard/login, POST /dashboard/logout"
ANY_METHOD = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
LOGIN_BODY_LIMIT = 4096
"""The login form is one field: a longer body is refused unread."""


class Source(Protocol):
    """What the dashboard reads from the app, at every request."""

    @property
    def config(self) -> Config: ...

    @property
    def lanes(self) -> Mapping[str, Proxy]: ...

    def status_document(self) -> dict[str, Any]: ...


def is_dashboard_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def same_origin(headers: Sequence[tuple[bytes, bytes]], scheme: str) -> bool:
    """Does the request's `Origin` name the proxy itself (`<scheme>://<Host>`)? The page's own
    form posts and `fetch` calls carry one; the Host check has passed before this is asked."""
    origin = host = None
    for name, value in headers:
        if name == b"origin":
            origin = value
        elif name == b"host":
            host = value
    if origin is None or host is None:
        return False
    return origin.strip().lower() == f"{scheme}://".encode() + host.strip().lower()


def security_headers(nonce: str) -> dict[str, str]:
    return {
        "content-security-policy": (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
            "img-src data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
            "base-uri 'none'"
        ),
        "x-frame-options": "DENY",
        "x-content-type-options": "nosniff",
        "cache-control": "no-store",
        # not no-referrer: a browser then sends `Origin: null` with the page's form posts, and
        # the Origin check (origins.py) refuses them; same-origin still sends nothing elsewhere
        "referrer-policy": "same-origin",
    }


class Dashboard:
    """The dashboard's routes over the app `source`; `clock`: Unix seconds."""

    def __init__(self, source: Source, clock: Callable[[], float]) -> None:
        self.source = source
        self.clock = clock

    def routes(self) -> list[BaseRoute]:
        return [
            Route(PREFIX, self.page, methods=["GET"]),
            Route(PREFIX + "/state", self.state, methods=["GET"]),
            Route(PREFIX + "/login", self.login, methods=["POST"]),
            Route(PREFIX + "/logout", self.logout, methods=["POST"]),
            # anything else under /dashboard: a JSON error, not Starlette's plain-text one
            Route(PREFIX + "{rest:path}", _unknown, methods=list(ANY_METHOD)),
        ]

    def recent(self) -> dict[str, dict[str, list[str]]]:
        """Pool name -> key id -> its last attempt outcomes (proxy.py keeps them)."""
        return {
            name: {
                key.id: list(ring) for key, ring in zip(lane.pool.keys, lane.recent, strict=False)
            }
            for name, lane in self.source.lanes.items()
        }

    def _session(self, request: Request) -> Session | None:
        return session_of(request, self.source.config, self.clock())

    async def page(self, request: Request) -> Response:
        nonce = secrets.token_urlsafe(16)
        session = self._session(request)
        if session is None:
            return _html(page.login_page(nonce), nonce, 401)
        doc = self.source.status_document()
        text = page.dashboard_page(doc, self.recent(), self.clock(), session, nonce)
        return _html(text, nonce)

    async def state(self, request: Request) -> Response:
        session = self._session(request)
        if session is None:
            raise Unauthorized("the dashboard needs a session, the admin token or a caller token")
        doc = self.source.status_document()
        recent, now = self.recent(), self.clock()
        doc["dashboard"] = {
            "now": now,
            "role": session.role,
            "who": session.who,
            "layout": page.layout(doc),
            "recent": recent,
            "html": page.fragments(doc, recent, now, session),
        }
        return JSONResponse(doc, headers=security_headers(secrets.token_urlsafe(16)))

    async def login(self, request: Request) -> Response:
        config = self.source.config
        nonce = secrets.token_urlsafe(16)
        if not needs_login(config):
            return _see_dashboard()
        token = await _form_token(request)
        session = match_token(config, token)
        if session is None:
            log.warning("dashboard sign-in refused: not a configured token")
            return _html(page.login_page(nonce, "That token is not valid here."), nonce, 401)
        log.info("dashboard sign-in: %s %s", session.role, session.who)
        response = _see_dashboard()
        secure = request.url.scheme == "https"
        response.headers.append(
            "set-cookie", set_cookie(cookie_value(token, self.clock()), secure=secure)
        )
        return response

    async def logout(self, request: Request) -> Response:
        response = _see_dashboard()
        response.headers.append("set-cookie", clear_cookie(secure=request.url.scheme == "https"))
        return response


async def _unknown(request: Request) -> Response:
    raise NotFound(f"no dashboard route {request.method} {request.url.path} ({ROUTES})")


async def _form_token(request: Request) -> str:
    """The `token` field of the login form (`application/x-www-form-urlencoded`), bounded."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise BadRequest("the login form is application/x-www-form-urlencoded")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > LOGIN_BODY_LIMIT):
        raise PayloadTooLarge(f"the login form is at most {LOGIN_BODY_LIMIT} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > LOGIN_BODY_LIMIT:
            raise PayloadTooLarge(f"the login form is at most {LOGIN_BODY_LIMIT} bytes")
    try:
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=8)
    except ValueError:
        raise BadRequest("the login form has one field, token") from None
    return fields.get("token", [""])[0].strip()


def _see_dashboard() -> Response:
    nonce = secrets.token_urlsafe(16)
    return Response(status_code=303, headers={"location": PREFIX, **security_headers(nonce)})


def _html(text: str, nonce: str, status: int = 200) -> Response:
    return HTMLResponse(text, status_code=status, headers=security_headers(nonce))
