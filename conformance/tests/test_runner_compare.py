"""runner.compare: a result and the upstream's record against the expectations."""

from __future__ import annotations

import base64
from typing import Any

from poolswitch_testing.conformance.compare import (
    attempt_view,
    check_result,
    check_upstream,
    normalise,
)
from poolswitch_testing.conformance.matchers import MISSING
from poolswitch_testing.conformance.schema import Expect, UpstreamExpect
from poolswitch_testing.fake_upstream import Attempt, blob_bytes

NOW = 1_800_000_000.0


def result(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"status": 200, "headers": {}, "error": None}
    return {**base, **fields}


def check(
    expect: Expect, seen: dict[str, Any], attempts: list[dict[str, Any]] | None = None
) -> list[str]:
    return check_result(expect, seen, attempts or [], now=NOW)


def test_no_error_is_expected_unless_one_is_named() -> None:
    assert check(Expect(status=200), result()) == []
    failed = result(
        status=503, error={"code": "no_available_keys", "status": 503, "retry_after": 7}
    )
    assert check(Expect(status=503), failed) == [
        'error: expected none, seen {"code": "no_available_keys", "retry_after": 7, "status": 503}'
    ]
    expect = Expect(
        status=503, error={"code": "no_available_keys", "retry_after": {"$range": [5, 8]}}
    )
    assert check(expect, failed) == []
    assert check(Expect(error={"code": "x"}), result()) == [
        'error: expected {"code": "x"}, seen none'
    ]


def test_key_id_and_attempts_come_from_the_headers() -> None:
    seen = result(headers={"x-poolswitch-key-id": "beta", "x-poolswitch-attempts": "2"})
    assert check(Expect(key_id="beta", attempts=2), seen) == []
    assert check(Expect(key_id="alpha", attempts=1), seen) == [
        'key_id: expected "alpha", seen "beta"',
        "attempts: expected 1, seen 2",
    ]
    assert check(Expect(key_id={"$absent": True}), result()) == []


def test_headers_json_and_text() -> None:
    seen = result(headers={"content-type": "application/json"}, json={"a": {"b": 1}, "c": 2})
    assert (
        check(Expect(headers={"content-type": {"$re": "json"}}, json={"a": {"b": 1}}), seen) == []
    )
    assert check(Expect(text="x"), seen) == ['text: missing (expected "x")']


def test_blob_body() -> None:
    seen = result(body_b64=base64.b64encode(blob_bytes(1000)).decode())
    assert check(Expect(blob_size=1000), seen) == []
    [line] = check(Expect(blob_size=1001), seen)
    assert line.startswith("body: expected the 1001-byte blob") and "seen 1000 bytes" in line
    assert check(Expect(blob_size=3), result(json={})) == [
        "body: expected 3 bytes of blob (body_b64), seen a json body"
    ]


def test_events_as_data_strings_or_subsets() -> None:
    events = [
        {"event": "message", "data": "one", "id": None, "at": 0.1},
        {"event": "delta", "data": "two", "id": "7", "at": 0.9},
    ]
    seen = result(events=events)
    assert check(Expect(events=["one", {"event": "delta", "id": "7"}]), seen) == []
    assert check(Expect(events=["one"]), seen)[0].startswith("events: expected 1 item(s), seen 2")
    assert check(Expect(events=["one", "three"]), seen) == [
        'events[1].data: expected "three", seen "two"'
    ]


def test_events_spread_tells_a_buffered_stream() -> None:
    spread = result(events=[{"data": "a", "at": 0.1}, {"data": "b", "at": 0.8}])
    bunched = result(events=[{"data": "a", "at": 0.8}, {"data": "b", "at": 0.801}])
    assert check(Expect(events_spread=0.5), spread) == []
    [line] = check(Expect(events_spread=0.5), bunched)
    assert "at least 0.5s" in line and "seen 0.001s" in line
    assert "at least 2 timed events" in check(Expect(events_spread=0.5), result(events=[]))[0]


