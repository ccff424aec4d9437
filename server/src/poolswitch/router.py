"""Which pool a request is for: the `x-poolswitch-pool` header, else the longest route prefix.

Pure and built once at start-up. Routes are matched against the raw request path, byte for byte
(a route is plain ASCII without `%`, so there is no decoding to disagree about): route `/openai`
takes `/openai` and `/openai/...`, not `/openaiX`; route `/` takes every path. The matched
prefix is removed before forwarding (`/openai/v1/models` -> `/v1/models`); a pool named by the
header gets the path unchanged. The seed's single-pool config is one pool at `/`.
"""

from __future__ import annotations

from collections.abc import Iterable


class Router:
    """Route table: pool names and routes, as configured (names and routes are unique)."""

    __slots__ = ("_names", "_routes", "_single")

    def __init__(self, pools: Iterable[tuple[str, str]]) -> None:
        entries = [(name, route) for name, route in pools]
        self._names = {name.encode("ascii"): name for name, _ in entries}
        # longest first, so the first match is the longest prefix
        self._routes = sorted(
            ((route.rstrip("/").encode("ascii"), name) for name, route in entries),
            key=lambda entry: len(entry[0]),
            reverse=True,
        )
        only = self._routes[0] if len(self._routes) == 1 else None
        self._single = only[1] if only is not None and only[0] == b"" else None

    def by_name(self, name: bytes) -> str | None:
        """The pool an `x-poolswitch-pool` header names, or None when there is none such."""
        return self._names.get(name.strip())

    def match(self, raw_path: bytes) -> tuple[str, bytes] | None:
        """(pool name, the path to forward) for the longest route that prefixes `raw_path`,
        or None when no route does."""
        if self._single is not None:  # one pool at "/": every path, unchanged
            return self._single, raw_path
        for prefix, name in self._routes:
            if not prefix:
                return name, raw_path
            if raw_path.startswith(prefix):
                rest = raw_path[len(prefix) :]
                if not rest:
                    return name, b"/"
                if rest[:1] in (b"/", b"?"):
                    return name, rest
        return None
