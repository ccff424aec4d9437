"""requestid: a caller's sane x-request-id is kept; anything else is replaced by a fresh one."""

from __future__ import annotations

import random

import pytest

from poolswitch.requestid import MAX_LENGTH, RequestIds

KEY = "sk-test-alpha-0001-SECRET"
TOKEN = "caller-token-0123456789"
IDS = RequestIds([KEY, TOKEN], rng=random.Random(7))


@pytest.mark.parametrize(
    "given",
    [b"req-1", b"a", b"0123456789abcdef", b"trace:span.1_x-Y", b"x" * MAX_LENGTH],
)
def test_a_sane_id_is_kept(given: bytes) -> None:
    assert IDS.take(given) == given.decode()


@pytest.mark.parametrize(
    "given",
    [
        b"",
        b"x" * (MAX_LENGTH + 1),
        b"x" * 10_000,
        b"req\r\nSet-Cookie: a=b",
        b"req 1",
        b"req/1",
        b'req"1',
        "r\u00e9q".encode(),
        b"\x00",
        KEY.encode(),
        b"before-" + KEY.encode() + b"-after",
        TOKEN.encode(),
    ],
)
def test_anything_else_is_replaced_by_a_fresh_id(given: bytes) -> None:
    taken = IDS.take(given)
    assert taken != given.decode("latin-1")
    assert len(taken) == 16 and int(taken, 16) >= 0


def test_no_header_gives_a_fresh_id_each_time() -> None:
    ids = RequestIds(rng=random.Random(1))
    made = {ids.take(None) for _ in range(1000)}
    assert len(made) == 1000
    assert all(len(i) == 16 and i == i.lower() for i in made)


def test_the_ids_follow_the_injected_rng() -> None:
    assert RequestIds(rng=random.Random(3)).new() == RequestIds(rng=random.Random(3)).new()


def test_no_secrets_means_no_secret_check() -> None:
    assert RequestIds().take(KEY.encode()) == KEY
