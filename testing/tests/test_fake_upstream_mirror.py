"""The fake upstream's `mirror` behaviour (added for the conformance suite)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from poolswitch_testing.fake_upstream import BehaviourError, FakeUpstream, validate_behaviour


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream({"sk-a": "a"}) as upstream:
        yield upstream


def test_mirror_answers_the_body_and_content_type(fake: FakeUpstream) -> None:
    fake.script("a", {"kind": "mirror", "headers": {"X-Note": "m"}})
    body = "héllo ✓".encode() + bytes(range(256))
    response = httpx.post(
        f"{fake.url}/v1/x",
        content=body,
        headers={"Authorization": "Bearer sk-a", "Content-Type": "application/x-thing"},
    )
    assert response.status_code == 200
    assert response.content == body
    assert response.headers["content-type"] == "application/x-thing"
    assert response.headers["x-note"] == "m"
    assert "sk-a" not in response.text


def test_mirror_without_content_type_is_octet_stream(fake: FakeUpstream) -> None:
    fake.script("a", {"kind": "mirror", "status": 201})
    response = httpx.put(
        f"{fake.url}/u", content=b"\x00\x01", headers={"Authorization": "Bearer sk-a"}
    )
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.content == b"\x00\x01"


def test_mirror_takes_only_the_common_fields() -> None:
    validate_behaviour({"kind": "mirror", "status": 200, "headers": {}, "delay": 0.1})
    with pytest.raises(BehaviourError, match="json"):
        validate_behaviour({"kind": "mirror", "json": {}})
