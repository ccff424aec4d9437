"""Whose fault it was, through the running proxy: 401/403 storms, hanging keys, compressed
error bodies. One request must not be able to darken the pool; a bad key still goes."""

from __future__ import annotations

import gzip
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from poolswitch_testing.fake_upstream import Attempt, FakeUpstream

from conftest import KEYS, ProxyFactory, RunningProxy, make_config

INVALID_KEY = {"kind": "invalid_key"}


class PathUpstream:
    """The fake upstream, plus answers by path (whatever the key) and raw answers by key: its
    answering step is wrapped."""

    def __init__(self, fake: FakeUpstream) -> None:
        self.fake = fake
        self.url = fake.url
        self.attempts = fake.attempts
        self.paths: dict[str, dict[str, Any]] = {}
        self.raw: dict[str, tuple[int, dict[str, str], bytes]] = {}
        respond = fake._respond

        async def by_path(
            request: web.BaseRequest,
            b: dict[str, Any],
            attempt: Attempt,
            counter: int,
            received: bytes = b"",
        ) -> web.StreamResponse:
            if attempt.key_id in self.raw:
                status, headers, body = self.raw[attempt.key_id]
                return web.Response(status=status, headers=headers, body=body)
            return await respond(
                request, self.paths.get(attempt.path, b), attempt, counter, received
            )

        setattr(fake, "_respond", by_path)  # noqa: B010 - a method of the instance, replaced

    def paths_of(self, key_id: str) -> list[str]:
        return [a.path for a in self.attempts if a.key_id == key_id]


@pytest.fixture
def paths_upstream() -> Iterator[PathUpstream]:
    with FakeUpstream(KEYS) as fake:
        yield PathUpstream(fake)


@pytest.fixture
def start() -> Iterator[list[RunningProxy]]:
    started: list[RunningProxy] = []
    yield started
    for proxy in started:
        proxy.stop()


def states(proxy: RunningProxy) -> dict[str, str]:
    with proxy.client() as client:
        return {k["id"]: k["state"] for k in client.get("/status").json()["keys"]}


