from __future__ import annotations

import json
from email.utils import formatdate

import pytest

from poolswitch.classifier import (
    DEFAULT_RATE_LIMIT_COOLDOWN,
    MAX_RESET_SECONDS,
    Outcome,
    Verdict,
    classify,
    parse_duration,
    parse_retry_after,
    reset_after,
)

NOW = 1_800_000_000.0
COOLDOWN = 3600.0


def openai_error(code: str, type_: str) -> bytes:
    return json.dumps(
        {"error": {"message": "x", "type": type_, "param": None, "code": code}}
    ).encode()


def verdict(status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> Verdict:
    return classify(status, headers or {}, body, cooldown_seconds=COOLDOWN, now=NOW)


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected"),
    [
        (200, {}, b"{}", Verdict(Outcome.SUCCESS)),
        (204, {}, b"", Verdict(Outcome.SUCCESS)),
        (304, {}, b"", Verdict(Outcome.SUCCESS)),
        (
            429,
            {},
            openai_error("insufficient_quota", "insufficient_quota"),
            Verdict(Outcome.QUOTA_EXHAUSTED, True, COOLDOWN),
        ),
        (
            429,
            {"retry-after": "2"},
            openai_error("rate_limit_exceeded", "requests"),
            Verdict(Outcome.RATE_LIMITED, True, 2.0),
        ),
        (
            429,
            {},
            openai_error("rate_limit_exceeded", "tokens"),
            Verdict(Outcome.RATE_LIMITED, True, DEFAULT_RATE_LIMIT_COOLDOWN),
        ),
        (402, {}, b"", Verdict(Outcome.QUOTA_EXHAUSTED, True, COOLDOWN)),
        (
            401,
            {},
            openai_error("invalid_api_key", "invalid_request_error"),
            Verdict(Outcome.KEY_INVALID, True, COOLDOWN),
        ),
        (403, {}, b"", Verdict(Outcome.KEY_INVALID, True, COOLDOWN)),
        (500, {}, b"", Verdict(Outcome.UPSTREAM_ERROR, True)),
        (503, {}, b"", Verdict(Outcome.UPSTREAM_ERROR, True)),
        (
            529,
            {},
            b'{"type":"error","error":{"type":"overloaded_error"}}',
            Verdict(Outcome.UPSTREAM_ERROR, True),
        ),
        (
            400,
            {},
            openai_error("invalid_value", "invalid_request_error"),
            Verdict(Outcome.CLIENT_ERROR),
        ),
        (404, {}, b"", Verdict(Outcome.CLIENT_ERROR)),
        (413, {}, b"", Verdict(Outcome.CLIENT_ERROR)),
    ],
)
def test_classify(status: int, headers: dict[str, str], body: bytes, expected: Verdict) -> None:
    assert verdict(status, headers, body) == expected


def test_rate_limit_default_never_exceeds_cooldown_seconds() -> None:
    got = classify(429, {}, b"", cooldown_seconds=5, now=NOW)
    assert got.cooldown == 5


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "30"}, 30.0),
        ({"retry-after": formatdate(NOW + 90, usegmt=True)}, 90.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"x-ratelimit-reset-requests": "6m0s"}, 360.0),
        ({"x-ratelimit-reset-tokens": "12ms"}, 0.012),
        ({"x-ratelimit-reset-requests": "2m59.56s", "retry-after": "10"}, 179.56),
        ({"retry-after": "soon"}, None),
        ({}, None),
        ({"retry-after": "99999999999"}, MAX_RESET_SECONDS),
        ({"retry-after": formatdate(NOW - 50, usegmt=True)}, 0.0),
    ],
)
def test_reset_after_longest_signal_wins(headers: dict[str, str], seconds: float | None) -> None:
    got = reset_after(headers, NOW)
    if seconds is None:
        assert got is None
    else:
        assert got == pytest.approx(seconds, abs=1.0)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("12ms", 0.012),
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("2m59.56s", 179.56),
        ("1h2m", 3720.0),
        ("7.66s", 7.66),
        ("30", 30.0),
        ("", None),
        ("1x", None),
        ("s1", None),
    ],
)
def test_parse_duration(text: str, seconds: float | None) -> None:
    got = parse_duration(text)
    assert got == (pytest.approx(seconds) if seconds is not None else None)


def test_parse_retry_after_rejects_garbage() -> None:
    assert parse_retry_after("tomorrow-ish", NOW) is None
    assert parse_retry_after("-3", NOW) == 0.0
