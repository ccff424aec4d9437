"""Read an upstream answer: (status, headers, body head) -> Verdict.

The verdict says what happened (`Outcome`) and what it means for the key that answered: move on
(`failover`), park it (`cooldown` seconds, with the `source` of that time), disable it, or wait
before the next attempt without blaming it (`backoff`). Pure and table-driven: no I/O, the time
is an argument, nothing raises whatever the upstream sends.

    outcome              typical answer                             failover  the key
    success              status < 400                               no        -
    rate_limited         429; rate_limit_error, rate_limit_exceeded yes       cooled for the reset
                         Gemini RESOURCE_EXHAUSTED per minute                 stated, else min(60 s,
                                                                              cooldown_seconds)
    quota_exhausted      402; insufficient_quota, billing codes,    yes       parked until the
                         Anthropic spend limits, Gemini per-day               provider's reset, else
                         quota and "limit: 0", FAILED_PRECONDITION            cooldown_seconds
    key_invalid          401, 403; invalid_api_key, API_KEY_INVALID yes       disabled once
                         (a Gemini 400), PERMISSION_DENIED                    confirmed bad
                                                                              (`confirm`; the
                                                                              rule: verify.py)
    upstream_overloaded  503, 529; overloaded_error, slow_down,     yes       - (backoff; never
                         Gemini UNAVAILABLE                                   penalised)
    upstream_error       other 5xx                                  yes       - (the pool parks it
                                                                              after repeated 5xx)
    client_error         other 4xx (400, 404, 413, 422...);         no        -
                         "region not supported" (OpenAI, Gemini)
    network_error        connection failed (the proxy's own)        yes       -
    timeout              no answer in time (the proxy's own)        yes       -

How an answer is read (status >= 400; anything below is `SUCCESS` without looking further, and
no rule applies to it):
1. `on_status` rules, in order, first match wins: same status and, if the rule has `match`, that
   text anywhere in the body's head (case-insensitive). See `_rule_verdict` for the actions.
2. Phrases of the profile (`profiles.<name>.phrases`), found anywhere in the body's head.
3. Error identifiers from the JSON body - `details.error_code`, `code`, ErrorInfo `reason`,
   `status`, `type`, most specific first (`identifier_fields`) - looked up in the `markers`,
   which mean one thing whoever sends them, plus the profile's own (`profiles.<name>.markers`).
   A body that is not JSON (truncated, HTML) is searched for the same quoted fields; with none,
   for the snake_case identifiers themselves. A compressed body (gzip, deflate, br; or gzip
   bytes unlabelled) is decoded first, up to 64 KiB (`decoding.decode`); one that cannot be
   decoded counts as empty.
4. The status alone (`status_kinds`). On a 5xx only an "overloaded" identifier counts.
A rate limit becomes a quota when a Gemini body says so: a `...PerDay...` quota id (parked until
midnight Pacific) or "limit: 0" / quotaValue "0" (no quota for this model on this tier: parked
for the longest of cooldown_seconds, the next midnight Pacific and any signal - waiting does not
help, so the key is tried again at most once a day): `refine_rate`.

Reset times (see `resets.py`): a rate limit uses every header signal (the exhausted dimension's
window only), Gemini's `retryDelay`, else a delay in the message; a quota ignores the
per-dimension windows (they describe rates) and adds its own deadline: Anthropic's spend limits
00:00 UTC on the 1st of next month, Gemini's daily quota midnight America/Los_Angeles.

Whose fault (`Fault`, `Verdict.fault`, `Verdict.key_fault`): rate_limited, quota_exhausted and
key_invalid are the key's; upstream_overloaded and network_error the upstream's; upstream_error
and timeout either's (the upstream's, unless repeated on one key alone: pool.py); client_error
the caller's. A profile's key_invalid is the key's only once confirmed: it relays the answer when
the key is verified good (a 401 for a path the keys may not use is the caller's to see).

Every table named here is data: profiles/providers.json, the one file the embedded Node client
embeds too (the names above are its fields); this module holds how they are applied. The profile
(`provider:` setting, or `detect_provider(upstream_base_url)` by `hosts` and `host_suffixes`)
picks the tables; `generic` uses only the status and the common `markers`. Today's file says:

    every profile  enforced_spend_limit_reached -> quota until next month; insufficient_quota,
                   billing_hard_limit_reached, credit_balance_exhausted, billing_error -> quota;
                   invalid_api_key, api_key_invalid, authentication_error -> invalid;
                   rate_limit_exceeded, rate_limit_error, resource_exhausted -> rate;
                   overloaded_error -> overloaded; unsupported_country_region_territory -> client
    openai         slow_down -> overloaded; billing_not_active -> quota; access_terminated,
                   account_deactivated -> invalid; rate_limited (Mistral) -> rate;
                   "country, region, or territory not supported" -> client
    anthropic      permission_error -> invalid; "monthly spend limit", "reached your specified
                   api usage limits" -> quota until next month; "credit balance is too low" -> quota
    gemini         permission_denied, unauthenticated -> invalid; failed_precondition -> quota;
                   unavailable -> overloaded; "location is not supported" -> client
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta, timezone
from enum import Enum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from poolswitch.decoding import decode
from poolswitch.errors import DecodeError
from poolswitch.profiles import RULES, Deadline, Refinement
from poolswitch.resets import (
    FORMATS,
    MAX_RESET_SECONDS,
    Signal,
    header_signals,
    longest,
    parse_duration,
    parse_retry_after,
    prose_signal,
    reset_after,
    until_midnight,
    until_month_start,
    zone,
)

if TYPE_CHECKING:
    from poolswitch.config import PoolConfig, StatusRule

__all__ = [
    "CLIENT_ERROR",
    "DEFAULT_RATE_LIMIT_COOLDOWN",
    "KEY_INVALID",
    "MAX_RESET_SECONDS",
    "NETWORK_ERROR",
    "PROFILES",
    "SUCCESS",
    "TIMEOUT",
    "UPSTREAM_ERROR",
    "UPSTREAM_OVERLOADED",
    "Classifier",
    "Fault",
    "Outcome",
    "Verdict",
    "detect_provider",
    "parse_duration",
    "parse_retry_after",
    "reset_after",
]

DEFAULT_RATE_LIMIT_COOLDOWN = RULES.default_rate_limit_cooldown
PROFILES = tuple(RULES.profiles)
_BODY_LIMIT = RULES.body_bytes


class Fault(str, Enum):
    """Whose fault an unsuccessful answer was: the one answer to that question, used by the
    pool, the retry rules and the outage guard alike."""

    NONE = "none"  # a success
    KEY = "key"  # rate limit, quota, invalid key: the key is parked or disabled; never reused
    UPSTREAM = "upstream"  # overload, connection failure: never held against the key
    EITHER = "either"  # 5xx, timeout: the upstream's, unless it keeps happening on one key
    #                    alone while other keys answer (then the pool parks that key)
    CALLER = "caller"  # other 4xx: the request's own; relayed


class Outcome(str, Enum):
    SUCCESS = "success"
    RATE_LIMITED = "rate_limited"
    QUOTA_EXHAUSTED = "quota_exhausted"
    KEY_INVALID = "key_invalid"
    UPSTREAM_OVERLOADED = "upstream_overloaded"
    UPSTREAM_ERROR = "upstream_error"
    CLIENT_ERROR = "client_error"
    NETWORK_ERROR = "network_error"
    TIMEOUT = "timeout"

    @property
    def fault(self) -> Fault:
        return _FAULTS[self]

    @property
    def key_fault(self) -> bool:
        """Was it the key's fault?"""
        return _FAULTS[self] is Fault.KEY


