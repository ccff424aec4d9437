"""The decision trace: `x-poolswitch-trace: 1` on a request from an authorised caller asks for
a response header of the same name listing each attempt in order, as `<key id> <outcome>
<wait before it>ms`, comma-separated, e.g. `a rate_limited 0ms, b success 0ms`; `none` when no
attempt was made. Key ids and outcome names only (classifier.Outcome), never a value. The
request header is the proxy's own: it is never forwarded upstream.

Off (the header absent), a request carries `None` instead of a `Trace` and each hook in the
request loop costs one test of it.
"""

from __future__ import annotations

HEADER = b"x-poolswitch-trace"
ASK = b"1"
NONE = b"none"


class Trace:
    """The attempts of one request, as the trace header shows them."""

    __slots__ = ("_steps", "_waited")

    def __init__(self) -> None:
        self._steps: list[str] = []
        self._waited = 0.0

    def wait(self, seconds: float) -> None:
        """The request waited `seconds` (a backoff or a queue) before its next attempt."""
        self._waited += seconds

    def attempt(self, key_id: str, outcome: str) -> None:
        """One attempt on key `key_id` ended with `outcome`."""
        self._steps.append(f"{key_id} {outcome} {round(self._waited * 1000)}ms")
        self._waited = 0.0

    def header(self) -> tuple[bytes, bytes]:
        """The response header."""
        value = ", ".join(self._steps).encode("ascii", "replace") if self._steps else NONE
        return HEADER, value

    def __repr__(self) -> str:
        return f"Trace({', '.join(self._steps)!r})"
