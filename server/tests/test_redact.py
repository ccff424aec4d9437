"""redact: every wire form of every key, one pass, across pieces; error answers made safe."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from urllib.parse import quote, quote_plus

import brotli
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poolswitch.errors import TransportError
from poolswitch.redact import (
    HOLD_LIMIT,
    UNDECODABLE_BODY,
    Redactor,
    StreamRedactor,
    wire_forms,
)

PLUS = "sk-ab+cd/ef=gh"  # needs percent-encoding
PLAIN = "sk-proj-0123456789abcdef"
R = Redactor([(PLUS, "plus"), (PLAIN, "plain"), ("sk-proj-0123", "short")])


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", b""),
        (b"nothing to see", b"nothing to see"),
        (b"key sk-proj-0123456789abcdef.", b"key plain."),
        (b"Bearer sk-proj-0123456789abcdef", b"Bearer plain"),
        (b"sk-proj-0123 alone", b"short alone"),  # a key that starts another one
        (b"sk-proj-0123456789abcde", b"short456789abcde"),  # the longer one is not complete
        (b"sk-ab+cd/ef=gh", b"plus"),
        (b"?key=sk-ab%2Bcd%2Fef%3Dgh&x=1", b"?key=plus&x=1"),  # quote(safe="")
        (b"/v1?key=sk-ab%2Bcd/ef%3Dgh", b"/v1?key=plus"),  # quote()
        (b"key=sk-ab%2bcd%2fef%3dgh", b"key=plus"),  # lower-case hex digits
        (b'"sk-ab+cd\\/ef=gh"', b'"plus"'),  # JSON-escaped slash
        (b"sk-proj-0123456789abcdefsk-proj-0123456789abcdef", b"plainplain"),
        (b"\xff\x00sk-proj-0123456789abcdef\xfe", b"\xff\x00plain\xfe"),
    ],
)
def test_redact_table(data: bytes, expected: bytes) -> None:
    assert R.redact(data) == expected
    assert _streamed(R, [data[i : i + 3] for i in range(0, len(data), 3)]) == expected


def test_quote_plus_form() -> None:
    value = "a b+c"  # only quote_plus turns the space into "+"
    redactor = Redactor([(value, "k")])
    assert redactor.redact(quote_plus(value).encode()) == b"k"
    assert quote(value, safe="") in wire_forms(value)


def test_nothing_to_redact_returns_the_same_object() -> None:
    data = b"x" * 10_000
    assert R.redact(data) is data
    headers = [(b"content-type", b"application/json"), (b"x-request-id", b"req_1")]
    assert R.redact_headers(headers) is headers


def test_headers_are_redacted_and_a_name_holding_a_key_is_dropped() -> None:
    headers = [
        (b"x-echo", b"Bearer sk-proj-0123456789abcdef"),
        (b"x-sk-proj-0123456789abcdef", b"1"),
        (b"location", b"https://x/v1?key=sk-ab%2Bcd%2Fef%3Dgh"),
    ]
    assert R.redact_headers(headers) == [
        (b"x-echo", b"Bearer plain"),
        (b"location", b"https://x/v1?key=plus"),
    ]


def test_repr_shows_no_secret() -> None:
    assert "sk-" not in repr(R)


def test_stream_holds_back_less_than_the_longest_form() -> None:
    stream = R.stream()
    first = stream.feed(b"a" * 100 + b"sk-proj-0123456789ab")  # a key cut in two
    assert first == b"a" * (120 - R.window)
    rest = stream.feed(b"cdef tail")
    assert first + rest + stream.flush() == b"a" * 100 + b"plain tail"


def test_stream_without_secrets_is_a_pass_through() -> None:
    empty = Redactor([])
    stream = empty.stream()
    assert stream.feed(b"abc") == b"abc"
    assert stream.flush() == b""


@pytest.mark.parametrize("run_filter", [False, True])
def test_many_keys_with_no_common_start(run_filter: bool) -> None:
    import random
    import string

    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits
    keys = [("".join(rng.choice(alphabet) for _ in range(32)), f"k{i}") for i in range(300)]
    redactor = Redactor(keys, run_filter=run_filter)
    text = " ".join(f"{value} word" for value, _ in keys[::7]).encode()
    expected = " ".join(f"{key_id} word" for _, key_id in keys[::7]).encode()
    assert redactor.redact(text) == expected
    assert _streamed(redactor, [text[i : i + 50] for i in range(0, len(text), 50)]) == expected


# ---- properties: streaming == whole, and no secret survives ----

_SECRET_CHARS = "abcdef0123+/=%-_."
_secrets = st.lists(
    st.text(_SECRET_CHARS, min_size=4, max_size=24), min_size=1, max_size=30, unique=True
)


@st.composite
def _cases(draw: st.DrawFn) -> tuple[list[tuple[str, str]], bytes, list[int]]:
    values = draw(_secrets)
    keys = [
        (value, "K" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[i % 26] * (1 + i // 26))
        for i, value in enumerate(values)
    ]  # ids share no byte with a secret
    forms = sorted({form for value in values for form in wire_forms(value)})
    parts = draw(
        st.lists(st.one_of(st.sampled_from(forms), st.text(_SECRET_CHARS + " x\n")), max_size=20)
    )
    body = "".join(parts).encode()
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=10)))
    return keys, body, cuts


@settings(max_examples=300, deadline=None, database=None)
@given(_cases(), st.booleans())
def test_streaming_equals_whole_and_no_secret_survives(
    case: tuple[list[tuple[str, str]], bytes, list[int]], run_filter: bool
) -> None:
    keys, body, cuts = case
    redactor = Redactor(keys, run_filter=run_filter)
    whole = redactor.redact(body)
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    assert _streamed(redactor, pieces) == whole
    for value, _ in keys:
        for form in wire_forms(value):
            assert form.encode() not in whole


@settings(max_examples=100, deadline=None, database=None)
@given(st.binary(max_size=300), _secrets)
def test_bytes_without_a_secret_pass_unchanged(body: bytes, values: list[str]) -> None:
    redactor = Redactor([(v, f"K{i}") for i, v in enumerate(values)])
    if not any(form.encode() in body for v in values for form in wire_forms(v)):
        assert redactor.redact(body) is body
        assert _streamed(redactor, [body[:7], body[7:]]) == body


# ---- error answers ----

ERROR = json.dumps({"error": {"message": f"Incorrect API key provided: {PLAIN}"}}).encode()
SAFE = json.dumps({"error": {"message": "Incorrect API key provided: plain"}}).encode()
HEADERS = [(b"content-type", b"application/json"), (b"etag", b'"abc"'), (b"x-id", b"1")]


@pytest.mark.parametrize(
    ("encoding", "data"),
    [(None, ERROR), ("gzip", gzip.compress(ERROR)), ("br", brotli.compress(ERROR))],
)
def test_held_error_is_decoded_and_redacted(encoding: str | None, data: bytes) -> None:
    headers = HEADERS + ([(b"content-encoding", encoding.encode())] if encoding else [])
    held = R.held_error(headers, data, encoding)
    assert held.body == SAFE
    assert held.fits
    assert held.headers == [(b"content-type", b"application/json"), (b"x-id", b"1")]


def test_held_error_unchanged_keeps_its_headers() -> None:
    held = R.held_error(HEADERS, b'{"error": "no key here"}', None)
    assert held == (HEADERS, b'{"error": "no key here"}', True)


def test_held_error_that_decodes_past_the_limit_is_cut() -> None:
    data = gzip.compress(b"x" * (HOLD_LIMIT + 10))
    held = R.held_error([(b"content-encoding", b"gzip")], data, "gzip")
    assert not held.fits
    assert len(held.body) == HOLD_LIMIT


@pytest.mark.parametrize(
    ("encoding", "data"), [("gzip", b"not gzip at all"), ("zstd", b"\x28\xb5\x2f\xfd")]
)
def test_held_error_that_cannot_be_decoded_is_not_relayed(encoding: str, data: bytes) -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-encoding", encoding.encode())]
    held = R.held_error(headers, data, encoding)
    assert held.body == UNDECODABLE_BODY
    assert held.headers == [(b"content-type", b"application/json")]


def test_error_stream_decodes_and_redacts_across_pieces() -> None:
    data = gzip.compress(b"x" * 200_000 + ERROR + b"y" * 100)
    pieces = [data[i : i + 1000] for i in range(0, len(data), 1000)]
    headers = [(b"content-encoding", b"gzip"), (b"content-length", b"9"), (b"x-id", b"1")]
    out_headers, body = R.error_stream(headers, pieces[0], _aiter(pieces[1:]), "gzip")
    assert out_headers == [(b"x-id", b"1")]
    assert asyncio.run(_join(body)) == b"x" * 200_000 + SAFE + b"y" * 100


def test_error_stream_with_an_unknown_coding_sends_the_replacement() -> None:
    out_headers, body = R.error_stream([(b"content-encoding", b"zstd")], b"?", _aiter([]), "zstd")
    assert out_headers == [(b"content-type", b"application/json")]
    assert asyncio.run(_join(body)) == UNDECODABLE_BODY


def test_error_stream_that_turns_out_corrupt_breaks_off() -> None:
    good = gzip.compress(b"a" * 100)
    _, body = R.error_stream([], good[:20], _aiter([b"garbage" * 10]), "gzip")
    with pytest.raises(TransportError):
        asyncio.run(_join(body))


def _streamed(redactor: Redactor, pieces: list[bytes]) -> bytes:
    stream: StreamRedactor = redactor.stream()
    return b"".join(stream.feed(p) for p in pieces) + stream.flush()


async def _aiter(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


async def _join(pieces: AsyncIterator[bytes]) -> bytes:
    return b"".join([piece async for piece in pieces])
