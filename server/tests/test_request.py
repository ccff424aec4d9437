from __future__ import annotations

import asyncio

import pytest

from poolswitch.errors import BadRequest, ClientGone, Overloaded, PayloadTooLarge
from poolswitch.request import (
    ABSOLUTE_FORM,
    BodyBudget,
    Message,
    Receive,
    dropped_headers,
    escapes_base,
    forward_headers,
    read_body,
    request_target,
    without_query_param,
)


@pytest.mark.parametrize(
    ("path", "escapes"),
    [
        (b"/v1/models", False),
        (b"/v1/../v1/models", False),
        (b"/./v1", False),
        (b"/..", True),
        (b"/v1/../../etc", True),
        (b"/v1/%2e%2e/%2E%2E/x", True),
        (b"/v1/..%2f..%2fx", True),
        (b"/v1\\..\\..\\x", True),
        (b"/v1/..foo/x", False),
    ],
)
def test_escapes_base(path: bytes, escapes: bool) -> None:
    assert escapes_base(path) is escapes


def test_request_target_keeps_raw_path_and_query() -> None:
    scope = {"path": "/v1/a b", "raw_path": b"/v1/a%20b", "query_string": b"x=%2F&y"}
    assert request_target(scope) == "/v1/a%20b?x=%2F&y"
    with pytest.raises(BadRequest):
        request_target({**scope, ABSOLUTE_FORM: True})
    with pytest.raises(BadRequest):
        request_target({**scope, "raw_path": b"*"})


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/m?key=abc&alt=json", "/m?alt=json"),
        ("/m?alt=json&key=abc&key=def", "/m?alt=json"),
        ("/m?key", "/m"),
        ("/m?keys=1", "/m?keys=1"),
        ("/m", "/m"),
    ],
)
def test_without_query_param(target: str, expected: str) -> None:
    assert without_query_param(target, "key") == expected


def test_forward_headers_drops_hop_by_hop_and_caller_auth() -> None:
    raw = [
        (b"authorization", b"Bearer caller"),
        (b"content-length", b"12"),
        (b"connection", b"keep-alive, x-listed"),
        (b"x-listed", b"1"),
        (b"host", b"proxy"),
        (b"x-kept", b"yes"),
    ]
    headers, declared = forward_headers(raw, dropped_headers("Authorization"))
    assert headers == [("x-kept", "yes")]
    assert declared == 12
    with pytest.raises(BadRequest):
        forward_headers([(b"content-length", b"nope")], dropped_headers("Authorization"))


@pytest.mark.parametrize("auth_header_name", ["Authorization", "x-api-key", "api-key"])
def test_forward_headers_never_forwards_a_caller_credential(auth_header_name: str) -> None:
    raw = [
        (b"authorization", b"Bearer caller-token"),
        (b"x-api-key", b"caller-token"),
        (b"x-goog-api-key", b"caller-token"),
        (b"x-poolswitch-token", b"caller-token"),
        (b"api-key", b"caller-token"),
        (b"x-kept", b"yes"),
    ]
    headers, _ = forward_headers(raw, dropped_headers(auth_header_name))
    kept = [("api-key", "caller-token")] if auth_header_name != "api-key" else []
    assert headers == [*kept, ("x-kept", "yes")]


@pytest.mark.parametrize(
    ("sent", "forwarded"),
    [
        (b"gzip, deflate", "gzip, deflate"),
        (b"gzip, deflate, br, zstd", "gzip, deflate, br"),
        (b"zstd", "identity"),
        (b"*", "gzip, deflate, br"),
    ],
)
def test_forward_headers_narrows_accept_encoding(sent: bytes, forwarded: str) -> None:
    headers, _ = forward_headers(
        [(b"accept-encoding", sent), (b"x-a", b"1")], dropped_headers("Authorization")
    )
    assert headers == [("accept-encoding", forwarded), ("x-a", "1")]


def receiver(*chunks: bytes, gone: bool = False) -> Receive:
    messages: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    if gone:
        messages[-1]["more_body"] = True
        messages.append({"type": "http.disconnect"})

    async def receive() -> Message:
        return messages.pop(0)

    return receive


def read(receive: Receive, declared: int | None, limit: int, budget: BodyBudget) -> bytes:
    return asyncio.run(read_body(receive, declared, limit, budget))


def test_body_budget_holds_what_was_read_and_refuses_past_its_limit() -> None:
    budget = BodyBudget(100)
    assert read(receiver(b"a" * 60), 60, 1000, budget) == b"a" * 60
    assert budget.held == 60
    with pytest.raises(Overloaded) as info:
        read(receiver(b"b" * 50), 50, 1000, budget)  # declared: refused before reading
    assert info.value.retry_after == 1
    with pytest.raises(Overloaded):
        read(receiver(b"c" * 30, b"c" * 30), None, 1000, budget)  # chunked: as it arrives
    assert budget.held == 60
    assert read(receiver(b"d" * 20, b"d" * 20), None, 1000, budget) == b"d" * 40
    assert budget.held == 100
    budget.give(100)
    assert budget.held == 0


def test_body_budget_is_given_back_on_errors() -> None:
    budget = BodyBudget(1000)
    with pytest.raises(ClientGone):
        read(receiver(b"a" * 10, gone=True), 50, 1000, budget)
    with pytest.raises(PayloadTooLarge):
        read(receiver(b"a" * 10, b"a" * 10), None, 15, budget)
    with pytest.raises(PayloadTooLarge):
        read(receiver(b""), 16, 15, budget)
    assert budget.held == 0
    assert read(receiver(b""), None, 15, budget) == b""
    assert budget.held == 0
