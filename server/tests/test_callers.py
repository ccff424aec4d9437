"""Caller tokens: identify() over every credential position, and the `callers` settings."""

from __future__ import annotations

from typing import Any

import pytest

from poolswitch.callers import MAX_CANDIDATES, Callers, positions
from poolswitch.config import CallerConfig, parse_config
from poolswitch.errors import ConfigError
from poolswitch.request import dropped_headers

SEARCH = "tok-search-0123456789abcdef"
BILLING = "tok-billing-0123456789abcdef"
ENTRIES = [("search", SEARCH), ("billing", BILLING), ("ops", "tok-ops-0123456789abcdef")]

OPENAI = ("Authorization", "Bearer", None)
ANTHROPIC = ("x-api-key", None, None)
GEMINI_HEADER = ("x-goog-api-key", None, None)
GEMINI_QUERY = ("Authorization", "Bearer", "key")
CUSTOM_SCHEME = ("api-auth", "Token", None)


def callers(pool: tuple[str, str | None, str | None] = OPENAI) -> Callers:
    name, scheme, query = pool
    return Callers(ENTRIES, positions(name, scheme), query)


def h(*pairs: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    return [(n.lower().encode(), v.encode()) for n, v in pairs]


@pytest.mark.parametrize(
    ("pool", "headers", "query", "expected"),
    [
        # the OpenAI SDK: Authorization: Bearer
        (OPENAI, h(("Authorization", f"Bearer {SEARCH}")), b"", "search"),
        (OPENAI, h(("Authorization", f"bearer {BILLING}")), b"", "billing"),
        (OPENAI, h(("Authorization", f"Bearer  {SEARCH} ")), b"", "search"),
        (OPENAI, h(("Authorization", SEARCH)), b"", None),  # no scheme: not a bearer token
        # the PoolSwitch SDKs: x-poolswitch-token, whatever the pool uses
        (OPENAI, h(("x-poolswitch-token", SEARCH)), b"", "search"),
        (ANTHROPIC, h(("x-poolswitch-token", BILLING)), b"", "billing"),
        # Anthropic's SDK: x-api-key, raw
        (ANTHROPIC, h(("x-api-key", SEARCH)), b"", "search"),
        (OPENAI, h(("x-api-key", SEARCH)), b"", "search"),
        # Gemini's: x-goog-api-key, or ?key= when the pool puts its key in the query
        (GEMINI_HEADER, h(("x-goog-api-key", BILLING)), b"", "billing"),
        (GEMINI_QUERY, h(("x-goog-api-key", BILLING)), b"", "billing"),
        (GEMINI_QUERY, [], f"alt=sse&key={SEARCH}".encode(), "search"),
        (GEMINI_QUERY, [], b"key=tok-search-0123456789%61bcdef", "search"),  # percent-encoded
        (OPENAI, [], f"key={SEARCH}".encode(), None),  # no auth_query_param: not a position
        (GEMINI_QUERY, [], f"xkey={SEARCH}".encode(), None),
        # a custom scheme in the pool's header; Bearer is always accepted in Authorization
        (CUSTOM_SCHEME, h(("api-auth", f"Token {SEARCH}")), b"", "search"),
        (CUSTOM_SCHEME, h(("api-auth", f"Bearer {SEARCH}")), b"", None),
        (CUSTOM_SCHEME, h(("Authorization", f"Bearer {SEARCH}")), b"", "search"),
        # missing, empty, wrong, prefix or extension of a token
        (OPENAI, [], b"", None),
        (OPENAI, h(("Authorization", "Bearer ")), b"", None),
        (OPENAI, h(("Authorization", "Bearer sk-wrong-0123456789abcdef")), b"", None),
        (OPENAI, h(("Authorization", f"Bearer {SEARCH[:-1]}")), b"", None),
        (OPENAI, h(("Authorization", f"Bearer {SEARCH}x")), b"", None),
        (OPENAI, h(("x-other", SEARCH)), b"", None),
        # any position that matches identifies the caller (an SDK key next to the token)
        (
            OPENAI,
            h(("Authorization", "Bearer unused"), ("x-poolswitch-token", SEARCH)),
            b"",
            "search",
        ),
    ],
)
def test_identify(
    pool: tuple[str, str | None, str | None],
    headers: list[tuple[bytes, bytes]],
    query: bytes,
    expected: str | None,
) -> None:
    assert callers(pool).identify(headers, query) == expected


def test_identify_tries_a_bounded_number_of_candidates() -> None:
    wrong = [(b"x-api-key", b"wrong-token-0123456789")] * MAX_CANDIDATES
    assert callers().identify([*wrong, (b"x-poolswitch-token", SEARCH.encode())]) is None
    assert callers().identify([*wrong[:-1], (b"x-poolswitch-token", SEARCH.encode())]) == "search"


def test_identify_compares_with_every_token(monkeypatch: pytest.MonkeyPatch) -> None:
    import hmac

    seen: list[bytes] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        seen.append(a)
        return bool(real(a, b))

    monkeypatch.setattr(hmac, "compare_digest", counting)
    assert callers().identify(h(("x-poolswitch-token", SEARCH))) == "search"  # the first token
    assert len(seen) == len(ENTRIES)
    assert len({len(a) for a in seen}) == 1  # digests: one length, whatever the token's


def test_every_position_read_is_dropped_before_forwarding() -> None:
    for name, scheme, _ in (OPENAI, ANTHROPIC, GEMINI_HEADER, CUSTOM_SCHEME):
        assert set(positions(name, scheme)) <= dropped_headers(name)


def test_metrics_positions_are_bearer_only() -> None:
    only = Callers([("metrics", SEARCH)], positions("x-api-key", None, extra=False))
    assert only.identify(h(("Authorization", f"Bearer {SEARCH}"))) == "metrics"
    assert only.identify(h(("x-api-key", SEARCH))) is None
    assert only.identify(h(("x-poolswitch-token", SEARCH))) is None


def test_repr_shows_ids_only() -> None:
    assert SEARCH not in repr(callers())
    assert "search" in repr(callers())
    assert SEARCH not in repr(CallerConfig("search", SEARCH))


# ---- the `callers` settings ----

BASE: dict[str, Any] = {
    "upstream_base_url": "https://api.example.com",
    "keys": [{"id": "a", "value": "sk-a"}],
}


def problems(env: dict[str, str] | None = None, **changes: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config({**BASE, **changes}, env=env or {})
    return list(info.value.problems)


def test_callers_from_environment() -> None:
    doc = {**BASE, "callers": [{"id": "search", "token": "${SEARCH_TOKEN}"}]}
    cfg = parse_config(doc, env={"SEARCH_TOKEN": SEARCH})
    assert cfg.callers == (CallerConfig("search", SEARCH),)
    assert SEARCH not in repr(cfg)
    assert parse_config(BASE, env={}).callers == ()


@pytest.mark.parametrize(
    ("callers", "expected"),
    [
        ([], ["callers: must be a non-empty list of {id, token} entries"]),
        ("search", ["callers: must be a non-empty list of {id, token} entries"]),
        (["search"], ["callers[0]: must be a mapping with id and token"]),
        ([{"token": SEARCH}], ["callers[0].id: missing"]),
        ([{"id": "search"}], ["callers[0].token: missing"]),
        (
            [{"id": "-", "token": SEARCH}],
            ["callers[0].id: must be 1-64 characters of letters, digits, . _ : -"],
        ),
        (
            [{"id": "search", "token": "short-token"}],
            ["callers[0].token: must be a string of at least 16 characters"],
        ),
        (
            [{"id": "search", "token": "has a space in it ok"}],
            ["callers[0].token: must be printable ASCII without whitespace or control characters"],
        ),
        (
            [{"id": "search", "token": SEARCH, "role": "x"}],
            ["callers[0].role: unknown field"],
        ),
        (
            [{"id": "search", "token": SEARCH}, {"id": "search", "token": BILLING}],
            ["callers[1].id: duplicate id 'search' (also callers[0])"],
        ),
        (
            [{"id": "search", "token": SEARCH}, {"id": "billing", "token": SEARCH}],
            ["callers[1].token: same value as callers[0].token"],
        ),
        (
            [{"id": "search", "token": "${NOPE}"}],
            ["callers[0].token: environment variable NOPE is not set"],
        ),
    ],
)
def test_callers_problems_name_the_field_never_the_token(callers: Any, expected: list[str]) -> None:
    found = problems(callers=callers)
    assert found == expected
    assert not any(SEARCH in p or "short-token" in p or "has a space" in p for p in found)


def test_a_caller_token_may_not_be_the_admin_or_metrics_token() -> None:
    same = [{"id": "search", "token": SEARCH}]
    assert problems(callers=same, admin_token=SEARCH) == [
        "callers[0].token: same value as admin_token"
    ]
    assert problems(callers=same, metrics_token=SEARCH) == [
        "callers[0].token: same value as metrics_token"
    ]


def test_metrics_token_and_allow_unauthenticated() -> None:
    cfg = parse_config({**BASE, "metrics_token": BILLING, "allow_unauthenticated": True}, env={})
    assert (cfg.metrics_token, cfg.allow_unauthenticated) == (BILLING, True)
    assert BILLING not in repr(cfg)
    env = {"POOLSWITCH_ALLOW_UNAUTHENTICATED": "true", "POOLSWITCH_METRICS_TOKEN": SEARCH}
    cfg = parse_config(BASE, env=env)
    assert (cfg.metrics_token, cfg.allow_unauthenticated) == (SEARCH, True)
    found = problems(metrics_token="short")
    assert found == ["metrics_token: must be at least 16 characters without whitespace"]
