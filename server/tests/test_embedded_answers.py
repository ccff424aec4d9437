"""What the embedded clients answer, compared with what a real proxy answers in the same case:
pool-made errors (exhaustion, unreachable, timeout) byte for byte, redacted upstream errors,
gzip, the status document; no key value in a repr, a status, an error or a log line; many
threads on one client."""

from __future__ import annotations

import json
import logging
import re
import threading
from typing import Any

import httpx
import pytest
from test_embedded_helpers import Clock, Either, keys

from poolswitch.embedded import PoolSwitchClient
from poolswitch_client import PoolSwitchError, ProxyError, ProxyResponse, UpstreamError
from poolswitch_testing.fake_upstream import FakeUpstream
from poolswitch_testing.proxy import free_port

from conftest import KEYS, VALUES, ProxyFactory

KINDS = ["sync", "async"]
COMPARED = (
    "content-type",
    "content-length",
    "x-poolswitch-error",
    "retry-after",
    "x-should-retry",
    "x-poolswitch-attempts",
    "x-poolswitch-key-id",
)


REQUEST_ID = re.compile(rb'"request_id": "[0-9a-f]{16}"')


def head_and_body(status: int, headers: httpx.Headers, body: bytes) -> dict[str, Any]:
    return {
        "status": status,
        "headers": {name: headers.get(name) for name in COMPARED},
        "body": REQUEST_ID.sub(b'"request_id": "' + b"-" * 16 + b'"', body),  # each has its own
    }


def embedded_error(c: Either, path: str = "/v1/models") -> dict[str, Any]:
    with pytest.raises(PoolSwitchError) as caught:
        c.send("GET", path)
    err = caught.value
    assert isinstance(err, (ProxyError, UpstreamError)) and err.response is not None
    r = err.response
    return head_and_body(r.status, r.headers, r.content)


def proxy_answer(http: httpx.Client, path: str = "/v1/models") -> dict[str, Any]:
    r = http.get(path)
    return head_and_body(r.status_code, r.headers, r.content)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("retry_after", ["30", "7200"])
