"""Confirming that a key is bad before it is disabled.

A 401 or 403 (or an "invalid key" error) may be the key's fault — revoked, mistyped — or the
request's: a path the keys may not use, a caller's mistake. Disabling on the first one lets a
single request that answers 401 for every key disable the whole pool. So a `key_invalid`
verdict from the provider profile (`Verdict.confirm`) disables the key only once it is
confirmed bad; an `on_status` `disable` rule is the operator's word and needs no confirming.

`judge()` is the rule, pure, in this order:

    the key was verified good in the last 30 s    relay: the answer is the request's own; the
                                                   key is not penalised, no other key is tried
    the request already disabled a key            fail over, the key not penalised (a request
                                                   disables at most one key)
    the request is itself `GET <verify_path>`     disable (it was the verification)
    verification said invalid                     disable
    a verify path is set, nothing known yet       verify: `GET <verify_path>` with this key
    the key failed so, unconfirmed, on another    disable
    path in the last 10 minutes with no success
    in between
    otherwise                                     fail over, the key not penalised; if another
                                                   key then succeeds on this request, the key is
                                                   disabled (the request was fine, the key not)

The verification (`verify_path`, default per provider: `/v1/models` for openai and anthropic,
`/v1beta/models` for gemini, none for generic) is a GET with the key put where every request
puts it and no caller header. Its answer is never relayed: a success, a rate limit or a spent
quota mean the key is good (it authenticated); `key_invalid` means bad; anything else (5xx,
404, timeout) tells nothing. At most one verification per key runs at a time (the others wait
for it), each within `VERIFY_TIMEOUT`, and its result is kept `VALID_TTL` (good) or
`UNKNOWN_TTL` (nothing learned) seconds, so a storm of 401s costs one verification per key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from enum import Enum
from urllib.parse import urlsplit

from poolswitch.classifier import Outcome, Verdict
from poolswitch.profiles import RULES

VALID = "valid"
INVALID = "invalid"
UNKNOWN = "unknown"

VALID_TTL = 30.0
UNKNOWN_TTL = 5.0
SUSPECT_WINDOW = 600.0
VERIFY_TIMEOUT = 5.0
VERIFY_READ = 64 * 1024

DEFAULT_PATHS = {name: profile.verify_path for name, profile in RULES.profiles.items()}
"""Each profile's verify path (profiles/providers.json: profiles.*.verify.path)."""
VERIFY_HEADERS = {name: profile.verify_headers for name, profile in RULES.profiles.items()}
"""Headers every call to the provider needs, sent with the verification too."""


class Judgement(str, Enum):
    DISABLE = "disable"  # confirmed bad: disable the key, fail over
    RELAY = "relay"  # the key is good: relay the answer, it is the request's own
    VERIFY = "verify"  # ask the upstream (GET verify_path with this key), then judge again
    FAIL_OVER = "fail_over"  # unconfirmed: next key; this one is not penalised


def judge(
    *,
    known: str | None,
    disabled_one: bool,
    is_verify_request: bool,
    can_verify: bool,
    failed_elsewhere: bool,
) -> Judgement:
    """The rule above. `known`: VALID / INVALID / UNKNOWN from a (cached) verification, or None;
    `disabled_one`: this request already disabled a key; `is_verify_request`: the request is
    `GET <verify_path>`; `can_verify`: a verify path is set; `failed_elsewhere`: the key's last
    unconfirmed auth failure was on another path, recently, with no success since."""
    if known == VALID:
        return Judgement.RELAY
    if disabled_one:
        return Judgement.FAIL_OVER
    if is_verify_request or known == INVALID:
        return Judgement.DISABLE
    if can_verify and known is None:
        return Judgement.VERIFY
    if failed_elsewhere:
        return Judgement.DISABLE
    return Judgement.FAIL_OVER


def reading(outcome: Outcome) -> str:
    """What a verification answer says about the key."""
    if outcome in (Outcome.SUCCESS, Outcome.RATE_LIMITED, Outcome.QUOTA_EXHAUSTED):
        return VALID
    if outcome is Outcome.KEY_INVALID:
        return INVALID
    return UNKNOWN


def default_path(profile: str, upstream_base_url: str) -> str | None:
    """The profile's verify path, relative to the base URL: a base URL that already ends in
    the path's first segment (`https://api.openai.com/v1`) does not get it twice."""
    path = DEFAULT_PATHS.get(profile)
    if path is None:
        return None
    base = urlsplit(upstream_base_url).path.rstrip("/")
    first, _, rest = path[1:].partition("/")
    if base.endswith("/" + first):
        return "/" + rest
    return path


class Confirming:
    """One request's unconfirmed auth failures; made only when there is one."""

    __slots__ = ("disabled", "suspects")

    def __init__(self) -> None:
        self.suspects: list[int] = []  # keys that failed over on an unconfirmed 401/403
        self.disabled = False  # this request has disabled a key: it disables no other


