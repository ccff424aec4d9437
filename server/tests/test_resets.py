from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import formatdate
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from poolswitch import resets
from poolswitch.resets import (
    MAX_RESET_SECONDS,
    PACIFIC_FALLBACK,
    header_signals,
    longest,
    pacific,
    parse_duration,
    parse_epoch,
    parse_millis,
    parse_retry_after,
    parse_rfc3339,
    prose_signal,
    reset_after,
    until_midnight,
    until_month_start,
)

UTC = timezone.utc


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


NOW = at(2026, 3, 15, 12, 34, 56)  # a Sunday; Pacific daylight time (UTC-7) since March 8


def rfc3339(seconds_from_now: float) -> str:
    when = datetime.fromtimestamp(NOW + seconds_from_now, UTC)
    return when.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("12ms", 0.012),
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("2m59.56s", 179.56),
        ("7.66s", 7.66),
        ("1h2m", 3720.0),
        ("10h17m5.7s", 37025.7),
        ("500us", 0.0005),
        ("3µs", 3e-6),
        ("30", 30.0),
        (" 46s ", 46.0),
        ("", None),
        ("1x", None),
        ("s1", None),
        ("1s 2s", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_parse_duration(text: str, seconds: float | None) -> None:
    got = parse_duration(text)
    assert got == (pytest.approx(seconds) if seconds is not None else None)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 30.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        (formatdate(NOW + 90, usegmt=True), 90.0),
        (formatdate(NOW - 50, usegmt=True), 0.0),
        ("Sun, 15 Mar 2026 12:36:56 -0000", 120.0),  # no zone: read as UTC
        ("tomorrow-ish", None),
        ("", None),
        ("nan", None),
    ],
)
def test_parse_retry_after(text: str, seconds: float | None) -> None:
    got = parse_retry_after(text, NOW)
    assert got == (pytest.approx(seconds) if seconds is not None else None)


def test_parse_millis() -> None:
    assert parse_millis("1500") == 1.5
    assert parse_millis("soon") is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2026-03-15T12:35:41Z", 45.0),
        ("2026-03-15T12:35:41.250Z", 45.25),
        ("2026-03-15T14:35:41+02:00", 45.0),
        ("2026-03-15T07:35:41-05:00", 45.0),
        ("2026-03-15t12:35:41z", 45.0),
        ("2026-03-15T12:33:56Z", -60.0),  # in the past: clamped by the callers
        ("2026-13-15T12:35:41Z", None),
        ("2026-03-15", None),
        ("45", None),
    ],
)
def test_parse_rfc3339(text: str, seconds: float | None) -> None:
    got = parse_rfc3339(text, NOW)
    assert got == (pytest.approx(seconds) if seconds is not None else None)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (str(int(NOW) + 90), 90.0),
        (str(int(NOW * 1000) + 1500), 1.5),  # epoch milliseconds
        ("30", 30.0),  # small: seconds from now
        ("soon", None),
    ],
)
def test_parse_epoch(text: str, seconds: float | None) -> None:
    got = parse_epoch(text, NOW)
    assert got == (pytest.approx(seconds) if seconds is not None else None)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "30"}, (30.0, "retry-after")),
        ({"retry-after": formatdate(NOW + 90, usegmt=True)}, (90.0, "retry-after")),
        ({"retry-after-ms": "1500"}, (1.5, "retry-after-ms")),
        ({"x-ms-retry-after-ms": "2500"}, (2.5, "x-ms-retry-after-ms")),
        ({"x-ratelimit-reset-requests": "6m0s"}, (360.0, "x-ratelimit-reset-requests")),
        ({"x-ratelimit-reset-tokens": "12ms"}, (0.012, "x-ratelimit-reset-tokens")),
        (
            {"x-ratelimit-reset-requests": "2m59.56s", "retry-after": "10"},
            (179.56, "x-ratelimit-reset-requests"),
        ),
        ({"retry-after-ms": "1500", "retry-after": "2"}, (2.0, "retry-after")),
        (
            {"anthropic-ratelimit-tokens-reset": rfc3339(42)},
            (42.0, "anthropic-ratelimit-tokens-reset"),
        ),
        ({"x-ratelimit-reset": str(int(NOW) + 75)}, (75.0, "x-ratelimit-reset")),
        ({"retry-after": "soon"}, None),
        ({}, None),
        ({"retry-after": "99999999999"}, (MAX_RESET_SECONDS, "retry-after")),
        ({"retry-after": formatdate(NOW - 50, usegmt=True)}, (0.0, "retry-after")),
        (
            {"anthropic-ratelimit-requests-reset": rfc3339(-30)},
            (0.0, "anthropic-ratelimit-requests-reset"),
        ),
    ],
)
def test_reset_after_longest_signal_wins(
    headers: dict[str, str], expected: tuple[float, str] | None
) -> None:
    got = reset_after(headers, NOW)
    if expected is None:
        assert got is None
    else:
        assert got is not None
        assert got[0] == pytest.approx(expected[0], abs=1e-6)
        assert got[1] == expected[1]