def test_exhaustion_is_the_proxys_answer_byte_for_byte(
    kind: str, retry_after: str, upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    clock = Clock()
    limited = {"kind": "rate_limit", "headers": {"retry-after": retry_after}}
    upstream.script("a", limited)
    upstream.script("b", {"kind": "quota_exhausted"})
    proxy = make_proxy("ab", app_options={"clock": clock})
    with proxy.client() as http:
        by_proxy = [proxy_answer(http), proxy_answer(http)]
    upstream.reset()
    upstream.script("a", limited)
    upstream.script("b", {"kind": "quota_exhausted"})
    with Either(kind, upstream_base_url=upstream.url, keys=keys("ab"), clock=clock) as c:
        embedded = [embedded_error(c), embedded_error(c)]
        status = c.status()
    assert embedded == by_proxy
    assert by_proxy[0]["status"] == 429 and by_proxy[0]["headers"]["x-poolswitch-key-id"] == "b"
    assert by_proxy[1]["headers"]["x-poolswitch-error"] == "no_available_keys"
    doc = proxy.app.status_document()
    doc_keys = [{**k, "last_used_at": None} for k in doc["keys"]]
    assert [{**k, "last_used_at": None} for k in status["keys"]] == doc_keys
    assert status["config_version"] == "embedded" and status["reloaded_at"] is None
    skip = ("keys", "pools", "config_version")
    assert {k: v for k, v in status.items() if k not in skip} == {
        k: (v if k != "upstream_base_url" else upstream.url)
        for k, v in doc.items()
        if k not in skip
    }


@pytest.mark.parametrize("kind", KINDS)
def test_an_unreachable_upstream_is_the_proxys_502(kind: str, make_proxy: ProxyFactory) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    proxy = make_proxy("ab", upstream_base_url=dead)
    with proxy.client() as http:
        by_proxy = proxy_answer(http)
    with Either(kind, upstream_base_url=dead, keys=keys("ab")) as c:
        embedded = embedded_error(c)
    # the message ends with the name of the failure (the OS error's in the proxy)
    library = b"cannot connect to upstream: ConnectionRefusedError"
    assert library in by_proxy["body"]
    by_proxy["body"] = by_proxy["body"].replace(
        library, b"cannot connect to upstream: ConnectError"
    )
    by_proxy["headers"]["content-length"] = str(len(by_proxy["body"]))
    assert embedded == by_proxy
    assert by_proxy["status"] == 502
    assert by_proxy["headers"]["x-poolswitch-error"] == "upstream_unreachable"
    assert by_proxy["headers"]["x-poolswitch-attempts"] == "3"


@pytest.mark.parametrize("kind", KINDS)
def test_an_upstream_that_never_answers_is_the_proxys_504(
    kind: str, upstream: FakeUpstream
) -> None:
    for key in "ab":
        upstream.script(key, {"kind": "hang"})
    options: dict[str, Any] = {"request_timeout_seconds": 5, "attempt_timeout_seconds": 0.3}
    with (
        Either(kind, upstream_base_url=upstream.url, keys=keys("ab"), **options) as c,
        pytest.raises(ProxyError) as caught,
    ):
        c.send("GET", "/v1/models")
    err = caught.value
    assert (err.code, err.status) == ("upstream_timeout", 504)
    assert err.response is not None and err.response.attempts == 3


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("gzip", [False, True])
def test_a_relayed_error_has_key_values_redacted_as_the_proxys(
    kind: str, gzip: bool, upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    leak = {"error": {"message": f"bad key {VALUES['a']} (also {VALUES['b']})", "type": "x"}}
    behaviour = {"kind": "bad_request", "json": leak, "gzip": gzip}
    upstream.script("a", behaviour)
    proxy = make_proxy("ab", strategy="quota_failover")
    with proxy.client() as http:
        by_proxy = proxy_answer(http)
    upstream.script("a", behaviour)
    with (
        Either(
            kind, upstream_base_url=upstream.url, keys=keys("ab"), strategy="quota_failover"
        ) as c,
        pytest.raises(UpstreamError) as caught,
    ):
        c.send("GET", "/v1/models")
    err = caught.value
    assert err.response is not None
    assert (
        head_and_body(err.response.status, err.response.headers, err.response.content) == by_proxy
    )
    assert err.json == {"error": {"message": "bad key a (also b)", "type": "x"}}
    assert err.response.headers.get("content-encoding") is None


@pytest.mark.parametrize("kind", KINDS)
def test_a_gzip_success_is_decoded_for_the_caller(kind: str, upstream: FakeUpstream) -> None:
    upstream.script("a", {"kind": "ok", "gzip": True})
    with Either(kind, upstream_base_url=upstream.url, keys=keys("a")) as c:
        resp = c.send("GET", "/v1/models")
    assert resp.headers["content-encoding"] == "gzip"
    assert resp.json()["object"] == "chat.completion"


def no_secret_in(*texts: str) -> None:
    for value in KEYS:
        for text in texts:
            assert value not in text


@pytest.mark.parametrize("kind", KINDS)
def test_no_key_value_in_a_repr_a_status_an_error_or_a_log(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeUpstream(KEYS, auth_query_param="key") as fake:
        fake.script("a", {"kind": "invalid_key"})
        fake.script("b", {"kind": "echo", "status": 429})  # the request (and its key) back
        options: dict[str, Any] = {"auth_query_param": "key", "verify_path": "/v1/models"}
        with Either(kind, upstream_base_url=fake.url, keys=keys("ab"), **options) as c:
            with pytest.raises(UpstreamError) as caught:
                c.send("GET", "/v1/models", params={"key": "the-callers-own"})
            status = c.status()
            shown = repr(c)
        assert [(a.key_id, a.query_string.count("key=")) for a in fake.attempts] == [
            ("a", 1),
            ("b", 1),
        ]
    err = caught.value
    assert err.response is not None
    response: ProxyResponse = err.response
    assert "key=b" in err.body and "the-callers-own" not in json.dumps(fake.attempts[1].to_json())
    no_secret_in(
        shown,
        json.dumps(status),
        str(err),
        repr(err),
        err.body,
        repr(response),
        str(response.headers),
        repr(response._response.request),
        str(response._response.request.headers),
        caplog.text,
    )
    assert "key a disabled" in caplog.text  # the pool's own log line, by id


def test_many_threads_share_one_client(upstream: FakeUpstream) -> None:
    threads, calls = 8, 25
    failures: list[BaseException] = []
    with PoolSwitchClient(upstream_base_url=upstream.url, keys=keys("abc")) as c:

        def work() -> None:
            try:
                for _ in range(calls):
                    assert c.send("GET", "/v1/models").status == 200
            except BaseException as exc:  # reported below
                failures.append(exc)

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        assert not any(worker.is_alive() for worker in workers)
        counts = {k["id"]: k["total_requests"] for k in c.status()["keys"]}
    assert failures == []
    assert sum(counts.values()) == threads * calls == len(upstream.attempts)
    assert sorted(counts.values()) == [66, 67, 67]  # round robin, one selection at a time