class Verifier:
    """The memory of `judge()`: verifications (cached, one in flight per key) and each key's
    last unconfirmed auth failure. Time comes from `clock` (monotonic seconds)."""

    def __init__(self, path: str | None, clock: Callable[[], float]) -> None:
        self.path = path
        self.clock = clock
        self._known: dict[int, tuple[str, float]] = {}  # key -> (result, valid until)
        self._running: dict[int, asyncio.Future[str]] = {}
        self._suspects: dict[int, tuple[str, float, int]] = {}  # key -> (path, at, successes)

    def known(self, key: int) -> str | None:
        found = self._known.get(key)
        if found is None:
            return None
        if found[1] <= self.clock():
            del self._known[key]
            return None
        return found[0]

    def failed_elsewhere(self, key: int, path: str, successes: int) -> bool:
        """Did the key fail so, unconfirmed, on another path recently, with no success since
        (`successes`: the key's success count now)?"""
        found = self._suspects.get(key)
        if found is None:
            return False
        other, at, before = found
        return other != path and before == successes and self.clock() - at < SUSPECT_WINDOW

    def suspect(self, key: int, path: str, successes: int) -> None:
        """Remember an unconfirmed auth failure of `key` on `path`."""
        self._suspects[key] = (path, self.clock(), successes)

    def forget(self, key: int) -> None:
        """The key was disabled (or re-enabled): nothing learned of it applies any longer."""
        self._suspects.pop(key, None)
        self._known.pop(key, None)

    async def verify(self, key: int, run: Callable[[], Awaitable[str]]) -> str:
        """The key's verification result: cached, or the one in flight, or `run()` now."""
        found = self.known(key)
        if found is not None:
            return found
        running = self._running.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        result = UNKNOWN
        try:
            result = await run()
        finally:
            del self._running[key]
            future.set_result(result)
            self.remember(key, result)
        return result

    def remember(self, key: int, result: str) -> None:
        """Keep a verification's result for its TTL (an invalid key is disabled instead;
        enabling it starts afresh)."""
        if result != INVALID:
            ttl = VALID_TTL if result == VALID else UNKNOWN_TTL
            self._known[key] = (result, self.clock() + ttl)

    async def confirm(
        self,
        key: int,
        verdict: Verdict,
        *,
        method: str,
        path: str,
        successes: int,
        confirming: Confirming,
        run: Callable[[], Awaitable[str]],
    ) -> Verdict:
        """A profile's key_invalid `verdict` for `key` on `method path`, made what `judge()`
        says: disabling (confirmed), relayed (the key is good), or failing over without
        penalty. `successes`: the key's success count; `run`: the verification, if needed.
        (`decide` and `settle` are its two steps, for a caller that runs the verification
        its own way, e.g. from a thread.)"""
        known = self.known(key)
        decision = self.decide(key, known, method, path, successes, confirming)
        if decision is Judgement.VERIFY:
            known = await self.verify(key, run)
            decision = self.decide(key, known, method, path, successes, confirming)
        return self.settle(key, verdict, decision, known, method, path, successes, confirming)

    def decide(
        self,
        key: int,
        known: str | None,
        method: str,
        path: str,
        successes: int,
        confirming: Confirming,
    ) -> Judgement:
        """What `judge()` says of `key` now, `known` being its (cached) verification result:
        VERIFY means run the verification, then decide again with its result."""
        return judge(
            known=known,
            disabled_one=confirming.disabled,
            is_verify_request=method == "GET" and path == self.path,
            can_verify=self.path is not None,
            failed_elsewhere=self.failed_elsewhere(key, path, successes),
        )

    def settle(
        self,
        key: int,
        verdict: Verdict,
        decision: Judgement,
        known: str | None,
        method: str,
        path: str,
        successes: int,
        confirming: Confirming,
    ) -> Verdict:
        """The verdict a final `decision` (not VERIFY) makes of `verdict`, noted in the
        request's `confirming` and in this memory."""
        if decision is Judgement.DISABLE:
            confirming.disabled = True
            self.forget(key)
            is_verify = method == "GET" and path == self.path
            how = "verify_path" if is_verify or known == INVALID else "invalid on two paths"
            return replace(verdict, confirm=False, source=f"confirmed: {how}")
        if decision is Judgement.RELAY:
            return replace(verdict, failover=False, disable=False, confirm=False, source="verified")
        confirming.suspects.append(key)
        self.suspect(key, path, successes)
        return replace(verdict, disable=False, confirm=False, source="unconfirmed")

    def confirmed_by_peer(self, confirming: Confirming) -> int | None:
        """Another key succeeded on the request: the first key that failed over on an
        unconfirmed auth failure is bad (unless the request already disabled one)."""
        if not confirming.suspects or confirming.disabled:
            return None
        confirming.disabled = True
        key = confirming.suspects[0]
        self.forget(key)
        return key
