"""decoding: every coding undone, bounded, piece by piece; unknown or corrupt codings refused."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest

from poolswitch.decoding import Decoder, accept_encoding, codings, decode
from poolswitch.errors import DecodeError

BODY = b'{"error": {"type": "insufficient_quota", "code": "insufficient_quota"}}' * 20

ENCODED = [
    ("gzip", gzip.compress(BODY)),
    ("x-gzip", gzip.compress(BODY)),
    ("deflate", zlib.compress(BODY)),
    ("deflate", zlib.compress(BODY)[2:-4]),  # raw deflate, as some servers send it
    ("br", brotli.compress(BODY)),
    ("gzip, br", brotli.compress(gzip.compress(BODY))),
    ("identity", BODY),
    (None, BODY),
    ("", BODY),
]


@pytest.mark.parametrize(("encoding", "data"), ENCODED)
def test_decode_undoes_every_coding(encoding: str | None, data: bytes) -> None:
    assert decode(data, encoding, 1 << 20) == (BODY, True)


@pytest.mark.parametrize(("encoding", "data"), ENCODED)
def test_decoder_gives_the_same_bytes_piece_by_piece(encoding: str | None, data: bytes) -> None:
    decoder = Decoder(encoding)
    out = b"".join(b"".join(decoder.feed(data[i : i + 7])) for i in range(0, len(data), 7))
    assert out + b"".join(decoder.flush()) == BODY
    assert decoder.identity == (encoding in (None, "", "identity"))


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("br", brotli.compress)],
)
def test_a_decompression_bomb_stops_at_the_limit(encoding: str, compress: object) -> None:
    assert callable(compress)
    bomb = compress(b"\0" * (64 << 20))
    assert len(bomb) < 1 << 20
    out, complete = decode(bomb, encoding, 1 << 20)
    assert len(out) == 1 << 20
    assert not complete


@pytest.mark.parametrize(
    ("encoding", "data"),
    [("gzip", b"not gzip"), ("br", b"not brotli"), ("zstd", b"x"), ("gzip, lzma", b"x")],
)
def test_corrupt_or_unknown_codings_are_refused(encoding: str, data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(data, encoding, 1000)


def test_codings_are_listed_in_the_order_applied() -> None:
    assert codings("gzip, identity, BR") == ["gzip", "br"]
    assert codings(None) == []


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("gzip, deflate", "gzip, deflate"),
        ("gzip, deflate, br, zstd", "gzip, deflate, br"),
        ("br;q=1.0, gzip;q=0.8", "br;q=1.0, gzip;q=0.8"),
        ("zstd", "identity"),
        ("*", "gzip, deflate, br"),
    ],
)
def test_accept_encoding_keeps_only_what_can_be_read(given: str, sent: str) -> None:
    assert accept_encoding(given) == sent
