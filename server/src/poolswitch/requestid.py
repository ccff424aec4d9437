"""The request id: one per request, in its access-log line, its answer's headers, the proxy's
error body, and the request sent upstream (`x-request-id`), so that a caller's report, the
proxy's log and the provider's log can be matched.

A caller's own `x-request-id` is kept when it is sane: 1-128 characters of `[A-Za-z0-9._:-]`
and holding no secret the proxy knows (a key value, a caller, admin or metrics token). Any other
value (control characters, a header-splitting CRLF, 10 kB, a key) is replaced, never echoed or
logged. Otherwise one is made: 16 hex digits from a per-process PRNG seeded by the OS (about
0.2 µs; `os.urandom(8).hex()` costs twice that). It identifies, it does not authenticate: it
needs to be unique, not unguessable.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable

from poolswitch.redact import Redactor

HEADER = b"x-request-id"
HEADER_NAME = "x-request-id"
OWN_HEADER = b"x-poolswitch-request-id"
"""The proxy's id on every answer. An upstream's own `x-request-id` (OpenAI's, say) is relayed
unchanged; the answer carries `x-request-id: <the proxy's id>` only where the upstream sent none
(and on the proxy's own answers), so this header is the one to read."""
MAX_LENGTH = 128
_SANE = re.compile(rb"[A-Za-z0-9._:-]{1,%d}" % MAX_LENGTH)


class RequestIds:
    """Takes a caller's request id or makes one. `secrets`: the values no id may contain;
    `rng`: injected for tests (default: seeded from the OS)."""

    __slots__ = ("_bits", "_secrets")

    def __init__(self, secrets: Iterable[str] = (), rng: random.Random | None = None) -> None:
        known = [(value, "-") for value in secrets if value]
        self._secrets = Redactor(known) if known else None
        self._bits = (rng or random.Random()).getrandbits

    def new(self) -> str:
        """A fresh id: 16 lowercase hex digits."""
        return "%016x" % self._bits(64)  # noqa: UP031 (faster than an f-string here)

    def take(self, given: bytes | None) -> str:
        """The caller's id (`given`, the raw header value) if sane, else a fresh one."""
        if given is None or _SANE.fullmatch(given) is None:
            return self.new()
        if self._secrets is not None and self._secrets.redact(given) is not given:
            return self.new()
        return given.decode("ascii")
