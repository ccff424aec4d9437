"""The incremental server-sent events decoder."""

from __future__ import annotations

import json

import pytest

from poolswitch_client import ServerSentEvent
from poolswitch_client._sse import SSEDecoder


def decode(*chunks: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    return events + decoder.close()


def test_one_event() -> None:
    assert decode(b"data: hello\n\n") == [ServerSentEvent(data="hello")]


def test_event_name_id_retry_and_multiline_data() -> None:
    stream = b"event: delta\nid: 7\nretry: 1500\ndata: one\ndata: two\n\n"
    assert decode(stream) == [ServerSentEvent(data="one\ntwo", event="delta", id="7", retry=1500)]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending(newline: bytes) -> None:
    stream = newline.join([b"event: a", b"data: 1", b"", b"data: 2", b"", b""])
    assert decode(stream) == [ServerSentEvent("1", "a"), ServerSentEvent("2")]


def test_comments_and_unknown_fields_are_ignored() -> None:
    stream = b": keep-alive\nfoo: bar\ndata: x\n: another\n\n"
    assert decode(stream) == [ServerSentEvent(data="x")]


def test_field_value_rules() -> None:
    # no colon: the whole line is the name and the value is empty; only one space is stripped
    stream = b"data\n\ndata:x\n\ndata:  y\n\n"
    assert [e.data for e in decode(stream)] == ["", "x", " y"]


def test_event_without_data_is_not_dispatched_and_resets_the_name() -> None:
    stream = b"event: ping\n\ndata: after\n\n"
    assert decode(stream) == [ServerSentEvent(data="after", event="message")]


def test_id_persists_until_changed_and_ignores_nul() -> None:
    stream = b"id: 1\ndata: a\n\ndata: b\n\nid: x\x00y\ndata: c\n\nid\ndata: d\n\n"
    assert [(e.data, e.id) for e in decode(stream)] == [
        ("a", "1"),
        ("b", "1"),
        ("c", "1"),
        ("d", ""),
    ]


def test_invalid_retry_is_ignored() -> None:
    assert decode(b"retry: 1s\ndata: a\n\nretry: \xc2\xb2\ndata: b\n\n")[1].retry is None


def test_unfinished_event_at_the_end_is_discarded() -> None:
    assert decode(b"data: complete\n\ndata: cut short\n") == [ServerSentEvent("complete")]


def test_bom_is_dropped_only_at_the_start() -> None:
    events = decode(b"\xef\xbb", b"\xbfdata: a\n\ndata: \xef\xbb\xbfb\n\n")
    assert [e.data for e in events] == ["a", "\ufeffb"]


def test_invalid_utf8_is_replaced() -> None:
    assert decode(b"data: \xff\n\n")[0].data == "\ufffd"


SAMPLE = (
    "event: delta\r\nid: 1\r\ndata: h\u00e9llo \u20ac\r\ndata: second\r\n\r\n"
    ': comment\rdata: {"a": 1}\r\r'
    "data: last\n\n"
).encode()
EXPECTED = [
    ServerSentEvent("h\u00e9llo \u20ac\nsecond", "delta", "1"),
    ServerSentEvent('{"a": 1}', "message", "1"),
    ServerSentEvent("last", "message", "1"),
]


def test_any_split_into_two_chunks_gives_the_same_events() -> None:
    assert decode(SAMPLE) == EXPECTED
    for cut in range(1, len(SAMPLE)):
        assert decode(SAMPLE[:cut], SAMPLE[cut:]) == EXPECTED, f"split at byte {cut}"


def test_byte_by_byte_gives_the_same_events() -> None:
    assert decode(*(SAMPLE[i : i + 1] for i in range(len(SAMPLE)))) == EXPECTED


def test_events_come_out_as_soon_as_they_are_complete() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.feed(b"\n") == [ServerSentEvent("a")]
    assert decoder.feed(b"data: b\r") == []
    assert decoder.feed(b"\r") == [ServerSentEvent("b")]
    assert decoder.feed(b"\n") == []  # completes the CRLF begun by the CR: no extra line
    assert decoder.close() == []


def test_json() -> None:
    assert ServerSentEvent('{"x": [1]}').json() == {"x": [1]}
    with pytest.raises(json.JSONDecodeError):
        ServerSentEvent("[DONE]").json()