@pytest.mark.parametrize("provider", ["openai", "generic"])
def test_a_path_answering_401_for_every_key_disables_no_key(
    paths_upstream: PathUpstream,
    start: list[RunningProxy],
    provider: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    paths_upstream.paths["/v1/organization/users"] = INVALID_KEY
    proxy = RunningProxy(make_config(paths_upstream.url, provider=provider)).start()
    start.append(proxy)
    with proxy.client() as client:
        storm = [client.get("/v1/organization/users") for _ in range(10)]
        after = [client.post("/v1/chat/completions", json={"n": i}) for i in range(50)]
    assert {r.status_code for r in storm} == {401}
    assert all("x-poolswitch-error" not in r.headers for r in storm)  # the upstream's answer
    assert storm[0].json()["error"]["code"] == "invalid_api_key"
    assert {r.status_code for r in after} == {200}
    assert set(states(proxy).values()) == {"available"}
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert not any(value in logged for value in KEYS)  # verifications name key ids only
    verifications = [a for a in paths_upstream.attempts if a.path == "/v1/models"]
    if provider == "openai":
        assert {r.headers["x-poolswitch-attempts"] for r in storm} == {"1"}
        assert len(verifications) <= 3  # one per key, then remembered
    else:
        assert verifications == []


def test_a_key_answering_401_on_every_path_is_still_disabled(
    paths_upstream: PathUpstream, start: list[RunningProxy]
) -> None:
    paths_upstream.fake.script("a", INVALID_KEY)
    proxy = RunningProxy(make_config(paths_upstream.url, "ab", provider="openai")).start()
    start.append(proxy)
    with proxy.client() as client:
        first = client.post("/v1/chat/completions", json={})
        rest = [client.post("/v1/chat/completions", json={}) for _ in range(6)]
        key = client.get("/status").json()["keys"][0]
    assert first.status_code == 200 and first.headers["x-poolswitch-key-id"] == "b"
    assert {r.headers["x-poolswitch-key-id"] for r in rest} == {"b"}
    assert paths_upstream.paths_of("a") == ["/v1/chat/completions", "/v1/models"]
    assert (key["state"], key["reason"], key["cooldown_source"]) == (
        "disabled",
        "key_invalid",
        "confirmed: verify_path",
    )


def test_a_hanging_key_is_parked_and_requests_stop_paying_its_timeout(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    upstream.script("a", {"kind": "hang"})
    proxy = make_proxy("ab", attempt_timeout_seconds=0.4)
    with proxy.client() as client:
        slow = []
        for _ in range(3):
            started = time.monotonic()
            resp = client.get("/v1/models")
            slow.append(time.monotonic() - started)
            assert resp.status_code == 200
        assert min(slow) >= 0.4  # each paid the hanging key's timeout
        key = client.get("/status").json()["keys"][0]
        assert (key["state"], key["reason"]) == ("cooling_down", "timeout")
        started = time.monotonic()
        gets = [client.get("/v1/models") for _ in range(5)]
        posts = [client.post("/v1/chat/completions", json={}) for _ in range(5)]
        elapsed = time.monotonic() - started
    assert all(r.status_code == 200 for r in gets + posts)
    assert {r.headers["x-poolswitch-key-id"] for r in gets + posts} == {"b"}
    assert elapsed < 0.4 * 3  # no request waited for the hanging key


def test_an_upstream_hanging_for_every_key_is_an_outage_not_bad_keys(
    upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    for key in "ab":
        upstream.script(key, {"kind": "hang"})
    proxy = make_proxy("ab", attempt_timeout_seconds=0.2, request_timeout_seconds=5)
    with proxy.client() as client:
        answers = [client.post("/v1/chat/completions", json={}) for _ in range(5)]
        status = client.get("/status").json()
    assert {r.status_code for r in answers} <= {503, 504}
    assert {k["state"] for k in status["keys"]} == {"available"}
    assert status["degraded"] is True


QUOTA_BODY = {
    "error": {"message": "You exceeded your current quota", "type": "insufficient_quota"},
}
GEMINI_INVALID = {
    "error": {
        "code": 400,
        "message": "API key not valid. Please pass a valid API key.",
        "status": "INVALID_ARGUMENT",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
            }
        ],
    }
}
GZIP_JSON = {"Content-Type": "application/json", "Content-Encoding": "gzip"}


def test_a_gzip_quota_error_parks_the_key_as_a_quota(
    paths_upstream: PathUpstream, start: list[RunningProxy]
) -> None:
    paths_upstream.raw["a"] = (429, GZIP_JSON, gzip.compress(json.dumps(QUOTA_BODY).encode()))
    proxy = RunningProxy(make_config(paths_upstream.url, "ab", cooldown_seconds=900)).start()
    start.append(proxy)
    with proxy.client() as client:
        resp = client.post("/v1/chat/completions", json={}, headers={"Accept-Encoding": "gzip"})
        key = client.get("/status").json()["keys"][0]
    assert resp.status_code == 200 and resp.headers["x-poolswitch-key-id"] == "b"
    assert (key["state"], key["reason"]) == ("cooling_down", "quota_exhausted")
    assert key["cooldown_until"] == pytest.approx(time.time() + 900, abs=5)


def test_a_gzip_gemini_api_key_invalid_disables_the_key_and_fails_over(
    start: list[RunningProxy],
) -> None:
    with FakeUpstream(KEYS, auth_header="x-goog-api-key", auth_scheme=None) as plain:
        fake = PathUpstream(plain)
        fake.raw["a"] = (400, GZIP_JSON, gzip.compress(json.dumps(GEMINI_INVALID).encode()))
        config = make_config(
            fake.url,
            "ab",
            provider="gemini",
            auth_header_name="x-goog-api-key",
            auth_scheme=None,
        )
        proxy = RunningProxy(config).start()
        start.append(proxy)
        with proxy.client() as client:
            first = client.post("/v1beta/models/gemini-2.0-flash:generateContent", json={})
            again = client.post("/v1beta/models/gemini-2.0-flash:generateContent", json={})
            key = client.get("/status").json()["keys"][0]
        paths = fake.paths_of("a")
    assert first.status_code == 200 and first.headers["x-poolswitch-key-id"] == "b"
    assert again.headers["x-poolswitch-key-id"] == "b"
    assert (key["state"], key["reason"]) == ("disabled", "key_invalid")
    assert paths == ["/v1beta/models/gemini-2.0-flash:generateContent", "/v1beta/models"]
