"""Host and Origin checks: only the proxy's own names, and no browser page unless listed.

- `Host`: the name part (port dropped, lower-cased, IPv6 in brackets) must be the listen
  address, `localhost`, `127.0.0.1`, `[::1]` or one of `allowed_hosts` (`*` turns the check
  off). A wildcard listen address (`0.0.0.0`, `::`) adds no name: list the names callers use.
  A request with no Host (HTTP/1.0) passes: browsers always send one, so DNS rebinding cannot
  hide behind its absence. Refused: `400 bad_request`.
- `Origin`: a request that carries one (a browser) is refused with `403 forbidden` unless the
  origin is one of `allowed_origins`. For a listed origin the answer gets
  `Access-Control-Allow-Origin` (and `Vary: Origin`), and a CORS preflight (`OPTIONS` with
  `Access-Control-Request-Method`) is answered here, never forwarded.

Pure: headers in, a verdict out. The caller (app.py, proxy.py) sends the answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from poolswitch.errors import BadRequest, Forbidden

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
WILDCARD_ADDRESSES = frozenset({"0.0.0.0", "::", "[::]", ""})
PREFLIGHT_MAX_AGE = b"600"
SEEN_LIMIT = 64
"""Allowed Host values remembered as sent (name and port), so most requests skip the parsing."""
EXPOSED_HEADERS = (
    b"x-poolswitch-key-id, x-poolswitch-attempts, x-poolswitch-error, retry-after, "
    b"x-request-id, x-poolswitch-request-id, x-poolswitch-trace"
)


def host_name(value: str) -> str:
    """`Example.COM:8080` -> `example.com`, `[::1]:80` -> `[::1]`, `::1` -> `[::1]`."""
    name = value.strip().lower()
    if name.startswith("["):
        end = name.find("]")
        return name[: end + 1] if end > 0 else name
    if name.count(":") > 1:
        return f"[{name}]"  # a bare IPv6 address (a listen address, never a Host header)
    return name.partition(":")[0].rstrip(".")


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    name = host_name(host)
    return name in LOOPBACK_NAMES or (name.startswith("127.") and name.count(".") == 3)


class Gate:
    """The Host and Origin checks, with the allowed sets built once at start-up."""

    __slots__ = ("_any_host", "_hosts", "_origins", "_seen")

    def __init__(
        self, listen_host: str, allowed_hosts: Iterable[str], allowed_origins: Iterable[str]
    ) -> None:
        hosts = set(LOOPBACK_NAMES)
        listen = host_name(listen_host)
        if listen not in WILDCARD_ADDRESSES and listen != "[::]":
            hosts.add(listen)
        hosts.update(host_name(h) for h in allowed_hosts)
        self._any_host = "*" in hosts
        self._hosts = frozenset(h.encode("latin-1") for h in hosts)
        self._origins = frozenset(o.lower().encode("latin-1") for o in allowed_origins)
        self._seen: set[bytes] = set()

    def check(self, headers: Sequence[tuple[bytes, bytes]], *, host: bool = True) -> bytes | None:
        """None for a request with no Origin; the (allowed) origin for a browser's request.

        Raises BadRequest for a Host that is not ours, Forbidden for an Origin not listed.
        `host=False` skips the Host check (`/health`, for load balancers that send an IP).
        """
        origin: bytes | None = None
        check_host = host and not self._any_host
        for name, value in headers:
            if name == b"host":
                if check_host and value not in self._seen and not self._host_ok(value):
                    raise BadRequest("the Host header names a host this proxy does not serve")
            elif name == b"origin":
                origin = value
        if origin is not None and origin.strip().lower() not in self._origins:
            raise Forbidden("requests from a browser origin are refused (allowed_origins)")
        return origin

    def _host_ok(self, value: bytes) -> bool:
        name = value.strip().lower()
        if name.startswith(b"["):
            name = name[: name.find(b"]") + 1]
        else:
            name = name.partition(b":")[0].rstrip(b".")
        ok = name in self._hosts
        if ok and len(self._seen) < SEEN_LIMIT:
            self._seen.add(value)  # the exact Host values callers send: no parsing next time
        return ok


def cors_headers(origin: bytes) -> list[tuple[bytes, bytes]]:
    """Headers added to every answer to an allowed origin."""
    return [
        (b"access-control-allow-origin", origin),
        (b"access-control-expose-headers", EXPOSED_HEADERS),
        (b"vary", b"Origin"),
    ]


def is_preflight(method: str, headers: Sequence[tuple[bytes, bytes]]) -> bool:
    return method == "OPTIONS" and any(
        name == b"access-control-request-method" for name, _ in headers
    )


def preflight_headers(
    origin: bytes, headers: Sequence[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """The answer to a CORS preflight from an allowed origin: the method and headers it asked
    for are allowed (the caller token still decides what the request itself may do)."""
    asked = {name: value for name, value in headers}
    out = [
        (b"access-control-allow-origin", origin),
        (b"access-control-allow-methods", asked.get(b"access-control-request-method", b"POST")),
        (b"access-control-max-age", PREFLIGHT_MAX_AGE),
        (b"vary", b"Origin"),
        (b"content-length", b"0"),
    ]
    if b"access-control-request-headers" in asked:
        out.append((b"access-control-allow-headers", asked[b"access-control-request-headers"]))
    return out
