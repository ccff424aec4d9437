"""The retry decisions (`_retry.py`): pure, on a fake clock and a fixed randomness."""

from __future__ import annotations

import random

import httpx
import pytest
from scripted import Clock, Fixed, proxy_answer, refused, relayed

from poolswitch_client import (
    ErrorCode,
    ProxyConnectionError,
    ProxyError,
    ProxyResponse,
    ProxyTimeoutError,
    UpstreamError,
)
from poolswitch_client._deadline import Deadline
from poolswitch_client._retry import MAX_RETRY_WAIT, RETRIED_CODES, RetryPolicy


def policy(
    max_retries: int = 2,
    timeout: float | None = None,
    clock: Clock | None = None,
    rng: random.Random | None = None,
) -> RetryPolicy:
    return RetryPolicy(max_retries, Deadline(timeout, clock or Clock()), rng or Fixed(1.0))


def answer(
    code: str,
    retry_after: float | None = None,
    status: int = 503,
    headers: dict[str, str] | None = None,
) -> ProxyResponse:
    return ProxyResponse(proxy_answer(status, code, retry_after, headers))


# ---- what is retried ----


def test_the_retried_codes() -> None:
    assert {
        "no_available_keys",
        "overloaded",
        "upstream_unavailable",
        "caller_rate_limited",
    } == RETRIED_CODES


@pytest.mark.parametrize("code", sorted(RETRIED_CODES))
def test_each_retried_code_is_retried(code: str) -> None:
    retry = policy()
    assert retry.after_error(answer(code, 1.0)) == pytest.approx(1.1)
    assert retry.retries == 1


@pytest.mark.parametrize("code", sorted(ErrorCode.ALL - RETRIED_CODES))
def test_every_other_proxy_code_is_raised_at_once(code: str) -> None:
    retry = policy(max_retries=5)
    with pytest.raises(ProxyError) as caught:
        retry.after_error(answer(code, 1.0, 500, {"x-should-retry": "true"}))
    assert caught.value.code == code and retry.retries == 0


@pytest.mark.parametrize("value", ["false", " FALSE "])
def test_x_should_retry_false_is_never_retried(value: str) -> None:
    for code in RETRIED_CODES:
        retry = policy(max_retries=5)
        with pytest.raises(ProxyError):
            retry.after_error(answer(code, 1.0, 429, {"x-should-retry": value}))


def test_relayed_upstream_answers_are_never_retried() -> None:
    # even one that looks like the proxy's, without x-poolswitch-error
    body = {"error": {"code": "no_available_keys", "retry_after": 1}}
    for status in (429, 503):
        response = relayed(status, body)
        response.headers["retry-after"] = "1"
        with pytest.raises(UpstreamError):
            policy(max_retries=5).after_error(ProxyResponse(response))


@pytest.mark.parametrize(
    "exc",
    [
        refused(),
        httpx.ConnectError("[Errno -2] Name or service not known"),
        httpx.ReadError("[Errno 104] Connection reset by peer"),
        httpx.WriteError("[Errno 32] Broken pipe"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
    ],
)
def test_failures_before_any_answer_are_retried(exc: httpx.HTTPError) -> None:
    retry = policy()
    assert retry.after_failure(exc) == 0.5
    assert retry.after_failure(exc) == 1.0
    with pytest.raises(ProxyConnectionError) as caught:
        retry.after_failure(exc)
    assert caught.value.__cause__ is exc


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectTimeout("slow"),
        httpx.ReadTimeout("slow"),
        httpx.WriteTimeout("slow"),
        httpx.PoolTimeout("busy"),
    ],
)
def test_timeouts_are_never_retried(exc: httpx.HTTPError) -> None:
    retry = policy(max_retries=5)
    with pytest.raises(ProxyTimeoutError):
        retry.after_failure(exc)
    assert retry.retries == 0


