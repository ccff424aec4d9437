"""The secret invariant: no key value in anything the proxy answers or logs.

The runner checks every result of every case (the client's whole JSON line, plus any base64 body
decoded) and the proxy's log, and fails the case naming the key by id. It also redacts every key
value from what it prints itself, so a failure message never shows one either.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Mapping
from typing import Any

__all__ = ["in_result", "in_text", "redact"]


def in_text(text: str | bytes, secrets: Mapping[str, str]) -> list[str]:
    """The names (key ids) of the secrets that occur in `text`, sorted."""
    if isinstance(text, bytes):
        return sorted(name for name, value in secrets.items() if value.encode() in text)
    return sorted(name for name, value in secrets.items() if value in text)


def in_result(line: str, result: Mapping[str, Any], secrets: Mapping[str, str]) -> list[str]:
    """The secrets found in a client's answer line or in its decoded binary body."""
    found = set(in_text(line, secrets))
    body = result.get("body_b64")
    if isinstance(body, str):
        with contextlib.suppress(binascii.Error, ValueError):
            found |= set(in_text(base64.b64decode(body), secrets))
    return sorted(found)


def redact(text: str, secrets: Mapping[str, str]) -> str:
    """`text` with every secret value replaced by `<secret:NAME>`."""
    for name, value in sorted(secrets.items(), key=lambda item: -len(item[1])):
        if value:
            text = text.replace(value, f"<secret:{name}>")
    return text
