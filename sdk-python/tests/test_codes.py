"""`ErrorCode`: a constant for every code the proxy makes, each documented in the README."""

from __future__ import annotations

from pathlib import Path

import pytest

from poolswitch_client import ErrorCode

README = Path(__file__).resolve().parents[1] / "README.md"
# the wire contract's list (docs/protocol.md, issue 11's brief)
CODES = {
    "no_available_keys",
    "upstream_unavailable",
    "overloaded",
    "upstream_unreachable",
    "upstream_timeout",
    "payload_too_large",
    "bad_request",
    "unauthorized",
    "forbidden",
    "headers_too_large",
    "not_found",
    "no_such_pool",
    "caller_rate_limited",
    "internal_error",
}


def test_every_code_has_a_constant_named_after_it() -> None:
    assert ErrorCode.ALL == CODES
    for code in CODES:
        assert getattr(ErrorCode, code.upper()) == code


def test_error_code_is_a_namespace() -> None:
    with pytest.raises(TypeError):
        ErrorCode()


def test_the_readme_documents_every_code() -> None:
    text = README.read_text()
    for code in CODES:
        assert f"`{code}`" in text and f"ErrorCode.{code.upper()}" in text, code
