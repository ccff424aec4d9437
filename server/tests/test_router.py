from __future__ import annotations

import pytest

from poolswitch.router import Router

GATEWAY = Router([("openai", "/openai"), ("oa-beta", "/openai/beta"), ("gemini", "/gemini")])
WITH_ROOT = Router([("default", "/"), ("anthropic", "/anthropic")])


@pytest.mark.parametrize(
    ("router", "path", "expected"),
    [
        (GATEWAY, b"/openai/v1/models", ("openai", b"/v1/models")),
        (GATEWAY, b"/openai", ("openai", b"/")),
        (GATEWAY, b"/openai?x=1", ("openai", b"?x=1")),
        (GATEWAY, b"/openai/", ("openai", b"/")),
        (GATEWAY, b"/openai/beta/v1/x", ("oa-beta", b"/v1/x")),  # longest prefix wins
        (GATEWAY, b"/openai/betax", ("openai", b"/betax")),
        (GATEWAY, b"/openaix/v1", None),  # a prefix of a segment is no match
        (GATEWAY, b"/gemini/v1beta/models", ("gemini", b"/v1beta/models")),
        (GATEWAY, b"/anthropic/v1/messages", None),
        (GATEWAY, b"/", None),
        (GATEWAY, b"/OPENAI/v1", None),  # byte for byte
        (WITH_ROOT, b"/anthropic/v1/messages", ("anthropic", b"/v1/messages")),
        (WITH_ROOT, b"/v1/models", ("default", b"/v1/models")),
        (WITH_ROOT, b"/", ("default", b"/")),
        (Router([("default", "/")]), b"/v1/x?y", ("default", b"/v1/x?y")),
    ],
)
def test_longest_route_prefix(
    router: Router, path: bytes, expected: tuple[str, bytes] | None
) -> None:
    assert router.match(path) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (b"openai", "openai"),
        (b" gemini ", "gemini"),
        (b"nope", None),
        (b"", None),
        (b"/openai", None),
    ],
)
def test_pool_by_name(name: bytes, expected: str | None) -> None:
    assert GATEWAY.by_name(name) == expected
