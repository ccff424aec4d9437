"""The dashboard's sign-in: which token a browser holds, kept in a cookie that is not the token.

A browser cannot send `Authorization` on a navigation, so the page's login form posts the admin
token or a caller token once; the answer sets `poolswitch_session`, whose value is
`v1.<expires>.<mac>`: `mac` is HMAC-SHA256 keyed with the token over a fixed context string and
the expiry. Any replica with the same config recognises it (nothing is stored), it expires after
`SESSION_SECONDS`, and changing the token ends every session made with it. The token itself is
never in the cookie, a page or a log.

Who is who: the admin token gives an admin session (the page's buttons), a caller token a
read-only one. With neither `admin_token` nor `callers` configured the page is open and read-only.
`Authorization: Bearer <token>` works on every dashboard route too (curl).

The admin API takes an admin session cookie only with `x-poolswitch-csrf: 1`: a cross-site form
cannot send a custom header (and the cookie is `SameSite=Strict`), the page's own `fetch` does.

Every comparison is constant-time and walks every token (no early exit). Pure: values in,
a verdict out.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from starlette.requests import Request

from poolswitch.config import Config

SESSION_COOKIE = "poolswitch_session"
CSRF_HEADER = "x-poolswitch-csrf"
SESSION_SECONDS = 12 * 3600
CONTEXT = b"poolswitch dashboard session v1:"
VERSION = "v1"

ADMIN = "admin"
CALLER = "caller"
OPEN = "open"


@dataclass(frozen=True, slots=True)
class Session:
    """Who is looking: `role` admin, caller or open; `who` the admin, a caller id, or "-"."""

    role: str
    who: str

    @property
    def admin(self) -> bool:
        return self.role == ADMIN


OPEN_SESSION = Session(OPEN, "-")


def needs_login(config: Config) -> bool:
    """The page is behind a token when the admin token or callers are configured."""
    return config.admin_token is not None or bool(config.callers)


def _holders(config: Config) -> list[tuple[Session, str]]:
    """Every token that may sign in, with the session it gives."""
    holders = [(Session(CALLER, c.id), c.token) for c in config.callers]
    if config.admin_token is not None:
        holders.append((Session(ADMIN, ADMIN), config.admin_token))
    return holders


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


def match_token(config: Config, candidate: str) -> Session | None:
    """The session `candidate` gives, if it is the admin token or a caller token."""
    if not candidate:
        return None
    digest = _digest(candidate)
    found: Session | None = None
    for session, token in _holders(config):  # every token, no early exit
        if hmac.compare_digest(_digest(token), digest):
            found = session
    return found


def _mac(token: str, expires: int) -> str:
    message = CONTEXT + str(expires).encode("ascii")
    return hmac.new(token.encode("utf-8"), message, hashlib.sha256).hexdigest()


def cookie_value(token: str, now: float) -> str:
    """The cookie for a session signed in with `token` at `now` (Unix seconds)."""
    expires = int(now) + SESSION_SECONDS
    return f"{VERSION}.{expires}.{_mac(token, expires)}"


def from_cookie(config: Config, value: str, now: float) -> Session | None:
    """The session a `poolswitch_session` cookie stands for, if it is valid and not expired."""
    version, _, rest = value.partition(".")
    stamp, _, mac = rest.partition(".")
    if version != VERSION or not stamp.isdigit() or len(stamp) > 12 or len(mac) != 64:
        return None
    expires = int(stamp)
    if expires <= now or expires > now + SESSION_SECONDS + 60:
        return None
    given = mac.encode("ascii", "replace")
    found: Session | None = None
    for session, token in _holders(config):  # every token, no early exit
        if hmac.compare_digest(_mac(token, expires).encode("ascii"), given):
            found = session
    return found


def bearer(request: Request) -> str:
    """The token of `Authorization: Bearer <token>`, or ""."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def session_of(request: Request, config: Config, now: float) -> Session | None:
    """Who the request is from: a bearer token, else the session cookie; None if neither is
    valid. Always the open session when nothing needs a login."""
    if not needs_login(config):
        return OPEN_SESSION
    token = bearer(request)
    if token:
        return match_token(config, token)
    value = request.cookies.get(SESSION_COOKIE)
    return None if value is None else from_cookie(config, value, now)


def admin_by_cookie(request: Request, config: Config, now: float) -> bool:
    """May this admin API request pass on the dashboard's admin session? Only when the dashboard
    is on, the CSRF header is `1` and the cookie is a valid admin session."""
    if not config.dashboard or config.admin_token is None:
        return False
    if request.headers.get(CSRF_HEADER) != "1":
        return False
    value = request.cookies.get(SESSION_COOKIE)
    if value is None:
        return False
    session = from_cookie(config, value, now)
    return session is not None and session.admin


def set_cookie(value: str, *, secure: bool) -> str:
    """The `Set-Cookie` header value that starts a session."""
    return _cookie(value, SESSION_SECONDS, secure)


def clear_cookie(*, secure: bool) -> str:
    """The `Set-Cookie` header value that ends it."""
    return _cookie("", 0, secure)


def _cookie(value: str, max_age: int, secure: bool) -> str:
    flags = f"; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Strict"
    return f"{SESSION_COOKIE}={value}{flags}{'; Secure' if secure else ''}"