_FAULTS = {
    Outcome.SUCCESS: Fault.NONE,
    Outcome.RATE_LIMITED: Fault.KEY,
    Outcome.QUOTA_EXHAUSTED: Fault.KEY,
    Outcome.KEY_INVALID: Fault.KEY,
    Outcome.UPSTREAM_OVERLOADED: Fault.UPSTREAM,
    Outcome.UPSTREAM_ERROR: Fault.EITHER,
    Outcome.CLIENT_ERROR: Fault.CALLER,
    Outcome.NETWORK_ERROR: Fault.UPSTREAM,
    Outcome.TIMEOUT: Fault.EITHER,
}


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    failover: bool = False  # the request moves on (another key, or the same after backoff)
    cooldown: float | None = None  # park the key for this many seconds (None: don't)
    disable: bool = False  # disable the key until an operator re-enables it
    backoff: bool = False  # not the key's fault: wait (full jitter) first, don't penalise
    source: str | None = None  # where `cooldown` came from, or which on_status rule decided
    confirm: bool = False  # `disable` only once the key is confirmed bad (see verify.py)

    @property
    def fault(self) -> Fault:
        """Whose fault it was; an `on_status` `retry` rule (backoff) makes it the upstream's."""
        return Fault.UPSTREAM if self.backoff else _FAULTS[self.outcome]

    @property
    def key_fault(self) -> bool:
        """Was it the key's fault? (Then the key is never reused for this request.)"""
        return not self.backoff and _FAULTS[self.outcome] is Fault.KEY


