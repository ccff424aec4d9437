"""The pure parts of protocol.py: the connection cap, the open-file limit and the sweep's ticks."""

from __future__ import annotations

import resource

import pytest

from poolswitch.protocol import (
    ANSWER_431,
    FD_RESERVE,
    effective_max_connections,
    raise_fd_limit,
    sweep_ticks,
)


@pytest.mark.parametrize(
    ("header", "body", "expected"),
    [
        (10, 30, (1.0, 10, 30)),  # defaults: one sweep a second
        (1, 30, (0.25, 4, 120)),
        (1, 0.5, (0.125, 8, 4)),
        (0.01, 30, (0.05, 1, 600)),  # never more than 20 sweeps a second
        (0.12, 30, (0.05, 3, 600)),  # rounded up: never before the deadline
    ],
)
def test_sweep_ticks(header: float, body: float, expected: tuple[float, int, int]) -> None:
    assert sweep_ticks(header, body) == expected


@pytest.mark.parametrize(
    ("configured", "soft", "expected"),
    [
        (1000, 65536, 1000),
        (1000, 1024, 1024 - 256 - FD_RESERVE),
        (1000, 100, 1),
        (1000, resource.RLIM_INFINITY, 1000),
    ],
)
def test_effective_max_connections(
    monkeypatch: pytest.MonkeyPatch, configured: int, soft: int, expected: int
) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (soft, resource.RLIM_INFINITY))
    assert effective_max_connections(configured, 256) == (expected, soft)


@pytest.mark.parametrize(
    ("soft", "hard", "raised"),
    [
        (1024, 20000, (1024, 20000)),
        (20000, 20000, None),  # nothing to do
        (1024, resource.RLIM_INFINITY, (1024, resource.RLIM_INFINITY)),
        (resource.RLIM_INFINITY, resource.RLIM_INFINITY, None),
    ],
)
def test_the_soft_open_file_limit_is_raised_to_the_hard_one(
    monkeypatch: pytest.MonkeyPatch, soft: int, hard: int, raised: tuple[int, int] | None
) -> None:
    set_to: list[tuple[int, int]] = []
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (soft, hard))
    monkeypatch.setattr(resource, "setrlimit", lambda _which, limits: set_to.append(limits))
    assert raise_fd_limit() == raised
    assert set_to == ([] if raised is None else [(hard, hard)])


def test_a_refused_raise_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_which: int, _limits: tuple[int, int]) -> None:
        raise ValueError("not allowed")

    monkeypatch.setattr(resource, "getrlimit", lambda _which: (1024, 4096))
    monkeypatch.setattr(resource, "setrlimit", refuse)
    assert raise_fd_limit() is None


def test_the_431_answer_is_the_wire_contract_envelope() -> None:
    head, _, body = ANSWER_431.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 ")
    assert b"x-poolswitch-error: headers_too_large\r\n" in head + b"\r\n"
    assert b"connection: close" in head
    assert b'"code": "headers_too_large"' in body
    assert f"content-length: {len(body)}".encode() in head
