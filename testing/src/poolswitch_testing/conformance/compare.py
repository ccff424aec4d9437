"""Check a call's result and the upstream's record against a case's expectations.

A result is what a client program answered for one call (conformance/README.md):
`{"status", "headers", "json" | "text" | "body_b64", "events", "error"}`. The upstream's record is
the fake upstream's attempts, as `attempt_view()` shows them. Every function returns the
differences as lines; none means the expectation holds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from poolswitch_testing.conformance.matchers import MISSING, match, short
from poolswitch_testing.conformance.schema import Expect, UpstreamExpect
from poolswitch_testing.fake_upstream import Attempt, blob_bytes

__all__ = ["attempt_view", "check_result", "check_upstream", "normalise"]

KEY_ID_HEADER = "x-poolswitch-key-id"
ATTEMPTS_HEADER = "x-poolswitch-attempts"


def attempt_view(attempt: Attempt) -> dict[str, Any]:
    """An upstream attempt as expectations see it: headers as a mapping of lower-cased names."""
    view = attempt.to_json()
    headers: dict[str, str] = {}
    for name, value in attempt.headers:
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    view["headers"] = headers
    del view["at"]
    return view


def normalise(result: Mapping[str, Any]) -> dict[str, Any]:
    """A client's result in one shape: header names lower-cased, a list of values joined with
    ", ", and a `body_b64` body read by its Content-Type (JSON as `json`, text/* as `text`, an
    empty body as none), so that clients may report an answer as they got it and leave the
    reading to the runner."""
    out = dict(result)
    headers = out.get("headers")
    if isinstance(headers, Mapping):
        out["headers"] = {
            str(name).lower(): ", ".join(map(str, value)) if isinstance(value, list) else value
            for name, value in headers.items()
        }
    body = out.get("body_b64")
    if not isinstance(body, str) or "json" in out or "text" in out:
        return out
    try:
        data = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return out
    content_type = out["headers"].get("content-type", "") if isinstance(headers, Mapping) else ""
    kind = str(content_type).split(";")[0].strip().lower()
    try:
        if not data:
            del out["body_b64"]
        elif kind == "application/json" or kind.endswith("+json"):
            out["json"] = json.loads(data)
            del out["body_b64"]
        elif kind.startswith("text/"):
            out["text"] = data.decode("utf-8")
            del out["body_b64"]
    except ValueError:  # not JSON, or not UTF-8, after all: keep the bytes
        pass
    return out


def _keys(attempts: Sequence[Mapping[str, Any]]) -> list[Any]:
    return [attempt.get("key_id") for attempt in attempts]


def _check_keys(expected: Any, attempts: Sequence[Mapping[str, Any]], where: str) -> list[str]:
    """A list of key ids must equal the sequence; a matcher sees the ids joined with commas."""
    keys = _keys(attempts)
    if isinstance(expected, list):
        return match(expected, keys, where)
    return match(expected, ",".join(str(k) for k in keys), where)


def _attempts_header(headers: Mapping[str, Any]) -> Any:
    value = headers.get(ATTEMPTS_HEADER, MISSING)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


def _blob(result: Mapping[str, Any], size: int) -> list[str]:
    body = result.get("body_b64")
    if not isinstance(body, str):
        kinds = [name for name in ("json", "text") if name in result]
        seen = f"a {kinds[0]} body" if kinds else "no body"
        return [f"body: expected {size} bytes of blob (body_b64), seen {seen}"]
    try:
        data = base64.b64decode(body)
    except (binascii.Error, ValueError):
        return ["body_b64: not base64"]
    want = blob_bytes(size)
    if data == want:
        return []
    digest = hashlib.sha256(data).hexdigest()[:16]
    return [
        f"body: expected the {size}-byte blob (sha256 {hashlib.sha256(want).hexdigest()[:16]}…), "
        f"seen {len(data)} bytes (sha256 {digest}…)"
    ]


def _events(expect: Expect, result: Mapping[str, Any], now: float) -> list[str]:
    seen = result.get("events", MISSING)
    found: list[str] = []
    if expect.events is not MISSING:
        expected = expect.events
        if isinstance(expected, list):
            expected = [{"data": e} if isinstance(e, str) else e for e in expected]
        found += match(expected, seen, "events", now=now)
    if expect.events_spread is not None:
        times = [e.get("at") for e in seen] if isinstance(seen, list) else []
        numbers = [t for t in times if isinstance(t, (int, float))]
        if len(numbers) < 2 or len(numbers) != len(times):
            found.append(
                f"events_spread: expected at least 2 timed events, seen {short(times or seen)}"
            )
        elif numbers[-1] - numbers[0] < expect.events_spread:
            found.append(
                f"events_spread: expected the events over at least {expect.events_spread:g}s "
                f"(they should arrive as sent), seen {numbers[-1] - numbers[0]:.3f}s"
            )
    return found


def check_result(
    expect: Expect,
    result: Mapping[str, Any],
    attempts: Sequence[Mapping[str, Any]],
    *,
    now: float,
    seconds: float | None = None,
) -> list[str]:
    """Compare one call's `result` (and the upstream `attempts` it caused) with `expect`;
    `seconds` is how long the call took, as the runner measured it."""
    found: list[str] = []

    def check(expected: Any, seen: Any, where: str) -> None:
        if expected is not MISSING:
            found.extend(match(expected, seen, where, now=now))

    check(expect.status, result.get("status", MISSING), "status")
    error = result.get("error")
    if expect.error is None:
        if error is not None:
            found.append(f"error: expected none, seen {short(error)}")
    elif error is None:
        found.append(f"error: expected {short(expect.error)}, seen none")
    else:
        check(expect.error, error, "error")
    headers = result.get("headers")
    headers = headers if isinstance(headers, Mapping) else {}
    check(expect.key_id, headers.get(KEY_ID_HEADER, MISSING), "key_id")
    check(expect.attempts, _attempts_header(headers), "attempts")
    if expect.headers:
        check(dict(expect.headers), headers, "headers")
    check(expect.json, result.get("json", MISSING), "json")
    check(expect.text, result.get("text", MISSING), "text")
    if expect.blob_size is not None:
        found += _blob(result, expect.blob_size)
    found += _events(expect, result, now)
    if expect.upstream_keys is not MISSING:
        found += _check_keys(expect.upstream_keys, attempts, "upstream_keys")
    check(expect.upstream, list(attempts), "upstream")
    if expect.seconds is not MISSING:
        found += match(expect.seconds, MISSING if seconds is None else round(seconds, 3), "seconds")
    return found


def check_upstream(expect: UpstreamExpect, attempts: Sequence[Mapping[str, Any]]) -> list[str]:
    """Compare every attempt the upstream saw in a case with the case's `expect_upstream`."""
    found: list[str] = []
    if expect.keys is not MISSING:
        found += _check_keys(expect.keys, attempts, "expect_upstream.keys")
    if expect.key_counts:
        counts = Counter(_keys(attempts))
        seen = {key_id: counts.get(key_id, 0) for key_id in expect.key_counts}
        found += match(dict(expect.key_counts), seen, "expect_upstream.key_counts")
    return found