SUCCESS = Verdict(Outcome.SUCCESS)
CLIENT_ERROR = Verdict(Outcome.CLIENT_ERROR)
KEY_INVALID = Verdict(Outcome.KEY_INVALID, failover=True, disable=True, confirm=True)
UPSTREAM_OVERLOADED = Verdict(Outcome.UPSTREAM_OVERLOADED, failover=True, backoff=True)
UPSTREAM_ERROR = Verdict(Outcome.UPSTREAM_ERROR, failover=True)
NETWORK_ERROR = Verdict(Outcome.NETWORK_ERROR, failover=True)
TIMEOUT = Verdict(Outcome.TIMEOUT, failover=True)

_OUTCOMES = {name: Outcome(kind.outcome) for name, kind in RULES.kinds.items()}
_FIXED = {
    Outcome.KEY_INVALID: KEY_INVALID,
    Outcome.UPSTREAM_OVERLOADED: UPSTREAM_OVERLOADED,
    Outcome.UPSTREAM_ERROR: UPSTREAM_ERROR,
    Outcome.CLIENT_ERROR: CLIENT_ERROR,
}
"""Outcomes whose verdict is always the same; a rate limit or a quota carries a cooldown."""
_DEADLINE_KINDS = {name: kind for name, kind in RULES.kinds.items() if kind.deadline is not None}
_SPECIFICITY = RULES.identifier_fields
_DELAY_FIELDS = {f.name: f.source or f.name for f in RULES.body_fields}
_DELAY_FORMATS = {f.name: f.format for f in RULES.body_fields}
_WANTED = frozenset((*_SPECIFICITY, *RULES.fact_fields, *_DELAY_FIELDS))
_QUOTED = re.compile(
    r'"(' + "|".join(map(re.escape, sorted(_WANTED))) + r')"\s*:\s*"([^"\\]{0,200})"'
)
_DIMENSIONS = RULES.dimension_types
_LINES = re.compile(r"\r\n|\r|\n")


def detect_provider(upstream_base_url: str) -> str:
    """The profile for an upstream: by host, else "generic"."""
    url = upstream_base_url.strip()
    try:
        host = (urlsplit(url if "//" in url else "//" + url).hostname or "").rstrip(".")
    except ValueError:
        return "generic"
    for profile in RULES.profiles.values():
        if host in profile.hosts:
            return profile.name
    for profile in RULES.profiles.values():
        if any(host.endswith(suffix) for suffix in profile.host_suffixes):
            return profile.name
    return "generic"


@dataclass(frozen=True, slots=True)
class _Facts:
    """What an error body says, for the tables."""

    text: str = ""  # the body's head, lower-cased: phrases and rule matches
    fields: tuple[str, ...] = ()  # error identifiers, lower-cased, most specific first
    dimension: str | None = None  # OpenAI/Groq `type`: "requests" or "tokens"
    quota_ids: tuple[str, ...] = ()  # Gemini QuotaFailure violations, lower-cased
    quota_values: tuple[str, ...] = ()  # their quotaValue, as text
    delays: tuple[tuple[str, str], ...] = ()  # (value, field) of the body's reset fields
    http_code: int | None = None  # a numeric `code` that is an HTTP status (Gemini)


_NOTHING = _Facts()


def _read(body: bytes, encoding: str | None) -> _Facts:
    """The facts of an error body, undoing its Content-Encoding first (bounded); a body that
    cannot be decoded says nothing (the status alone decides)."""
    if encoding not in (None, "", "identity") or body[:2] == b"\x1f\x8b":
        if body[:2] == b"\x1f\x8b" and not encoding:
            encoding = "gzip"  # compressed, though the headers do not say so
        try:
            body, _ = decode(body, encoding, _BODY_LIMIT)
        except DecodeError:
            return _NOTHING
    head = body[:_BODY_LIMIT]
    text = head.decode("utf-8", "replace")
    return _facts(text, _json(text))


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _facts(text: str, doc: Any) -> _Facts:
    values: dict[str, list[Any]] = {}
    if isinstance(doc, (dict, list)):
        _collect(doc, values)
    else:
        for match in _QUOTED.finditer(text):
            values.setdefault(match.group(1), []).append(match.group(2))
    strings = {k: [str(v).lower() for v in vs if isinstance(v, str)] for k, vs in values.items()}
    delays = tuple(
        (v, name) for name in _DELAY_FIELDS for v in values.get(name, []) if isinstance(v, str)
    )
    codes = [v for v in values.get("code", []) if type(v) is int and 400 <= v <= 599]
    return _Facts(
        text=text.lower(),
        fields=tuple(v for name in _SPECIFICITY for v in strings.get(name, [])),
        dimension=next((t for t in strings.get("type", []) if t in _DIMENSIONS), None),
        quota_ids=tuple(strings.get("quotaId", [])),
        quota_values=tuple(str(v) for v in values.get("quotaValue", [])),
        delays=delays,
        http_code=codes[0] if codes else None,
    )


