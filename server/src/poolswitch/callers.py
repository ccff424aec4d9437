"""Caller tokens: who is calling, read from where the caller's SDK already puts its API key.

A caller sends its token in one of these positions (every SDK has one of them):

- `x-poolswitch-token: <token>` (the PoolSwitch SDKs' `token` option);
- the pool's own auth position, `auth_header_name` with `auth_scheme`
  (`Authorization: Bearer <token>` for the OpenAI SDK, `x-api-key: <token>` for Anthropic's);
- `Authorization: Bearer <token>`, always (curl, Prometheus, any HTTP client);
- `x-api-key: <token>` and `x-goog-api-key: <token>` (Anthropic's and Gemini's SDKs);
- the `auth_query_param` (`?key=<token>`, Gemini's REST convention), when the pool has one.

A token in any position that matches identifies the caller. Every candidate is compared with
every configured token in constant time: the candidate and the tokens are hashed (SHA-256, the
tokens once at start-up) so the comparisons do not depend on their lengths, and the loop over
tokens never stops early. At most `MAX_CANDIDATES` candidates are tried per request, so a
request repeating a header cannot make the check expensive.

Pure: values in, a caller id out. `request.CALLER_CREDENTIALS` names the same headers, so none of
them is forwarded upstream.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from urllib.parse import unquote_to_bytes

NO_CALLER = "-"
"""The caller label when nobody was identified (no `callers` configured)."""

TOKEN_HEADER = b"x-poolswitch-token"
MAX_CANDIDATES = 4

_BEARER = b"bearer "
_RAW = b""


def positions(
    auth_header_name: str, auth_scheme: str | None, *, extra: bool = True
) -> dict[bytes, tuple[bytes, ...]]:
    """Header name -> the prefixes a token may follow in it (lower-case; b"" for the raw value).

    `extra=False` keeps `Authorization: Bearer` only (the built-in endpoints' admin and metrics
    tokens)."""
    table: dict[bytes, list[bytes]] = {b"authorization": [_BEARER]}
    if extra:
        table[TOKEN_HEADER] = [_RAW]
        table[b"x-api-key"] = [_RAW]
        table[b"x-goog-api-key"] = [_RAW]
        name = auth_header_name.lower().encode("latin-1")
        prefix = _RAW if auth_scheme is None else auth_scheme.lower().encode("latin-1") + b" "
        table.setdefault(name, [])
        if prefix not in table[name]:
            table[name].append(prefix)
    return {name: tuple(prefixes) for name, prefixes in table.items()}


class Callers:
    """Identifies callers by token; built once at start-up."""

    __slots__ = ("_digests", "_positions", "_query_prefix", "ids")

    def __init__(
        self,
        callers: Iterable[tuple[str, str]],
        header_positions: dict[bytes, tuple[bytes, ...]],
        query_param: str | None = None,
    ) -> None:
        entries = list(callers)
        self.ids: tuple[str, ...] = tuple(caller_id for caller_id, _ in entries)
        self._digests: tuple[tuple[bytes, str], ...] = tuple(
            (_digest(token.encode("latin-1")), caller_id) for caller_id, token in entries
        )
        self._positions = header_positions
        self._query_prefix = query_param.encode("latin-1") + b"=" if query_param else b""

    def __repr__(self) -> str:
        return f"Callers(ids={list(self.ids)!r})"

    def identify(self, headers: Sequence[tuple[bytes, bytes]], query: bytes = b"") -> str | None:
        """The id of the caller whose token the request carries, or None.

        `headers` as in an ASGI scope (names lower-cased bytes), `query` the raw query string.
        """
        positions = self._positions
        tried = 0
        for name, value in headers:
            prefixes = positions.get(name)
            if prefixes is None:
                continue
            for prefix in prefixes:
                if prefix:
                    if value[: len(prefix)].lower() != prefix:
                        continue
                    candidate = value[len(prefix) :].strip()
                else:
                    candidate = value.strip()
                if not candidate:
                    continue
                caller = self._match(candidate)
                if caller is not None:
                    return caller
                tried += 1
                if tried >= MAX_CANDIDATES:
                    return None
        prefix = self._query_prefix
        if prefix and prefix in query:
            for part in query.split(b"&"):
                if part.startswith(prefix) and len(part) > len(prefix):
                    caller = self._match(unquote_to_bytes(part[len(prefix) :]))
                    if caller is not None:
                        return caller
                    tried += 1
                    if tried >= MAX_CANDIDATES:
                        return None
        return None

    def _match(self, candidate: bytes) -> str | None:
        digest = _digest(candidate)
        found: str | None = None
        for token_digest, caller_id in self._digests:  # every token, no early exit
            if hmac.compare_digest(token_digest, digest):
                found = caller_id
        return found


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()