def test_reset_after_reads_case_insensitive_headers() -> None:
    headers = CIMultiDictProxy(CIMultiDict({"Retry-After": "5", "X-RateLimit-Reset-Tokens": "9s"}))
    assert reset_after(headers, NOW) == (9.0, "x-ratelimit-reset-tokens")


def test_windows_with_capacity_left_do_not_count() -> None:
    # Groq: the request window is a day long and has plenty left; the tokens ran out.
    headers = {
        "x-ratelimit-remaining-requests": "14370",
        "x-ratelimit-reset-requests": "2m59.56s",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "7.66s",
    }
    [(seconds, source)] = header_signals(headers, NOW)
    assert seconds == pytest.approx(7.66)
    assert source == "x-ratelimit-reset-tokens"


def test_anthropic_windows_with_capacity_left_do_not_count() -> None:
    headers = {
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": rfc3339(55),
        "anthropic-ratelimit-input-tokens-remaining": "0",
        "anthropic-ratelimit-input-tokens-reset": rfc3339(12.5),
    }
    got = reset_after(headers, NOW)
    assert got is not None
    assert got[0] == pytest.approx(12.5)
    assert got[1] == "anthropic-ratelimit-input-tokens-reset"


def test_the_named_dimension_picks_its_window() -> None:
    headers = {"x-ratelimit-reset-requests": "6m0s", "x-ratelimit-reset-tokens": "1s"}
    assert header_signals(headers, NOW, dimension="tokens") == [(1.0, "x-ratelimit-reset-tokens")]
    assert header_signals(headers, NOW, dimension="requests") == [
        (360.0, "x-ratelimit-reset-requests")
    ]


def test_windows_can_be_left_out() -> None:
    headers = {"x-ratelimit-reset-requests": "6m0s", "retry-after": "3"}
    assert header_signals(headers, NOW, windows=False) == [(3.0, "retry-after")]


def test_longest_keeps_the_first_on_a_tie_and_clamps() -> None:
    assert longest([]) is None
    assert longest([(5.0, "a"), (5.0, "b")]) == (5.0, "a")
    assert longest([(-1.0, "a")]) == (0.0, "a")
    assert longest([(1e12, "a"), (2e12, "b")]) == (MAX_RESET_SECONDS, "a")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("rate limit reached ... please try again in 9.78s. visit https://x", 9.78),
        ("please try again in 20ms.", 0.02),
        ("quota exceeded ... please retry in 10h17m5.7s.", 37025.7),
        ("you will regain access on 2026-04-01 at 00:00 utc.", at(2026, 4, 1) - NOW),
        ("your quota will reset at 2026-03-16t00:00:00 utc", at(2026, 3, 16) - NOW),
        ("your quota resets on 2026-03-16", at(2026, 3, 16) - NOW),
        ("please try again later.", None),
        ("", None),
    ],
)
def test_prose_signal(text: str, seconds: float | None) -> None:
    got = prose_signal(text, NOW)
    if seconds is None:
        assert got is None
    else:
        assert got is not None
        assert got[0] == pytest.approx(seconds)
        assert got[1] == "message"


@pytest.mark.parametrize(
    ("now", "deadline"),
    [
        (NOW, at(2026, 4, 1)),
        (at(2026, 12, 20, 10), at(2027, 1, 1)),  # December -> January of the next year
        (at(2026, 12, 31, 23, 59, 59), at(2027, 1, 1)),
        (at(2026, 4, 1), at(2026, 5, 1)),  # just reset: the next one is a month away
        (at(2028, 2, 29, 12), at(2028, 3, 1)),
    ],
)
def test_until_month_start(now: float, deadline: float) -> None:
    assert until_month_start(now) == pytest.approx(deadline - now)


LOS_ANGELES = ZoneInfo("America/Los_Angeles")


@pytest.mark.parametrize(
    ("now", "deadline"),
    [
        (NOW, at(2026, 3, 16, 7)),  # 05:34 PDT -> midnight PDT = 07:00 UTC
        (at(2026, 1, 10, 12), at(2026, 1, 11, 8)),  # 04:00 PST -> midnight PST = 08:00 UTC
        (at(2026, 3, 8, 7, 30), at(2026, 3, 8, 8)),  # 23:30 PST on the eve of DST
        (at(2026, 3, 8, 8, 30), at(2026, 3, 9, 7)),  # 00:30 PST, DST starts at 02:00
        (at(2026, 3, 16, 7), at(2026, 3, 17, 7)),  # exactly midnight: the next one
    ],
)
def test_until_midnight_pacific(now: float, deadline: float) -> None:
    assert until_midnight(now, LOS_ANGELES) == pytest.approx(deadline - now)


def test_until_midnight_with_the_fixed_fallback_zone() -> None:
    assert until_midnight(NOW, PACIFIC_FALLBACK) == pytest.approx(at(2026, 3, 16, 8) - NOW)


def test_pacific_falls_back_to_utc_minus_8_without_tz_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert pacific() == LOS_ANGELES

    def missing(key: str) -> ZoneInfo:
        raise ZoneInfoNotFoundError(key)

    monkeypatch.setattr(resets, "ZoneInfo", missing)
    assert pacific() is PACIFIC_FALLBACK
    assert PACIFIC_FALLBACK.utcoffset(None) == timedelta(hours=-8)
