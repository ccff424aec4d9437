"""The rule that confirms a key is bad before it is disabled, and its memory."""

from __future__ import annotations

import asyncio

import pytest

from poolswitch.classifier import Outcome
from poolswitch.verify import (
    INVALID,
    UNKNOWN,
    VALID,
    VALID_TTL,
    Judgement,
    Verifier,
    default_path,
    judge,
    reading,
)

D, R, V, F = Judgement.DISABLE, Judgement.RELAY, Judgement.VERIFY, Judgement.FAIL_OVER


@pytest.mark.parametrize(
    ("known", "disabled_one", "is_verify", "can_verify", "elsewhere", "expected"),
    [
        # verified good: the answer is the request's own, whatever else is true
        (VALID, False, False, True, False, R),
        (VALID, True, True, True, True, R),
        # this request already disabled a key: no second one
        (None, True, True, True, True, F),
        (INVALID, True, False, True, False, F),
        # the request itself is the verification
        (None, False, True, True, False, D),
        # verification said invalid
        (INVALID, False, False, True, False, D),
        # nothing known and a verify path: ask
        (None, False, False, True, False, V),
        (None, False, False, True, True, V),  # verification beats the two-paths rule
        # verification told nothing, or there is no verify path: two paths confirm
        (UNKNOWN, False, False, True, True, D),
        (None, False, False, False, True, D),
        (UNKNOWN, False, False, True, False, F),
        (None, False, False, False, False, F),
    ],
)
def test_judge(
    known: str | None,
    disabled_one: bool,
    is_verify: bool,
    can_verify: bool,
    elsewhere: bool,
    expected: Judgement,
) -> None:
    got = judge(
        known=known,
        disabled_one=disabled_one,
        is_verify_request=is_verify,
        can_verify=can_verify,
        failed_elsewhere=elsewhere,
    )
    assert got is expected


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (Outcome.SUCCESS, VALID),
        (Outcome.RATE_LIMITED, VALID),  # it authenticated
        (Outcome.QUOTA_EXHAUSTED, VALID),
        (Outcome.KEY_INVALID, INVALID),
        (Outcome.CLIENT_ERROR, UNKNOWN),  # e.g. 404: a wrong verify_path
        (Outcome.UPSTREAM_ERROR, UNKNOWN),
        (Outcome.UPSTREAM_OVERLOADED, UNKNOWN),
        (Outcome.TIMEOUT, UNKNOWN),
        (Outcome.NETWORK_ERROR, UNKNOWN),
    ],
)
def test_reading(outcome: Outcome, expected: str) -> None:
    assert reading(outcome) == expected


@pytest.mark.parametrize(
    ("profile", "base", "expected"),
    [
        ("openai", "https://api.openai.com", "/v1/models"),
        ("openai", "https://api.openai.com/v1", "/models"),
        ("openai", "https://gw.example/openai", "/v1/models"),
        ("anthropic", "https://api.anthropic.com", "/v1/models"),
        ("gemini", "https://generativelanguage.googleapis.com", "/v1beta/models"),
        ("gemini", "https://generativelanguage.googleapis.com/v1beta/", "/models"),
        ("generic", "https://api.example", None),
    ],
)
def test_default_path(profile: str, base: str, expected: str | None) -> None:
    assert default_path(profile, base) == expected


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_verifications_run_one_at_a_time_per_key_and_are_cached() -> None:
    clock = Clock()
    verifier = Verifier("/v1/models", clock)
    runs: list[int] = []

    async def go() -> list[str]:
        gate = asyncio.Event()

        async def run() -> str:
            runs.append(1)
            await gate.wait()
            return VALID

        waiting = [asyncio.ensure_future(verifier.verify(0, run)) for _ in range(10)]
        await asyncio.sleep(0)
        gate.set()
        return list(await asyncio.gather(*waiting))

    assert asyncio.run(go()) == [VALID] * 10
    assert runs == [1]
    assert verifier.known(0) == VALID
    clock.now += VALID_TTL
    assert verifier.known(0) is None


def test_invalid_is_not_cached_and_a_failed_run_tells_nothing() -> None:
    verifier = Verifier("/v1/models", Clock())

    async def invalid() -> str:
        return INVALID

    async def broken() -> str:
        raise RuntimeError("bug")

    assert asyncio.run(verifier.verify(0, invalid)) == INVALID
    assert verifier.known(0) is None
    with pytest.raises(RuntimeError):
        asyncio.run(verifier.verify(1, broken))
    assert verifier.known(1) == UNKNOWN


def test_failed_elsewhere_needs_another_path_recently_and_no_success_since() -> None:
    clock = Clock()
    verifier = Verifier(None, clock)
    verifier.suspect(0, "/p", successes=5)
    assert not verifier.failed_elsewhere(0, "/p", 5)  # the same path: the path's, maybe
    assert verifier.failed_elsewhere(0, "/q", 5)
    assert not verifier.failed_elsewhere(0, "/q", 6)  # it succeeded since
    assert not verifier.failed_elsewhere(1, "/q", 5)
    clock.now += 600
    assert not verifier.failed_elsewhere(0, "/q", 5)  # too long ago
    verifier.suspect(0, "/p", successes=5)
    verifier.forget(0)
    assert not verifier.failed_elsewhere(0, "/q", 5)
