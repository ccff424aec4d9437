"""The official Python SDKs, with their default retry settings, against the real proxy on an
exhausted pool: they raise their own rate-limit error fast when no key returns within the hint
window, never sleep long on their own, and either retry into a success or raise their
rate-limit error within a bounded time when a key returns in ~2 s. Also what they do with the
outage guard's `503 upstream_unavailable`. The Node and Go SDKs: conformance/official/.

Each SDK gets a 30 s request timeout as a safety net only; retries stay at their defaults.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import anthropic
import google.genai
import groq
import httpx
import openai
import pytest
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from poolswitch_testing.fake_upstream import FakeUpstream
from poolswitch_testing.official_bounds import ANTHROPIC_MESSAGE, BOUNDED, FAST, HELD, PROBE_HANGS

from conftest import ProxyFactory, RunningProxy

CALLER_KEY = "sk-caller-placeholder"  # any value: the proxy replaces it with a pool key
SAFETY_TIMEOUT = 30.0

GEMINI_RESPONSE: dict[str, object] = {
    "candidates": [
        {"content": {"role": "model", "parts": [{"text": "hi"}]}, "finishReason": "STOP"}
    ],
    "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2},
}


@dataclass(frozen=True)
class Sdk:
    name: str
    call: Callable[[str], object]  # proxy URL -> the SDK's answer (raises on an error)
    rate_limit_error: type[Exception]
    ok_body: dict[str, object] | None  # what the fake upstream answers on success (None: a chat)


def call_openai(url: str) -> object:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=CALLER_KEY, timeout=SAFETY_TIMEOUT)
    with client:
        return client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )


def call_anthropic(url: str) -> object:
    client = anthropic.Anthropic(base_url=url, api_key=CALLER_KEY, timeout=SAFETY_TIMEOUT)
    with client:
        return client.messages.create(
            model="claude-sonnet-4-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        )


def call_groq(url: str) -> object:
    client = groq.Groq(base_url=url, api_key=CALLER_KEY, timeout=SAFETY_TIMEOUT)
    with client:
        return client.chat.completions.create(
            model="llama-3.1-8b-instant", messages=[{"role": "user", "content": "hi"}]
        )


def call_genai(url: str) -> object:
    options = genai_types.HttpOptions(base_url=url, timeout=int(SAFETY_TIMEOUT * 1000))
    with google.genai.Client(api_key=CALLER_KEY, http_options=options) as client:
        return client.models.generate_content(model="gemini-2.5-flash", contents="hi")


def genai_rate_limited(exc: BaseException) -> bool:
    return isinstance(exc, genai_errors.ClientError) and exc.code == 429


SDKS = [
    Sdk("openai", call_openai, openai.RateLimitError, None),
    Sdk("anthropic", call_anthropic, anthropic.RateLimitError, ANTHROPIC_MESSAGE),
    Sdk("groq", call_groq, groq.RateLimitError, None),
    Sdk("google-genai", call_genai, genai_errors.ClientError, GEMINI_RESPONSE),
]


def timed(call: Callable[[], object]) -> tuple[BaseException | None, float]:
    started = time.monotonic()
    try:
        call()
    except Exception as exc:  # what the SDK raised is the result
        return exc, time.monotonic() - started
    return None, time.monotonic() - started


def is_rate_limit_error(sdk: Sdk, exc: BaseException | None) -> bool:
    if sdk.name == "google-genai":
        return exc is not None and genai_rate_limited(exc)
    return isinstance(exc, sdk.rate_limit_error)


def exhaust(proxy: RunningProxy) -> httpx.Response:
    """One plain request spends the pool; the next answer is the proxy's own."""
    with proxy.client() as client:
        client.post("/v1/chat/completions", json={})
        answer = client.post("/v1/chat/completions", json={})
    assert answer.headers["x-poolswitch-error"] == "no_available_keys", answer.text
    return answer


