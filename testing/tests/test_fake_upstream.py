"""Tests of the fake upstream itself, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from poolswitch_testing.fake_upstream import FakeUpstream, blob_bytes, validate_behaviour

KEYS = {"sk-test-aaa": "a", "sk-test-bbb": "b"}
AUTH_A = {"authorization": "Bearer sk-test-aaa"}
AUTH_B = {"authorization": "Bearer sk-test-bbb"}
COMPAT_SCRIPT = Path(__file__).resolve().parents[2] / "conformance" / "fake_upstream.py"
BODY = b'{"model": "m", "messages": []}'


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(KEYS) as upstream:
        yield upstream


@pytest.fixture
def client(fake: FakeUpstream) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.url, timeout=5.0) as c:
        yield c


def chat(client: httpx.Client, headers: dict[str, str] = AUTH_A) -> httpx.Response:
    return client.post("/v1/chat/completions", content=BODY, headers=headers)


def raw_request(url: str, request: bytes) -> bytes:
    """Send `request` verbatim on a fresh socket; return everything read until EOF."""
    host, port = httpx.URL(url).host, httpx.URL(url).port
    assert port is not None
    with socket.create_connection((host, port), timeout=5.0) as sock:
        sock.sendall(request)
        chunks = []
        for _ in range(1000):
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


# ---- default behaviour, errors, overrides ----


def test_ok_is_a_chat_completion_with_a_counter(fake: FakeUpstream, client: httpx.Client) -> None:
    first, second = chat(client), chat(client, AUTH_B)
    assert first.status_code == second.status_code == 200
    assert first.headers["content-type"].startswith("application/json")
    body = first.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["id"] != second.json()["id"]
    assert 400 <= len(first.content) <= 900
    assert fake.key_ids() == ["a", "b"]
    attempt = fake.attempts[0]
    assert (attempt.method, attempt.path, attempt.query_string) == (
        "POST",
        "/v1/chat/completions",
        "",
    )
    assert attempt.body_sha256 == hashlib.sha256(BODY).hexdigest()
    assert attempt.body_length == len(BODY)
    assert ("authorization", "Bearer sk-test-aaa") in attempt.headers
    assert fake.attempts[0].at <= fake.attempts[1].at


@pytest.mark.parametrize(
    ("kind", "status", "path", "value"),
    [
        ("rate_limit", 429, ("error", "code"), "rate_limit_exceeded"),
        ("quota_exhausted", 429, ("error", "code"), "insufficient_quota"),
        ("invalid_key", 401, ("error", "code"), "invalid_api_key"),
        ("server_error", 500, ("error", "type"), "server_error"),
        ("overloaded", 529, ("error", "type"), "overloaded_error"),
        ("bad_request", 400, ("error", "type"), "invalid_request_error"),
    ],
)
def test_error_kinds(
    fake: FakeUpstream,
    client: httpx.Client,
    kind: str,
    status: int,
    path: tuple[str, str],
    value: str,
) -> None:
    fake.script("a", {"kind": kind})
    response = chat(client)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()[path[0]][path[1]] == value
    assert "sk-test-aaa" not in response.text


def test_error_bodies_match_the_providers(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.script("a", {"kind": "rate_limit"}, {"kind": "quota_exhausted"}, {"kind": "overloaded"})
    rate = chat(client).json()["error"]
    assert rate["type"] == "requests" and rate["param"] is None
    assert rate["message"].endswith("Please try again in 1s.")
    assert chat(client).json()["error"]["type"] == "insufficient_quota"
    assert chat(client).json() == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }


def test_status_headers_and_json_override_defaults(
    fake: FakeUpstream, client: httpx.Client
) -> None:
    fake.script(
        "a",
        {"kind": "rate_limit", "headers": {"Retry-After": "7"}, "json": {"x": [1]}},
        {"kind": "server_error", "status": 503},
        {"kind": "ok", "status": 201, "headers": {"Content-Type": "application/x"}},
    )
    limited = chat(client)
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "7")
    assert limited.json() == {"x": [1]}
    unavailable = chat(client)
    assert unavailable.status_code == 503
    assert unavailable.json()["error"]["type"] == "server_error"
    created = chat(client)
    assert (created.status_code, created.headers["content-type"]) == (
        201,
        "application/x",
    )


def test_delay(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.script("a", {"kind": "ok", "delay": 0.05})
    started = time.monotonic()
    assert chat(client).status_code == 200
    assert time.monotonic() - started >= 0.045


def test_text(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.script("a", {"kind": "text", "body": "héllo", "status": 418})
    response = chat(client)
    assert (response.status_code, response.text) == (418, "héllo")
    assert response.headers["content-type"].startswith("text/plain")


# ---- scripts ----


def test_script_queue_is_consumed_and_last_repeats(
    fake: FakeUpstream, client: httpx.Client
) -> None:
    fake.script("a", {"kind": "rate_limit"}, {"kind": "server_error"}, {"kind": "ok"})
    fake.script("b", {"kind": "invalid_key"})
    codes = [chat(client).status_code for _ in range(5)]
    assert codes == [429, 500, 200, 200, 200]
    assert [chat(client, AUTH_B).status_code for _ in range(3)] == [401] * 3
    assert fake.key_ids() == ["a"] * 5 + ["b"] * 3
    fake.script("b")  # empty script: back to the default
    assert chat(client, AUTH_B).status_code == 200


def test_reset_clears_attempts_and_scripts(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.script("a", {"kind": "rate_limit"})
    assert chat(client).status_code == 429
    fake.reset()
    assert fake.attempts == []
    assert chat(client).status_code == 200


@pytest.mark.parametrize(
    ("behaviour", "fragment"),
    [
        ({"kind": "explode"}, "explode"),
        ({}, "kind"),
        ({"kind": "ok", "colour": "red"}, "colour"),
        ({"kind": "drop", "status": 500}, "status"),
        ({"kind": "sse", "json": {}}, "json"),
        ({"kind": "ok", "status": "429"}, "status"),
        ({"kind": "ok", "status": True}, "status"),
        ({"kind": "ok", "delay": -1}, "delay"),
        ({"kind": "ok", "delay": 601}, "delay"),
        ({"kind": "ok", "headers": {"x": 1}}, "headers"),
        ({"kind": "ok", "headers": {"x": "a\r\nb"}}, "headers"),
        ({"kind": "ok", "json": {1, 2}}, "json"),
        ({"kind": "sse", "events": "data"}, "events"),
        ({"kind": "sse", "events": [{"data": "x", "retry": 1}]}, "events"),
        ({"kind": "sse", "events": [{"event": "x"}]}, "events"),
        ({"kind": "sse", "cut": "yes"}, "cut"),
        ({"kind": "blob", "size": -1}, "size"),
        ({"kind": "blob", "gzip": 1}, "gzip"),
        ({"kind": "blob", "tail": 1}, "tail"),
        ({"kind": "ok", "gzip": "yes"}, "gzip"),
        ({"kind": "text", "body": b"x"}, "body"),
    ],
)
def test_strict_validation(fake: FakeUpstream, behaviour: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        validate_behaviour(behaviour)
    with pytest.raises(ValueError, match=fragment):
        fake.script("a", {"kind": "ok"}, behaviour)


@pytest.mark.parametrize("keys", [{"sk": 1}, {"": "a"}])
def test_constructor_rejects_bad_keys(keys: dict[str, Any]) -> None:
    with pytest.raises(TypeError, match="keys"):
        FakeUpstream(keys)


def test_script_rejects_unknown_key_id(fake: FakeUpstream) -> None:
    with pytest.raises(ValueError, match="'zzz'"):
        fake.script("zzz", {"kind": "ok"})


def test_script_copies_its_input(fake: FakeUpstream, client: httpx.Client) -> None:
    behaviour: dict[str, Any] = {"kind": "ok", "json": {"n": 1}}
    fake.script("a", behaviour)
    behaviour["json"]["n"] = 2
    assert chat(client).json() == {"n": 1}


# ---- key identification ----


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer sk-test-zzz"},
        {"authorization": "Basic sk-test-aaa"},
        {"authorization": "sk-test-aaa"},
        {"x-api-key": "sk-test-aaa"},
    ],
)
def test_missing_or_unknown_key_is_400_and_recorded(
    fake: FakeUpstream, client: httpx.Client, headers: dict[str, str]
) -> None:
    response = chat(client, headers)
    assert response.status_code == 400
    assert response.json() == {
        "error": {"type": "fake_upstream", "message": "missing or unknown key"}
    }
    assert fake.key_ids() == [None]


def test_bearer_scheme_is_case_insensitive(client: httpx.Client) -> None:
    assert chat(client, {"authorization": "bearer sk-test-bbb"}).status_code == 200


def test_custom_header_without_scheme() -> None:
    with (
        FakeUpstream(KEYS, auth_header="x-api-key", auth_scheme=None) as fake,
        httpx.Client(base_url=fake.url) as client,
    ):
        assert chat(client, {"X-Api-Key": "sk-test-bbb"}).status_code == 200
        assert chat(client, AUTH_A).status_code == 400
        assert chat(client, {"x-api-key": "Bearer sk-test-bbb"}).status_code == 400
        assert fake.key_ids() == ["b", None, None]


def test_custom_header_with_custom_scheme() -> None:
    with (
        FakeUpstream(KEYS, auth_header="x-goog-auth", auth_scheme="Key") as fake,
        httpx.Client(base_url=fake.url) as client,
    ):
        assert chat(client, {"x-goog-auth": "Key sk-test-aaa"}).status_code == 200
        assert chat(client, {"x-goog-auth": "sk-test-aaa"}).status_code == 400


def test_query_param_key() -> None:
    with (
        FakeUpstream(KEYS, auth_query_param="key") as fake,
        httpx.Client(base_url=fake.url) as client,
    ):
        ok = client.get("/v1beta/models?alt=sse&key=sk-test-bbb")
        assert ok.status_code == 200
        assert client.get("/v1beta/models?key=sk-test-zzz").status_code == 400
        # when a query parameter is configured, the header is not consulted
        assert client.get("/v1beta/models", headers=AUTH_A).status_code == 400
        assert fake.key_ids() == ["b", None, None]
        assert fake.attempts[0].query_string == "alt=sse&key=sk-test-bbb"


# ---- echo ----


def test_echo_reports_the_request_as_received(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.script("a", {"kind": "echo"})
    body = b"\x00\x01 not json \xff"
    target = "/v1/files/a%2Fb/%7e%20x?q=a%20b+c&x=%7E&y=%zz&e=&k=;/?&k=2"
    response = client.post(target, content=body, headers={**AUTH_A, "X-Custom": "Mixed Case"})
    echo = response.json()
    assert response.status_code == 200
    assert echo["key_id"] == "a"
    assert echo["method"] == "POST"
    assert echo["path"] == "/v1/files/a%2Fb/%7e%20x"
    assert echo["query_string"] == "q=a%20b+c&x=%7E&y=%zz&e=&k=;/?&k=2"
    assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert echo["body_length"] == len(body)
    assert ["x-custom", "Mixed Case"] in echo["headers"]
    recorded = fake.attempts[0]
    assert echo["headers"] == [list(pair) for pair in recorded.headers]
    assert (recorded.path, recorded.query_string) == (
        echo["path"],
        echo["query_string"],
    )


def test_echo_header_order_duplicates_and_raw_body(fake: FakeUpstream) -> None:
    fake.script("a", {"kind": "echo"})
    gz = gzip.compress(b"hello" * 100)
    head = (
        "PATCH /x%2F%2f/..%2F?%3d=%26&a=%C3%A9 HTTP/1.1\r\n"
        "Host: upstream\r\n"
        "X-Dup: one\r\n"
        "Authorization: Bearer sk-test-aaa\r\n"
        "X-Dup: two\r\n"
        "Content-Encoding: gzip\r\n"
        f"Content-Length: {len(gz)}\r\n"
        "Connection: close\r\n\r\n"
    )
    raw = raw_request(fake.url, head.encode() + gz)
    status_line, _, rest = raw.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 200 OK"
    echo = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert echo["method"] == "PATCH"
    assert echo["path"] == "/x%2F%2f/..%2F"
    assert echo["query_string"] == "%3d=%26&a=%C3%A9"
    assert echo["headers"] == [
        ["host", "upstream"],
        ["x-dup", "one"],
        ["authorization", "Bearer sk-test-aaa"],
        ["x-dup", "two"],
        ["content-encoding", "gzip"],
        ["content-length", str(len(gz))],
        ["connection", "close"],
    ]
    # the request body is hashed as sent: never transparently decompressed
    assert echo["body_sha256"] == hashlib.sha256(gz).hexdigest()
    assert echo["body_length"] == len(gz)


# ---- streaming, blobs, broken connections ----


def test_sse_events_arrive_spaced_and_in_order(fake: FakeUpstream, client: httpx.Client) -> None:
    events = ["one", {"event": "ping", "data": "two\nlines", "id": "7"}, "three"]
    fake.script("a", {"kind": "sse", "events": events, "interval": 0.05})
    arrivals: list[tuple[float, str]] = []
    with client.stream("POST", "/v1/chat/completions", headers=AUTH_A) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        assert "content-length" not in response.headers
        assert response.headers["transfer-encoding"] == "chunked"
        arrivals.extend((time.monotonic(), line) for line in response.iter_lines())
    lines = [line for _, line in arrivals]
    assert lines == [
        "data: one",
        "",
        "event: ping",
        "id: 7",
        "data: two",
        "data: lines",
        "",
        "data: three",
        "",
        "data: [DONE]",
        "",
    ]
    # the first event was received well before the last one was sent
    first, last = arrivals[0][0], arrivals[-2][0]
    assert last - first >= 3 * 0.05 * 0.8


def test_sse_defaults_are_openai_chunks(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.script("a", {"kind": "sse", "interval": 0, "first_delay": 0.05})
    started = time.monotonic()
    response = chat(client)
    assert time.monotonic() - started >= 0.045
    data = [line[6:] for line in response.text.split("\n") if line.startswith("data: ")]
    assert len(data) == 4 and data[-1] == "[DONE]"
    chunks = [json.loads(item) for item in data[:3]]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_sse_cut_breaks_the_stream(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.script("a", {"kind": "sse", "events": ["x", "y"], "done": False, "cut": True})
    received: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        client.stream("GET", "/stream", headers=AUTH_A) as response,
    ):
        received.extend(response.iter_lines())
    assert received == ["data: x", "", "data: y", ""]


def test_drop_gives_a_connection_error(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.script("a", {"kind": "drop"}, {"kind": "ok"})
    with pytest.raises(httpx.RemoteProtocolError):
        chat(client)
    assert chat(client).status_code == 200
    assert fake.key_ids() == ["a", "a"]


def test_hang_until_the_client_gives_up(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.script("a", {"kind": "hang"}, {"kind": "ok"})
    with pytest.raises(httpx.ReadTimeout):
        client.post("/v1/chat/completions", headers=AUTH_A, timeout=0.2)
    assert chat(client).status_code == 200


def test_stop_thread_ends_a_hanging_request() -> None:
    fake = FakeUpstream(KEYS).start_in_thread()
    fake.script("a", {"kind": "hang"})
    outcome: list[BaseException | int] = []

    def call() -> None:
        try:
            with httpx.Client(timeout=30.0) as c:
                outcome.append(c.get(fake.url, headers=AUTH_A).status_code)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    for _ in range(200):
        if fake.attempts:
            break
        time.sleep(0.01)
    started = time.monotonic()
    fake.stop_thread()
    caller.join(10)
    assert time.monotonic() - started < 5
    assert len(outcome) == 1 and isinstance(outcome[0], httpx.TransportError)


@pytest.mark.parametrize("chunked", [False, True])
def test_blob(fake: FakeUpstream, client: httpx.Client, chunked: bool) -> None:
    size = 200_000
    fake.script("a", {"kind": "blob", "size": size, "chunked": chunked})
    response = client.get("/file", headers=AUTH_A)
    assert response.content == blob_bytes(size)
    assert response.headers["content-type"] == "application/octet-stream"
    assert "content-encoding" not in response.headers  # despite Accept-Encoding
    if chunked:
        assert response.headers["transfer-encoding"] == "chunked"
    else:
        assert response.headers["content-length"] == str(size)


def test_blob_default_size_and_gzip(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.script("a", {"kind": "blob"}, {"kind": "blob", "size": 5000, "gzip": True})
    assert client.get("/f", headers=AUTH_A).content == blob_bytes(1024)
    with client.stream("GET", "/f.gz", headers=AUTH_A) as response:
        raw = b"".join(response.iter_raw())
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["content-length"] == str(len(raw))
    assert gzip.decompress(raw) == blob_bytes(5000)


def test_blob_tail_and_interval(fake: FakeUpstream, client: httpx.Client) -> None:
    size = 3 * 64 * 1024
    fake.script("a", {"kind": "blob", "size": size, "tail": "the end", "interval": 0.05})
    started = time.monotonic()
    response = client.get("/f", headers=AUTH_A)
    assert response.content == blob_bytes(size) + b"the end"
    assert time.monotonic() - started >= 0.15  # three pauses between four pieces


@pytest.mark.parametrize(
    "behaviour",
    [
        {"kind": "invalid_key", "gzip": True},
        {"kind": "ok", "json": {"x": 1}, "gzip": True},
        {"kind": "text", "body": "héllo", "gzip": True},
    ],
)
def test_gzip_json_and_text(
    fake: FakeUpstream, client: httpx.Client, behaviour: dict[str, Any]
) -> None:
    fake.script("a", {**behaviour, "gzip": False}, behaviour)
    plain = chat(client)
    with client.stream("POST", "/v1/chat/completions", content=BODY, headers=AUTH_A) as response:
        raw = b"".join(response.iter_raw())
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["content-length"] == str(len(raw))
    assert response.status_code == plain.status_code
    if behaviour["kind"] != "ok":  # ok's body carries a counter
        assert gzip.decompress(raw) == plain.content
    assert "content-encoding" not in plain.headers


def test_blob_bytes() -> None:
    assert blob_bytes(0) == b""
    assert blob_bytes(300) == bytes(range(256)) + bytes(range(44))
    assert blob_bytes(1 << 20) == blob_bytes(1 << 20)


# ---- control API ----


def test_control_api(fake: FakeUpstream, client: httpx.Client) -> None:
    script = {"a": [{"kind": "rate_limit"}, {"kind": "ok"}], "b": [{"kind": "drop"}]}
    assert client.put("/__fake/script", json=script).status_code == 204
    assert chat(client).status_code == 429
    assert chat(client).status_code == 200
    with pytest.raises(httpx.RemoteProtocolError):
        chat(client, AUTH_B)
    attempts = client.get("/__fake/attempts").json()
    assert [item["key_id"] for item in attempts] == ["a", "a", "b"]
    assert set(attempts[0]) == {
        "key_id",
        "method",
        "path",
        "query_string",
        "headers",
        "body_sha256",
        "body_length",
        "at",
    }
    assert ["authorization", "Bearer sk-test-aaa"] in attempts[0]["headers"]
    assert client.post("/__fake/reset").status_code == 204
    assert client.get("/__fake/attempts").json() == []
    assert chat(client, AUTH_B).status_code == 200
    assert fake.key_ids() == ["b"]  # control requests are never recorded


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"a": [{"kind": "nope"}]}', "nope"),
        (b'{"a": [{"kind": "ok", "extra": 1}]}', "extra"),
        (b'{"zzz": [{"kind": "ok"}]}', "zzz"),
        (b'{"a": {"kind": "ok"}}', "list"),
        (b"[1]", "object"),
        (b"not json", "Expecting value"),
    ],
)
def test_control_api_rejects_invalid_scripts(
    fake: FakeUpstream, client: httpx.Client, body: bytes, fragment: str
) -> None:
    fake.script("b", {"kind": "rate_limit"})
    response = client.put("/__fake/script", content=body)
    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]
    # nothing was applied
    assert chat(client).status_code == 200
    assert chat(client, AUTH_B).status_code == 429


def test_control_api_methods_and_paths(client: httpx.Client) -> None:
    wrong = client.get("/__fake/script")
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "PUT")
    assert client.get("/__fake/nothing").status_code == 404


# ---- lifecycle and command line ----


def test_start_and_stop_inside_a_running_loop() -> None:
    async def scenario() -> list[int]:
        fake = FakeUpstream(KEYS)
        await fake.start()
        try:
            fake.script("b", {"kind": "overloaded"})
            async with httpx.AsyncClient(base_url=fake.url) as c:
                first = await c.get("/", headers=AUTH_A)
                second = await c.get("/", headers=AUTH_B)
                return [first.status_code, second.status_code]
        finally:
            await fake.stop()

    assert asyncio.run(scenario()) == [200, 529]


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "the fake did not print its url in time"
    return proc.stdout.readline()


@pytest.mark.parametrize(
    ("keys_in_file", "program"),
    [
        (False, ["-m", "poolswitch_testing.fake_upstream"]),
        (True, ["-m", "poolswitch_testing.fake_upstream"]),
        (False, [str(COMPAT_SCRIPT)]),  # the path the Node and Go harnesses start
    ],
)
def test_command_line(tmp_path: Path, keys_in_file: bool, program: list[str]) -> None:
    keys = json.dumps({"k-one": "one"})
    if keys_in_file:
        (tmp_path / "keys.json").write_text(keys)
        keys = str(tmp_path / "keys.json")
    command = [sys.executable, *program, "--keys", keys, "--auth-header"]
    command += ["x-api-key", "--auth-scheme", "none"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            line = _read_line(proc, 10.0)
            url = json.loads(line)["url"]
            assert line == json.dumps({"url": url}) + "\n"
            assert url.startswith("http://127.0.0.1:")
            with httpx.Client(base_url=url) as c:
                assert c.put("/__fake/script", json={"one": [{"kind": "echo"}]})
                echo = c.get("/ping?x=1", headers={"x-api-key": "k-one"}).json()
            assert (echo["key_id"], echo["query_string"]) == ("one", "x=1")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
            assert proc.stdout is not None
            assert proc.stdout.read() == ""
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
