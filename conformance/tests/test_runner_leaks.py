"""runner.leaks: the secret invariant and redaction."""

from __future__ import annotations

import base64
import json

from poolswitch_testing.conformance.leaks import in_result, in_text, redact

SECRETS = {"alpha": "sk-conf-alpha-0123", "beta": "sk-conf-beta-4567"}


def test_in_text_names_the_keys_found() -> None:
    assert in_text("nothing here", SECRETS) == []
    assert in_text("x sk-conf-beta-4567 and sk-conf-alpha-0123", SECRETS) == ["alpha", "beta"]
    assert in_text(b"..sk-conf-alpha-0123..", SECRETS) == ["alpha"]


def test_in_result_decodes_binary_bodies() -> None:
    body = base64.b64encode(b"\x00key=sk-conf-beta-4567\xff").decode()
    result = {"status": 200, "body_b64": body}
    assert in_result(json.dumps(result), result, SECRETS) == ["beta"]
    assert in_result("{}", {"body_b64": "not base64!"}, SECRETS) == []


def test_redact_replaces_every_value() -> None:
    text = "Bearer sk-conf-alpha-0123 / sk-conf-beta-4567 / sk-conf-alpha-0123"
    assert redact(text, SECRETS) == "Bearer <secret:alpha> / <secret:beta> / <secret:alpha>"


def test_redact_prefers_the_longest_value() -> None:
    assert redact("abcdef", {"short": "abc", "long": "abcdef"}) == "<secret:long>"