def _collect(doc: dict[str, Any] | list[Any], into: dict[str, list[Any]]) -> None:
    """The wanted fields anywhere in a JSON document, depth first."""
    stack: list[Any] = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            children = []
            for key, value in node.items():
                if key in _WANTED and isinstance(value, (str, int)):
                    into.setdefault(key, []).append(value)
                elif isinstance(value, (dict, list)):
                    children.append(value)
            stack.extend(reversed(children))
        elif isinstance(node, list):
            stack.extend(reversed(node))


@dataclass(frozen=True, slots=True)
class Classifier:
    profile: str  # openai | anthropic | gemini | generic (resolved, never "auto")
    cooldown_seconds: float
    rules: tuple[StatusRule, ...] = ()

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"unknown provider profile {self.profile!r}: one of {PROFILES}")

    @classmethod
    def from_config(cls, config: PoolConfig) -> Classifier:
        profile = config.provider
        if profile == "auto":
            profile = detect_provider(config.upstream_base_url)
        return cls(profile, config.cooldown_seconds, tuple(config.on_status))

    def classify(self, status: int, headers: Mapping[str, str], body: bytes, now: float) -> Verdict:
        """Classify one answer. `headers`: case-insensitive or lower-cased; `body`: its head;
        `now`: Unix time, for absolute resets."""
        if status < 400:
            return SUCCESS
        return self._classify(status, headers, _read(body, headers.get("content-encoding")), now)

    def classify_stream_start(
        self, first_event: bytes, headers: Mapping[str, str], now: float
    ) -> Verdict | None:
        """The first event of a 2xx `text/event-stream`: None when it is content; when it is an
        error (`event: error`, or a JSON payload with a top-level "error"), the verdict the same
        error would get as an answer (status from a numeric `code`, else `_EVENT_STATUS`, else
        500), on_status rules included."""
        event, data = _sse_event(first_event)
        doc = _json(data[:_BODY_LIMIT]) if event == "error" or '"error"' in data else None
        if event != "error" and not _carries_error(doc):
            return None
        facts = _facts(data[:_BODY_LIMIT], doc)
        status = facts.http_code
        if status is None:
            known = RULES.event_status
            status = next((known[f] for f in facts.fields if f in known), 500)
        return self._classify(status, headers, facts, now)

    def _classify(
        self, status: int, headers: Mapping[str, str], facts: _Facts, now: float
    ) -> Verdict:
        kind = self._kind(status, facts)
        for i, rule in enumerate(self.rules):
            if rule.status == status and (rule.match is None or rule.match.lower() in facts.text):
                verdict = _rule_verdict(i, rule, _OUTCOMES[kind])
                if verdict is not None:
                    return verdict
        return self._verdict(kind, headers, facts, now)

    def _kind(self, status: int, facts: _Facts) -> str:
        marked = self._marker(facts)
        statuses = RULES.status_kinds
        if status >= 500:
            kind = "overloaded" if marked == "overloaded" else statuses.get(status, "error")
        else:
            kind = marked or statuses.get(status, "client")
        if kind == "rate" and _refinable(facts):
            for rule in RULES.refinements:
                if _refines(rule, facts):
                    return rule.kind
        return kind

    def _marker(self, facts: _Facts) -> str | None:
        if not facts.text:
            return None
        profile = RULES.profiles[self.profile]
        for phrase, kind in profile.phrases:
            if phrase in facts.text:
                return kind
        markers = profile.markers
        for field in facts.fields:
            if field in markers:
                return markers[field]
        if not facts.fields:  # not even quoted fields: look for the identifiers themselves
            for marker, kind in markers.items():
                if "_" in marker and marker in facts.text:
                    return kind
        return None

    def _verdict(self, kind: str, headers: Mapping[str, str], facts: _Facts, now: float) -> Verdict:
        fixed = _FIXED.get(_OUTCOMES[kind])
        if fixed is not None:
            return fixed
        found = _body_signals(facts, now)
        if _OUTCOMES[kind] is Outcome.RATE_LIMITED:
            found += header_signals(headers, now, dimension=facts.dimension)
            best = longest(found) or prose_signal(facts.text, now)
            if best is None:
                best = (min(DEFAULT_RATE_LIMIT_COOLDOWN, self.cooldown_seconds), "default")
            return Verdict(Outcome.RATE_LIMITED, failover=True, cooldown=best[0], source=best[1])
        found += header_signals(headers, now, windows=False)
        prose = None if found else prose_signal(facts.text, now)
        spec = RULES.kinds[kind]
        if spec.deadline is not None:
            found.insert(0, _deadline(spec.deadline, now))
        best = longest([*found, prose] if prose else found)
        if spec.at_least_cooldown_seconds:
            best = (max(best[0] if best else 0.0, self.cooldown_seconds), best[1] if best else "")
        elif best is None:
            best = (self.cooldown_seconds, "cooldown_seconds")
        source = spec.source or best[1]
        return Verdict(Outcome.QUOTA_EXHAUSTED, failover=True, cooldown=best[0], source=source)


