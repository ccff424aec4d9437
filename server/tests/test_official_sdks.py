"""The official Python SDKs, with their default retry settings, against the real proxy on an
exhausted pool: they raise their own rate-limit error fast when no key returns within the hint
window, never sleep long on their own, and either retry into a success or raise their
rate-limit error within a bounded time when a key returns in ~2 s. Also what they do with the
outage guard's `503 upstream_unavailable`. The Node and Go SDKs: conformance/official/.

Each SDK gets a 30 s request timeout as a safety net only; retries stay at their defaults.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import anthropic
import google.genai
import groq
import httpx
import openai
import pytest
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from poolswitch.config import parse_config
from poolswitch_testing.fake_upstream import FakeUpstream
from poolswitch_testing.official_bounds import (
    ANTHROPIC_MESSAGE,
    BOUNDED,
    FAST,
    GATEWAY_AUTH,
    GATEWAY_KEYS,
    GATEWAY_TOKENS,
    HELD,
    PROBE_HANGS,
    example_gateway,
)

from conftest import ProxyFactory, RunningProxy

GATEWAY = Path(__file__).resolve().parents[2] / "examples" / "gateway.yaml"
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


def call_openai(url: str, api_key: str = CALLER_KEY) -> object:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=api_key, timeout=SAFETY_TIMEOUT)
    with client:
        return client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )


def call_anthropic(url: str, api_key: str = CALLER_KEY) -> object:
    client = anthropic.Anthropic(base_url=url, api_key=api_key, timeout=SAFETY_TIMEOUT)
    with client:
        return client.messages.create(
            model="claude-sonnet-4-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        )


def call_groq(url: str, api_key: str = CALLER_KEY) -> object:
    client = groq.Groq(base_url=url, api_key=api_key, timeout=SAFETY_TIMEOUT)
    with client:
        return client.chat.completions.create(
            model="llama-3.1-8b-instant", messages=[{"role": "user", "content": "hi"}]
        )


def call_genai(url: str, api_key: str = CALLER_KEY) -> object:
    options = genai_types.HttpOptions(base_url=url, timeout=int(SAFETY_TIMEOUT * 1000))
    with google.genai.Client(api_key=api_key, http_options=options) as client:
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


@pytest.fixture
def gateway_fakes() -> Iterator[dict[str, FakeUpstream]]:
    """One fake upstream per pool of examples/gateway.yaml, each reading its pool's auth header."""
    fakes = {
        pool: FakeUpstream(
            keys, auth_header=GATEWAY_AUTH[pool][0], auth_scheme=GATEWAY_AUTH[pool][1]
        )
        for pool, keys in GATEWAY_KEYS.items()
    }
    for fake in fakes.values():
        fake.start_in_thread()
    yield fakes
    for fake in fakes.values():
        fake.stop_thread()


def test_the_example_gateway_serves_three_official_sdks_at_once_failing_over_in_each_pool(
    gateway_fakes: dict[str, FakeUpstream],
) -> None:
    answers: dict[str, dict[str, object] | None] = {
        "openai": None,
        "anthropic": ANTHROPIC_MESSAGE,
        "gemini": GEMINI_RESPONSE,
    }
    for pool, fake in gateway_fakes.items():
        ok: dict[str, object] = {"kind": "ok"}
        if answers[pool] is not None:
            ok["json"] = answers[pool]
        fake.script(f"{pool}-1", {"kind": "quota_exhausted"})
        fake.script(f"{pool}-2", ok)
    doc = example_gateway(GATEWAY, {pool: fake.url for pool, fake in gateway_fakes.items()})
    proxy = RunningProxy(parse_config(doc, env={})).start()
    token = GATEWAY_TOKENS["WEB_TOKEN"]
    try:
        calls = {
            "openai": lambda: call_openai(f"{proxy.url}/openai/v1", token),
            "anthropic": lambda: call_anthropic(f"{proxy.url}/anthropic", token),
            "gemini": lambda: call_genai(f"{proxy.url}/gemini", token),
        }
        with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool_:
            futures = {name: pool_.submit(call) for name, call in calls.items()}
            results = {name: future.result(timeout=60) for name, future in futures.items()}
        status = httpx.get(
            f"{proxy.url}/status", headers={"authorization": f"Bearer {token}"}, timeout=10
        ).json()
    finally:
        proxy.stop()
    assert isinstance(results["openai"], openai.types.chat.ChatCompletion)
    assert isinstance(results["anthropic"], anthropic.types.Message)
    assert results["gemini"].text == "hi"  # type: ignore[attr-defined]
    for pool, fake in gateway_fakes.items():
        # the pool's first key failed over to its second, inside the pool; nothing crossed
        assert [a.key_id for a in fake.attempts] == [f"{pool}-1", f"{pool}-2"], pool
        assert all(token not in value for a in fake.attempts for _, value in a.headers)
    states = {p["name"]: [k["state"] for k in p["keys"]] for p in status["pools"]}
    assert states == {pool: ["cooling_down", "available"] for pool in gateway_fakes}
