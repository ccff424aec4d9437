"""The dashboard's sign-in (dashboard/session.py): tokens, the session cookie, the admin API's
CSRF-guarded acceptance. Pure: a config, a request scope and a time in, a verdict out."""

from __future__ import annotations

from starlette.requests import Request

from poolswitch.dashboard.session import (
    ADMIN,
    CALLER,
    OPEN_SESSION,
    SESSION_SECONDS,
    Session,
    admin_by_cookie,
    clear_cookie,
    cookie_value,
    from_cookie,
    match_token,
    session_of,
    set_cookie,
)

from conftest import make_config

ADMIN_TOKEN = "admin-token-0123456789abcdef"
WEB = "tok-web-0123456789abcdef"
NOW = 1_800_000_000.0
CONFIG = make_config(
    "http://127.0.0.1:9",
    dashboard=True,
    admin_token=ADMIN_TOKEN,
    callers=[{"id": "web", "token": WEB}],
)


def request(**headers: str) -> Request:
    raw = [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": raw})


def test_tokens_give_their_sessions() -> None:
    assert match_token(CONFIG, ADMIN_TOKEN) == Session(ADMIN, ADMIN)
    assert match_token(CONFIG, WEB) == Session(CALLER, "web")
    assert match_token(CONFIG, "") is None
    assert match_token(CONFIG, WEB + "x") is None


def test_the_cookie_is_not_the_token_and_is_stable() -> None:
    value = cookie_value(ADMIN_TOKEN, NOW)
    assert ADMIN_TOKEN not in value and value == cookie_value(ADMIN_TOKEN, NOW)
    assert from_cookie(CONFIG, value, NOW) == Session(ADMIN, ADMIN)
    assert from_cookie(CONFIG, cookie_value(WEB, NOW), NOW + 60) == Session(CALLER, "web")


def test_a_cookie_expires_and_cannot_be_forged() -> None:
    value = cookie_value(ADMIN_TOKEN, NOW)
    assert from_cookie(CONFIG, value, NOW + SESSION_SECONDS) is None
    version, expires, mac = value.split(".")
    later = int(expires) + 10
    assert from_cookie(CONFIG, f"{version}.{later}.{mac}", NOW) is None  # the expiry is signed
    assert from_cookie(CONFIG, cookie_value("another-token-0123456789", NOW), NOW) is None
    for broken in ("", "v1", "v1..", "v2." + value[3:], f"v1.{expires}.{mac[:-1]}", "v1.x." + mac):
        assert from_cookie(CONFIG, broken, NOW) is None
    rotated = make_config("http://127.0.0.1:9", dashboard=True, admin_token="new-" + ADMIN_TOKEN)
    assert from_cookie(rotated, value, NOW) is None  # a new token ends the old sessions


def test_a_request_is_known_by_its_bearer_token_or_its_cookie() -> None:
    cookie = f"poolswitch_session={cookie_value(WEB, NOW)}"
    assert session_of(request(cookie=cookie), CONFIG, NOW) == Session(CALLER, "web")
    assert session_of(request(authorization=f"Bearer {ADMIN_TOKEN}"), CONFIG, NOW) == Session(
        ADMIN, ADMIN
    )
    assert session_of(request(authorization="Bearer wrong", cookie=cookie), CONFIG, NOW) is None
    assert session_of(request(), CONFIG, NOW) is None
    open_config = make_config("http://127.0.0.1:9", dashboard=True)
    assert session_of(request(), open_config, NOW) == OPEN_SESSION


def test_the_admin_api_takes_an_admin_cookie_with_the_csrf_header_only() -> None:
    admin = f"poolswitch_session={cookie_value(ADMIN_TOKEN, NOW)}"
    caller = f"poolswitch_session={cookie_value(WEB, NOW)}"
    assert admin_by_cookie(request(cookie=admin, x_poolswitch_csrf="1"), CONFIG, NOW)
    assert not admin_by_cookie(request(cookie=admin), CONFIG, NOW)
    assert not admin_by_cookie(request(cookie=admin, x_poolswitch_csrf="0"), CONFIG, NOW)
    assert not admin_by_cookie(request(cookie=caller, x_poolswitch_csrf="1"), CONFIG, NOW)
    assert not admin_by_cookie(request(x_poolswitch_csrf="1"), CONFIG, NOW)
    off = make_config("http://127.0.0.1:9", admin_token=ADMIN_TOKEN)
    assert not admin_by_cookie(request(cookie=admin, x_poolswitch_csrf="1"), off, NOW)


def test_the_cookie_flags() -> None:
    started = set_cookie("v", secure=False)
    assert started == "poolswitch_session=v; Max-Age=43200; Path=/; HttpOnly; SameSite=Strict"
    assert set_cookie("v", secure=True).endswith("; Secure")
    assert clear_cookie(secure=False).startswith("poolswitch_session=; Max-Age=0;")
