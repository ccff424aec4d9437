"""Host and Origin checks, the CORS answers, and the allowed_hosts / allowed_origins settings."""

from __future__ import annotations

from typing import Any

import pytest

from poolswitch.config import parse_config
from poolswitch.errors import BadRequest, ConfigError, Forbidden
from poolswitch.origins import (
    Gate,
    cors_headers,
    host_name,
    is_loopback,
    is_preflight,
    preflight_headers,
)

APP = "https://app.example.com"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("localhost", "localhost"),
        ("LocalHost:8080", "localhost"),
        ("127.0.0.1:80", "127.0.0.1"),
        ("[::1]:8080", "[::1]"),
        ("[::1]", "[::1]"),
        ("::1", "[::1]"),
        ("::", "[::]"),
        ("proxy.internal.", "proxy.internal"),
        ("0.0.0.0", "0.0.0.0"),
    ],
)
def test_host_name(value: str, expected: str) -> None:
    assert host_name(value) == expected


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("proxy.internal", False),
        ("127.0.0.1.evil.example", False),
    ],
)
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


def gate(
    listen: str = "127.0.0.1", hosts: tuple[str, ...] = (), origins: tuple[str, ...] = ()
) -> Gate:
    return Gate(listen, hosts, origins)


def h(*pairs: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    return [(n.encode(), v.encode()) for n, v in pairs]


@pytest.mark.parametrize(
    ("listen", "hosts", "host", "allowed"),
    [
        ("127.0.0.1", (), "127.0.0.1:8080", True),
        ("127.0.0.1", (), "localhost:8080", True),
        ("127.0.0.1", (), "LOCALHOST", True),
        ("127.0.0.1", (), "[::1]:8080", True),
        ("127.0.0.1", (), "evil.example:8080", False),  # DNS rebinding
        ("127.0.0.1", (), "127.0.0.1.evil.example", False),
        ("127.0.0.1", (), "[::1", False),
        ("127.0.0.1", (), "", False),
        ("10.0.0.5", (), "10.0.0.5:8080", True),  # the listen address
        ("0.0.0.0", (), "0.0.0.0:8080", False),  # a wildcard adds no name
        ("0.0.0.0", (), "10.0.0.5:8080", False),
        ("0.0.0.0", ("proxy.internal",), "Proxy.Internal:8080", True),
        ("0.0.0.0", ("proxy.internal",), "localhost:8080", True),  # loopback always
        ("::", ("[fd00::5]",), "[fd00::5]:8080", True),
        ("::", (), "[::]:8080", False),
        ("0.0.0.0", ("*",), "anything.example", True),
    ],
)
def test_host_check(listen: str, hosts: tuple[str, ...], host: str, allowed: bool) -> None:
    headers = h(("host", host), ("user-agent", "x"))
    if allowed:
        assert gate(listen, hosts).check(headers) is None
    else:
        with pytest.raises(BadRequest):
            gate(listen, hosts).check(headers)
        assert gate(listen, hosts).check(headers, host=False) is None  # /health


def test_no_host_header_passes() -> None:
    assert gate().check(h(("user-agent", "http/1.0 client"))) is None


@pytest.mark.parametrize(
    ("origins", "origin", "allowed"),
    [
        ((), "https://evil.example", False),
        ((), "null", False),
        ((), "http://127.0.0.1:8080", False),  # even our own address: no browser by default
        ((APP,), APP, True),
        ((APP,), "HTTPS://APP.EXAMPLE.COM", True),
        ((APP,), "http://app.example.com", False),
        ((APP,), APP + ":8443", False),
    ],
)
def test_origin_check(origins: tuple[str, ...], origin: str, allowed: bool) -> None:
    headers = h(("host", "localhost"), ("origin", origin))
    if allowed:
        assert gate(origins=origins).check(headers) == origin.encode()
    else:
        with pytest.raises(Forbidden):
            gate(origins=origins).check(headers)


def test_host_is_checked_before_origin() -> None:
    with pytest.raises(BadRequest):
        gate().check(h(("origin", "https://evil.example"), ("host", "evil.example")))


def test_cors_answers() -> None:
    origin = APP.encode()
    assert (b"access-control-allow-origin", origin) in cors_headers(origin)
    asked = h(
        ("access-control-request-method", "POST"),
        ("access-control-request-headers", "authorization, content-type"),
    )
    assert is_preflight("OPTIONS", asked)
    assert not is_preflight("OPTIONS", [])
    assert not is_preflight("POST", asked)
    answer = dict(preflight_headers(origin, asked))
    assert answer[b"access-control-allow-origin"] == origin
    assert answer[b"access-control-allow-methods"] == b"POST"
    assert answer[b"access-control-allow-headers"] == b"authorization, content-type"
    assert answer[b"access-control-max-age"] == b"600"


BASE: dict[str, Any] = {
    "upstream_base_url": "https://api.example.com",
    "keys": [{"id": "a", "value": "sk-a"}],
}


def test_allowed_hosts_and_origins_settings() -> None:
    doc = {
        **BASE,
        "allowed_hosts": ["Proxy.Internal", "fd00::5", "[fd00::6]", "*"],
        "allowed_origins": ["HTTPS://App.Example.com", "http://localhost:3000"],
    }
    cfg = parse_config(doc, env={})
    assert cfg.allowed_hosts == ("proxy.internal", "[fd00::5]", "[fd00::6]", "*")
    assert cfg.allowed_origins == ("https://app.example.com", "http://localhost:3000")
    assert (
        parse_config(BASE, env={}).allowed_hosts,
        parse_config(BASE, env={}).allowed_origins,
    ) == ((), ())


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"allowed_hosts": "proxy"}, "allowed_hosts: must be a list of strings"),
        ({"allowed_hosts": ["proxy:8080"]}, "allowed_hosts[0]: must be a host name"),
        ({"allowed_hosts": ["a b"]}, "allowed_hosts[0]: must be a host name"),
        ({"allowed_hosts": [3]}, "allowed_hosts[0]: must be a host name"),
        (
            {"allowed_origins": [APP + "/"]},
            "allowed_origins[0]: must be an origin (scheme://host[:port])",
        ),
        (
            {"allowed_origins": ["app.example.com"]},
            "allowed_origins[0]: must be an origin (scheme://host[:port])",
        ),
        (
            {"allowed_origins": ["*"]},
            "allowed_origins[0]: must be an origin (scheme://host[:port])",
        ),
        (
            {"allowed_origins": [APP + ":99999"]},
            "allowed_origins[0]: must be an origin (scheme://host[:port])",
        ),
        (
            {"allowed_origins": ["http://["]},  # urlsplit raises on it: still one clear line
            "allowed_origins[0]: must be an origin (scheme://host[:port])",
        ),
    ],
)
def test_allowed_hosts_and_origins_problems(changes: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({**BASE, **changes}, env={})
    assert list(info.value.problems) == [expected]


def test_allowed_host_values_are_remembered_within_a_bound() -> None:
    g = gate()
    for port in range(200):
        assert g.check([(b"host", b"localhost:%d" % port)]) is None
        with pytest.raises(BadRequest):
            g.check([(b"host", b"evil.example:%d" % port)])
    assert len(g._seen) == 64
    with pytest.raises(BadRequest):
        g.check([(b"host", b"evil.example:1")])
