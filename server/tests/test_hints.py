from __future__ import annotations

import pytest

from poolswitch.envelope import error_response
from poolswitch.errors import NoAvailableKeys, Overloaded, UpstreamTimeout, UpstreamUnavailable
from poolswitch.hints import SHOULD_RETRY_WITHIN, retry_headers, retry_hint

MONTH = 2617953.0  # a spent monthly quota, as Python anthropic once slept for


@pytest.mark.parametrize(
    ("code", "wait", "retry_after", "should_retry"),
    [
        # every key parked: invite a retry only when a key returns within the window
        ("caller_rate_limited", 0.3, 1, True),
        ("caller_rate_limited", 59.2, 60, True),
        ("caller_rate_limited", 60.4, 61, False),  # always said; a retry invited within 60 s
        ("no_available_keys", None, None, False),  # every key disabled: nothing will return
        ("no_available_keys", 0.0, 1, True),
        ("no_available_keys", 0.2, 1, True),
        ("no_available_keys", 1.0, 1, True),
        ("no_available_keys", 1.01, 2, True),
        ("no_available_keys", 59.2, 60, True),
        ("no_available_keys", SHOULD_RETRY_WITHIN, 60, True),
        ("no_available_keys", 60.01, None, False),  # would be 61 s: too long to sleep through
        ("no_available_keys", 3600.0, None, False),
        ("no_available_keys", MONTH, None, False),
        # held for a moment: always retry soon
        ("upstream_unavailable", 0.5, 1, True),
        ("upstream_unavailable", 0.01, 1, True),
        ("upstream_unavailable", 2.3, 3, True),
        ("upstream_unavailable", None, 1, True),
        ("overloaded", None, 1, True),
        ("overloaded", 1.0, 1, True),
        ("overloaded", 600.0, 60, True),  # capped: a transient answer keeps its hint short
        # the rest: the status says it all
        ("upstream_timeout", None, None, None),
        ("upstream_unreachable", None, None, None),
        ("bad_request", None, None, None),
        ("internal_error", 5.0, None, None),
    ],
)
def test_retry_hint(
    code: str, wait: float | None, retry_after: int | None, should_retry: bool | None
) -> None:
    assert retry_hint(code, wait) == (retry_after, should_retry)
    headers = dict(retry_headers(code, wait))
    assert headers.get(b"retry-after") == (
        None if retry_after is None else str(retry_after).encode()
    )
    expected = None if should_retry is None else (b"true" if should_retry else b"false")
    assert headers.get(b"x-should-retry") == expected


@pytest.mark.parametrize(
    ("err", "status", "retry_after", "should_retry"),
    [
        (NoAvailableKeys("m", retry_after=20), 429, b"20", b"true"),
        (NoAvailableKeys("m", retry_after=3600), 429, None, b"false"),
        (NoAvailableKeys("m", retry_after=None), 429, None, b"false"),
        (UpstreamUnavailable("m", retry_after=0.5), 503, b"1", b"true"),
        (Overloaded("m", retry_after=1), 503, b"1", b"true"),
        (UpstreamTimeout("m"), 504, None, None),
    ],
)
def test_error_response_carries_the_hint_and_the_real_wait(
    err: NoAvailableKeys, status: int, retry_after: bytes | None, should_retry: bytes | None
) -> None:
    got_status, headers, body = error_response(err)
    names = [name for name, _ in headers]
    assert len(names) == len(set(names))
    got = dict(headers)
    assert got_status == status
    assert got[b"x-poolswitch-error"] == err.code.encode()
    assert got.get(b"retry-after") == retry_after
    assert got.get(b"x-should-retry") == should_retry
    assert (
        f'"retry_after": {"null" if err.retry_after is None else err.retry_after}'.encode() in body
    )