def _body_signals(facts: _Facts, now: float) -> list[Signal]:
    """The reset fields of the body (Gemini's RetryInfo.retryDelay): the longest of each."""
    found: list[Signal] = []
    for field, source in _DELAY_FIELDS.items():
        parse = FORMATS[_DELAY_FORMATS[field]]
        seconds = [parse(v, now) for v, name in facts.delays if name == field]
        best = max((d for d in seconds if d is not None), default=None)
        if best is not None:
            found.append((best, source))
    return found


def _deadline(deadline: Deadline, now: float) -> Signal:
    """A quota's own reset (profiles: kinds.*.deadline) as a signal."""
    fallback = timezone(timedelta(hours=deadline.fallback_utc_offset_hours or 0.0))
    where = zone(deadline.zone, fallback)
    if deadline.until == "month_start":
        return until_month_start(now, where), deadline.source
    return until_midnight(now, where), deadline.source


def _refinable(facts: _Facts) -> bool:
    """May a rate limit be refined into a quota (profiles: refine_rate)?"""
    if RULES.refine_quota_ids and facts.quota_ids:
        return True
    return any(field in RULES.refine_fields for field in facts.fields)


def _refines(rule: Refinement, facts: _Facts) -> bool:
    if rule.quota_value is not None and rule.quota_value in facts.quota_values:
        return True
    if rule.text_pattern is not None and rule.text_pattern.search(facts.text):
        return True
    if rule.quota_id_contains is not None:
        return any(rule.quota_id_contains in quota_id for quota_id in facts.quota_ids)
    return False


def _rule_verdict(i: int, rule: StatusRule, outcome: Outcome) -> Verdict | None:
    """An on_status rule's verdict. A rule changes what happens, not what it is called: the
    outcome stays the profile's, except that a client error the rule moves on is counted as an
    upstream_error, a `cooldown` of anything but a rate limit or quota as rate_limited, and a
    `disable` as key_invalid. `source` names the rule."""
    source = f"on_status[{i}]"
    moved = Outcome.UPSTREAM_ERROR if outcome is Outcome.CLIENT_ERROR else outcome
    if rule.action == "retry":
        return Verdict(moved, failover=True, backoff=True, source=source)
    if rule.action == "failover":
        return Verdict(moved, failover=True, source=source)
    if rule.action == "cooldown":
        parked = outcome if outcome in (Outcome.RATE_LIMITED, Outcome.QUOTA_EXHAUSTED) else None
        seconds = max(rule.seconds or 0.0, 0.0)
        outcome = parked or Outcome.RATE_LIMITED
        return Verdict(outcome, failover=True, cooldown=seconds, source=source)
    if rule.action == "disable":
        return Verdict(Outcome.KEY_INVALID, failover=True, disable=True, source=source)
    if rule.action == "relay":
        return Verdict(outcome, source=source)
    return None  # not an action: the rule is skipped


def _sse_event(block: bytes) -> tuple[str, str]:
    """The `event` name and the joined `data` lines of one SSE event block."""
    event = ""
    data: list[str] = []
    for line in _LINES.split(block.decode("utf-8", "replace")):
        if not line:
            if event or data:
                break
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value.strip()
        elif name == "data":
            data.append(value)
    return event, "\n".join(data)


def _carries_error(doc: Any) -> bool:
    if isinstance(doc, list) and doc:
        doc = doc[0]
    return isinstance(doc, dict) and bool(doc.get("error"))