def test_upstream_keys_as_a_list_or_a_pattern() -> None:
    attempts = [{"key_id": "alpha"}, {"key_id": "beta"}]
    assert check(Expect(upstream_keys=["alpha", "beta"]), result(), attempts) == []
    assert check(Expect(upstream_keys={"$re": "^alpha,(beta|gamma)$"}), result(), attempts) == []
    assert check(Expect(upstream_keys=[]), result(), attempts)[0].startswith("upstream_keys:")


def test_upstream_attempts_as_subsets() -> None:
    attempts = [{"key_id": "alpha", "method": "GET", "path": "/v1/m", "headers": {"x": "1"}}]
    assert (
        check(Expect(upstream=[{"method": "GET", "headers": {"x": "1"}}]), result(), attempts) == []
    )
    assert check(Expect(upstream=[{"path": "/v2"}]), result(), attempts) == [
        'upstream[0].path: expected "/v2", seen "/v1/m"'
    ]


def test_unchecked_fields_are_missing_sentinels() -> None:
    assert Expect().status is MISSING
    assert check(Expect(), result(status=418, json=[1])) == []


def test_check_upstream_keys_and_counts() -> None:
    attempts = [{"key_id": k} for k in ["alpha", "beta", "alpha"]]
    assert check_upstream(UpstreamExpect(keys=["alpha", "beta", "alpha"]), attempts) == []
    expect = UpstreamExpect(key_counts={"alpha": 2, "beta": {"$range": [1, 5]}, "gamma": 0})
    assert check_upstream(expect, attempts) == []
    assert check_upstream(UpstreamExpect(key_counts={"alpha": 1}), attempts) == [
        "expect_upstream.key_counts.alpha: expected 1, seen 2"
    ]


def test_attempt_view_joins_repeated_headers() -> None:
    attempt = Attempt("alpha", "POST", "/v1/x", "a=1", (("x-a", "1"), ("x-a", "2")), "ab", 3, 1.0)
    view = attempt_view(attempt)
    assert view["headers"] == {"x-a": "1, 2"}
    assert view["key_id"] == "alpha" and view["query_string"] == "a=1" and "at" not in view


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_normalise_reads_bodies_by_content_type() -> None:
    def body_of(content_type: str, data: bytes) -> dict[str, Any]:
        seen = normalise({"headers": {"Content-Type": content_type}, "body_b64": b64(data)})
        return {k: v for k, v in seen.items() if k != "headers"}

    assert body_of("application/json; charset=utf-8", b'{"a": "\xc3\xa9"}') == {"json": {"a": "é"}}
    assert body_of("application/problem+json", b"[1]") == {"json": [1]}
    assert body_of("text/plain", "héllo".encode()) == {"text": "héllo"}
    assert body_of("application/json", b"{not json") == {"body_b64": b64(b"{not json")}
    assert body_of("text/plain", b"\xff\xfe") == {"body_b64": b64(b"\xff\xfe")}
    assert body_of("application/octet-stream", b"\x00") == {"body_b64": b64(b"\x00")}
    assert body_of("application/json", b"") == {}


def test_normalise_headers_and_keeps_parsed_bodies() -> None:
    seen = normalise({"headers": {"X-A": ["1", "2"], "X-B": "3"}, "json": {"a": 1}, "body_b64": ""})
    assert seen["headers"] == {"x-a": "1, 2", "x-b": "3"}
    assert seen["json"] == {"a": 1}


def test_seconds_is_how_long_the_call_took() -> None:
    expect = Expect(seconds={"$range": [0, 0.5]})
    assert check_result(expect, {"status": 200, "error": None}, [], now=0, seconds=0.2) == []
    [line] = check_result(expect, {"status": 200, "error": None}, [], now=0, seconds=0.9)
    assert line.startswith("seconds: ")