def test_max_retries_0_retries_nothing() -> None:
    with pytest.raises(ProxyConnectionError):
        policy(max_retries=0).after_failure(refused())
    with pytest.raises(ProxyError):
        policy(max_retries=0).after_error(answer("overloaded", 0.0))


# ---- how long it waits ----


@pytest.mark.parametrize(("where", "factor"), [(0.0, 0.5), (1.0, 1.0), (0.5, 0.75)])
def test_backoff_is_jittered_exponential_up_to_8_s(where: float, factor: float) -> None:
    retry = policy(max_retries=7, rng=Fixed(where))
    waits = [retry.after_failure(refused()) for _ in range(7)]
    assert waits == pytest.approx([factor * w for w in (0.5, 1, 2, 4, 8, 8, 8)])


def test_a_retried_code_without_a_named_wait_backs_off() -> None:
    retry = policy(rng=Fixed(0.0))
    assert retry.after_error(answer("overloaded", None)) == 0.25
    assert retry.after_error(answer("no_available_keys", None, 429)) == 0.5


@pytest.mark.parametrize(("where", "factor"), [(0.0, 1.0), (1.0, 1.1)])
def test_a_named_wait_is_jittered_upwards(where: float, factor: float) -> None:
    retry = policy(rng=Fixed(where))
    assert retry.after_error(answer("caller_rate_limited", 2.0, 429)) == pytest.approx(2.0 * factor)


def test_the_retry_after_header_names_the_wait_before_the_body() -> None:
    retry = policy(rng=Fixed(0.0))
    # caller_rate_limited: the header is whole seconds rounded up, the body the real wait
    both = answer("caller_rate_limited", 1.2, 429, {"retry-after": "2"})
    assert retry.after_error(both) == 2.0
    only_body = answer("caller_rate_limited", 1.2, 429)
    assert retry.after_error(only_body) == 1.2


def test_seeded_randomness_gives_repeatable_waits() -> None:
    def waits(seed: int) -> list[float]:
        retry = policy(max_retries=3, rng=random.Random(seed))
        return [retry.after_failure(refused()) for _ in range(3)]

    assert waits(7) == waits(7) != waits(8)
    assert 0.25 <= waits(7)[0] <= 0.5


@pytest.mark.parametrize("timeout", [None, 600.0])
@pytest.mark.parametrize(
    "response",
    [
        answer("no_available_keys", 60.5, 429),
        answer("no_available_keys", 3600.0, 429),
        answer("no_available_keys", 2617953.0, 503),  # a month
        answer("caller_rate_limited", None, 429, {"retry-after": "61"}),
    ],
)
def test_a_named_wait_over_60_s_is_raised_at_once(
    response: ProxyResponse, timeout: float | None
) -> None:
    retry = policy(max_retries=5, timeout=timeout)
    with pytest.raises(ProxyError):
        retry.after_error(response)
    assert retry.retries == 0


def test_no_wait_is_longer_than_60_s() -> None:
    retry = policy(rng=Fixed(1.0))
    assert retry.after_error(answer("no_available_keys", 60.0, 429)) == MAX_RETRY_WAIT == 60.0


def test_a_wait_ending_at_or_after_the_deadline_is_not_taken() -> None:
    clock = Clock()
    retry = policy(max_retries=5, timeout=10.0, clock=clock, rng=Fixed(0.0))
    assert retry.after_error(answer("overloaded", 3.0)) == 3.0
    clock.now += 3.0
    with pytest.raises(ProxyError):
        retry.after_error(answer("overloaded", 7.0))  # would end at the deadline
    clock2 = Clock()
    backoff = policy(max_retries=5, timeout=1.0, clock=clock2, rng=Fixed(1.0))
    assert backoff.after_failure(refused()) == 0.5
    clock2.now += 0.5
    with pytest.raises(ProxyConnectionError):
        backoff.after_failure(refused())  # 1 s more ends past the 1 s deadline