@pytest.fixture(params=SDKS, ids=[sdk.name for sdk in SDKS])
def sdk(request: pytest.FixtureRequest) -> Sdk:
    chosen: Sdk = request.param
    return chosen


def test_no_key_within_the_window_raises_the_rate_limit_error_fast(
    sdk: Sdk, upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    for key in "ab":
        upstream.script(key, {"kind": "quota_exhausted"})  # parked for cooldown_seconds
    proxy = make_proxy("ab", cooldown_seconds=3600)
    answer = exhaust(proxy)
    assert answer.headers["x-should-retry"] == "false" and "retry-after" not in answer.headers
    spent = len(upstream.attempts)
    exc, elapsed = timed(lambda: sdk.call(proxy.url))
    print(f"\n{sdk.name}: no key within 60 s -> {type(exc).__name__} after {elapsed:.2f}s")
    assert is_rate_limit_error(sdk, exc), repr(exc)
    assert elapsed < FAST
    assert len(upstream.attempts) == spent  # nothing reached the upstream


def test_a_key_back_in_two_seconds_is_retried_into_or_reported_within_a_bound(
    sdk: Sdk, upstream: FakeUpstream, make_proxy: ProxyFactory
) -> None:
    ok: dict[str, object] = {"kind": "ok"}
    if sdk.ok_body is not None:
        ok["json"] = sdk.ok_body
    for key in "ab":
        upstream.script(key, {"kind": "rate_limit", "headers": {"retry-after": "2"}}, ok)
    proxy = make_proxy("ab")
    answer = exhaust(proxy)
    assert answer.headers["retry-after"] == "2" and answer.headers["x-should-retry"] == "true"
    exc, elapsed = timed(lambda: sdk.call(proxy.url))
    outcome = "success" if exc is None else type(exc).__name__
    print(f"\n{sdk.name}: a key back in 2 s -> {outcome} after {elapsed:.2f}s")
    assert exc is None or is_rate_limit_error(sdk, exc), repr(exc)
    assert elapsed < BOUNDED


@pytest.fixture
def held_proxy(upstream: FakeUpstream, make_proxy: ProxyFactory) -> Iterator[RunningProxy]:
    """A proxy whose outage guard holds every request: tripped by overload on every key, with
    one probe in flight (the upstream keeps it for PROBE_HANGS s) while the SDK is tried."""
    for key in "ab":
        upstream.script(key, {"kind": "overloaded"})
    proxy = make_proxy("ab", retry_attempts=1)
    with proxy.client() as client:
        for _ in range(3):  # a, b, a: most keys failing alike
            client.post("/v1/chat/completions", json={})
        assert client.get("/status").json()["outage"]["kind"] == "upstream"
    for key in "ab":
        upstream.script(key, {"kind": "overloaded", "delay": PROBE_HANGS})
    probe = threading.Thread(target=send_probe, args=(proxy.url,), daemon=True)
    probe.start()
    deadline = time.monotonic() + 5
    while len(upstream.attempts) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(upstream.attempts) == 4, "the probe did not reach the upstream"
    yield proxy
    probe.join(timeout=PROBE_HANGS + 5)


def send_probe(url: str) -> None:
    with httpx.Client(base_url=url, timeout=PROBE_HANGS + 5) as client:
        client.post("/v1/chat/completions", json={})


def test_what_each_sdk_does_while_the_outage_guard_holds_requests(
    sdk: Sdk, held_proxy: RunningProxy
) -> None:
    with held_proxy.client() as client:
        held = client.post("/v1/chat/completions", json={})
    assert held.status_code == 503 and held.headers["x-poolswitch-error"] == "upstream_unavailable"
    assert held.headers["retry-after"] == "1" and held.headers["x-should-retry"] == "true"
    exc, elapsed = timed(lambda: sdk.call(held_proxy.url))
    print(f"\n{sdk.name}: upstream_unavailable -> {type(exc).__name__} after {elapsed:.2f}s")
    assert exc is not None and not is_rate_limit_error(sdk, exc), repr(exc)
    assert elapsed < HELD
