"""Fuzz: the classifier takes any answer (status, headers, body, first SSE event) without
raising, and any cooldown it asks for is finite, >= 0 and at most MAX_RESET_SECONDS."""

from __future__ import annotations

import gzip
import json
import math
import zlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from poolswitch.classifier import MAX_RESET_SECONDS, PROFILES, Classifier, Verdict
from poolswitch.config import RULE_ACTIONS, StatusRule

from fuzzing import REPLAY, SIGNAL_HEADERS, fuzz_settings

pytestmark = pytest.mark.fuzz

NOW = st.floats(min_value=1e9, max_value=4e9)  # Unix times the proxy can meet
HEADER_NAMES = (*SIGNAL_HEADERS, "content-encoding", "content-type")
HEADER_VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "0",
            "-5",
            "1e308",
            "1e400",
            "nan",
            "inf",
            "-inf",
            "9" * 400,
            "99999999999999h",
            "1h2m3.5s",
            "12ms",
            "0.5",
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "Fri, 31 Dec 9999 23:59:59 GMT",
            "Mon, 01 Jan 0001 00:00:00 GMT",
            "2026-08-21T12:40:59Z",
            "9999-12-31T23:59:59.999999999+23:59",
            "0001-01-01T00:00:00-23:59",
            "2026-02-30T00:00:00Z",
            "1760000000",
            "1760000000000",
            "99999999999999999999",
            "gzip",
            "deflate",
            "br",
            "identity",
            "application/json",
            "text/event-stream",
        ]
    ),
)
IDENTIFIERS = (
    "rate_limit_exceeded",
    "insufficient_quota",
    "invalid_api_key",
    "resource_exhausted",
    "RESOURCE_EXHAUSTED",
    "enforced_spend_limit_reached",
    "overloaded_error",
    "api_key_invalid",
    "permission_denied",
    "billing_error",
    "slow_down",
    "requests",
    "tokens",
)
PROSE = (
    "Please try again in 9.78s.",
    "Please retry in 10h17m5.7s",
    "try again in 99999999999999999999h",
    "You will regain access on 2026-04-01 at 00:00 UTC",
    "resets at 9999-12-31 23:59",
    "resets on 2026-13-45",
    "limit: 0",
    "monthly spend limit",
    "credit balance is too low",
)
LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from([*IDENTIFIERS, *PROSE, "0", "46s", "1e400s", "-1s", "9" * 400 + "s"]),
)
JSON_KEYS = st.one_of(
    st.sampled_from(
        [
            "error",
            "code",
            "type",
            "status",
            "reason",
            "error_code",
            "message",
            "details",
            "quotaId",
            "quotaValue",
            "retryDelay",
            "violations",
        ]
    ),
    st.text(max_size=8),
)
DOCS = st.recursive(
    LEAF,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(JSON_KEYS, inner, max_size=5)
    ),
    max_leaves=20,
)


def _dump(doc: Any) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(st.binary(max_size=300))
    if kind == 1:  # deep nesting
        depth = draw(st.integers(1, 3000))
        return b'{"error":' * depth + b"1" + b"}" * draw(st.integers(0, depth))
    body = _dump(draw(DOCS))
    if kind == 2:
        return gzip.compress(body)
    if kind == 3:
        return zlib.compress(body)[: draw(st.integers(0, 200))]
    return body


@st.composite
def headers(draw: st.DrawFn) -> dict[str, str]:
    names = draw(
        st.lists(st.one_of(st.sampled_from(HEADER_NAMES), st.text(max_size=10)), max_size=8)
    )
    return {name.lower(): draw(HEADER_VALUES) for name in names}


RULES = st.lists(
    st.builds(
        StatusRule,
        status=st.integers(100, 599),
        action=st.sampled_from(RULE_ACTIONS),
        match=st.one_of(st.none(), st.text(min_size=1, max_size=10), st.sampled_from(IDENTIFIERS)),
        seconds=st.one_of(st.none(), st.floats(0, MAX_RESET_SECONDS)),
    ),
    max_size=3,
)
CLASSIFIERS = st.builds(
    Classifier,
    profile=st.sampled_from(PROFILES),
    cooldown_seconds=st.floats(0, MAX_RESET_SECONDS),
    rules=RULES.map(tuple),
)
STATUSES = st.one_of(
    st.integers(0, 999), st.sampled_from([400, 401, 402, 403, 404, 429, 500, 503, 529])
)


def check(verdict: Verdict | None) -> None:
    if verdict is None:
        return
    assert isinstance(verdict, Verdict), REPLAY
    if verdict.cooldown is not None:
        c = verdict.cooldown
        assert math.isfinite(c) and 0 <= c <= MAX_RESET_SECONDS, f"cooldown {c!r} ({REPLAY})"


@fuzz_settings()
@given(CLASSIFIERS, STATUSES, headers(), bodies(), NOW)
def test_classify_never_raises_and_bounds_the_cooldown(
    classifier: Classifier, status: int, hdrs: dict[str, str], body: bytes, now: float
) -> None:
    check(classifier.classify(status, hdrs, body, now))


@st.composite
def events(draw: st.DrawFn) -> bytes:
    data = draw(
        st.one_of(
            st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
            DOCS.map(lambda d: json.dumps(d)),
        )
    )
    event = draw(
        st.sampled_from(["", "event: error\n", "event: message\n", "event:error\r\n", ": ping\n"])
    )
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return (event + lines + draw(st.sampled_from(["\n", "\r\n", ""]))).encode(
        "utf-8", "surrogatepass"
    )


@fuzz_settings()
@given(CLASSIFIERS, events(), headers(), NOW)
def test_classify_stream_start_never_raises(
    classifier: Classifier, event: bytes, hdrs: dict[str, str], now: float
) -> None:
    check(classifier.classify_stream_start(event, hdrs, now))
