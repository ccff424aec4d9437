"""Builders of classifier test vectors: times, real-shaped error bodies, expectations.

The expected numbers are worked out here from the calendar (UTC arithmetic, with the Pacific
offsets written out by hand), never by calling a classifier.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any

Vector = dict[str, Any]
Expect = dict[str, Any]
Headers = dict[str, str]
Rule = dict[str, Any]

COOLDOWN = 3600.0  # the default cooldown_seconds of a vector without "config"


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    """A Unix time, from a UTC calendar time."""
    return datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc).timestamp()


NOW = at(2026, 3, 15, 12, 34, 56)  # a Sunday; Pacific daylight time (UTC-7) since March 8
NEXT_MONTH = at(2026, 4, 1) - NOW  # Anthropic spend limits: 00:00 UTC on the 1st
MIDNIGHT_PACIFIC = at(2026, 3, 16, 7) - NOW  # 00:00 PDT on March 16 = 07:00 UTC


def http_date(when: float) -> str:
    """An RFC 9110 HTTP-date (IMF-fixdate)."""
    return format_datetime(datetime.fromtimestamp(when, timezone.utc), usegmt=True)


# ---------------------------------------------------------------- real-shaped payloads


def doc(value: Any) -> str:
    return json.dumps(value)


def openai(message: str, type_: str | None, code: str | None) -> str:
    return doc({"error": {"message": message, "type": type_, "param": None, "code": code}})


def anthropic(type_: str, message: str, **extra: Any) -> str:
    error = {"type": type_, "message": message, **extra}
    return doc({"type": "error", "error": error, "request_id": "req_011CZLrUfBVkVHn5T6EqQaf7"})


def gemini_error(code: int, status: str, message: str, *details: dict[str, Any]) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return {"error": error}


def gemini(code: int, status: str, message: str, *details: dict[str, Any]) -> str:
    return doc(gemini_error(code, status, message, *details))


def quota_failure(*quota_ids: str, value: str | int = "15") -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [
            {
                "quotaMetric": "generativelanguage.googleapis.com/"
                "generate_content_free_tier_requests",
                "quotaId": quota_id,
                "quotaDimensions": {"location": "global", "model": "gemini-2.0-flash"},
                "quotaValue": value,
            }
            for quota_id in quota_ids
        ],
    }


def retry_info(delay: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


def error_info(reason: str) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }


PER_MINUTE = "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
PER_DAY = "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
GEMINI_QUOTA = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.\n"
    "* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_"
    "requests, limit: {limit}, model: gemini-2.0-flash\nPlease retry in {prose}."
)
OPENAI_QUOTA = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, read the docs: "
    "https://platform.openai.com/docs/guides/error-codes/api-errors."
)
OPENAI_QUOTA_BODY = openai(OPENAI_QUOTA, "insufficient_quota", "insufficient_quota")
OPENAI_RPM = (
    "Rate limit reached for gpt-4o in organization org-abc on requests per min (RPM): "
    "Limit 500, Used 500, Requested 1. Please try again in 120ms."
)
GROQ_TPM = (
    "Rate limit reached for model `llama-3.3-70b-versatile` in organization `org_01` service "
    "tier `on_demand` on tokens per minute (TPM): Limit 6000, Used 5956, Requested 1022. "
    "Please try again in 9.78s. Visit https://console.groq.com/docs/rate-limits for more."
)
# an OpenAI rate limit without a delay in its message: the headers alone decide
OPENAI_RATE_BODY = openai("Rate limit reached for gpt-4o.", None, "rate_limit_exceeded")
ANTHROPIC_RATE_BODY = anthropic("rate_limit_error", "Number of request tokens has exceeded.")
ANTHROPIC_WORKSPACE = (
    "You have reached your specified API usage limits. "
    "You will regain access on 2026-04-01 at 00:00 UTC."
)
MONTHLY = "This request would exceed your account's monthly spend limit. Please try again later."


def gemini_rate(*details: dict[str, Any], limit: int = 15, prose: str = "46.33s") -> str:
    message = GEMINI_QUOTA.format(limit=limit, prose=prose)
    return gemini(429, "RESOURCE_EXHAUSTED", message, *details)


# ---------------------------------------------------------------- expectations


def verdict(
    outcome: str,
    *,
    cooldown: float | None = None,
    source: str | None = None,
    failover: bool = True,
    disable: bool = False,
    backoff: bool = False,
    confirm: bool = False,
) -> Expect:
    return {
        "outcome": outcome,
        "cooldown": cooldown,
        "source": source,
        "failover": failover,
        "disable": disable,
        "backoff": backoff,
        "confirm": confirm,
    }


def rate(seconds: float, source: str) -> Expect:
    return verdict("rate_limited", cooldown=seconds, source=source)


def quota(seconds: float = COOLDOWN, source: str = "cooldown_seconds") -> Expect:
    return verdict("quota_exhausted", cooldown=seconds, source=source)


def spend_cap(seconds: float = NEXT_MONTH) -> Expect:
    return quota(seconds, "spend limit: next month")


def daily(seconds: float = MIDNIGHT_PACIFIC) -> Expect:
    return quota(seconds, "daily quota: midnight Pacific")


DEFAULT_RATE = rate(60.0, "default")
SUCCESS = verdict("success", failover=False)
INVALID = verdict("key_invalid", disable=True, confirm=True)
OVERLOADED = verdict("upstream_overloaded", backoff=True)
ERROR = verdict("upstream_error")
CLIENT = verdict("client_error", failover=False)


# ---------------------------------------------------------------- vectors


def _config(cooldown: float | None, on_status: list[Rule] | None) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if cooldown is not None:
        config["cooldown_seconds"] = cooldown
    if on_status:
        config["on_status"] = on_status
    return {"config": config} if config else {}


def answer(
    name: str,
    rule: str,
    provider: str,
    status: int,
    body: str | bytes,
    expect: Expect,
    *,
    headers: Headers | None = None,
    now: float = NOW,
    cooldown: float | None = None,
    on_status: list[Rule] | None = None,
) -> Vector:
    """A `classify` vector: an upstream answer and its verdict. Bytes go as `body_b64`."""
    vector: Vector = {"name": name, "rule": rule, "kind": "classify", "provider": provider}
    vector.update(_config(cooldown, on_status))
    vector["status"] = status
    vector["headers"] = headers or {}
    if isinstance(body, bytes):
        vector["body_b64"] = base64.b64encode(body).decode("ascii")
    else:
        vector["body"] = body
    vector["now"] = now
    vector["expect"] = expect
    return vector


def stream(
    name: str,
    rule: str,
    provider: str,
    event: str,
    expect: Expect | None,
    *,
    headers: Headers | None = None,
    now: float = NOW,
    cooldown: float | None = None,
    on_status: list[Rule] | None = None,
) -> Vector:
    """A `stream_start` vector: the first SSE event block of a 2xx stream (None: content)."""
    vector: Vector = {"name": name, "rule": rule, "kind": "stream_start", "provider": provider}
    vector.update(_config(cooldown, on_status))
    vector["headers"] = headers or {}
    vector["event"] = event
    vector["now"] = now
    vector["expect"] = expect
    return vector


def detect(name: str, rule: str, url: str, profile: str) -> Vector:
    """A `detect` vector: the profile an upstream base URL resolves to."""
    return {
        "name": name,
        "rule": rule,
        "kind": "detect",
        "url": url,
        "expect": {"profile": profile},
    }


def on_status(
    status: int, action: str, match: str | None = None, seconds: float | None = None
) -> Rule:
    rule: Rule = {"status": status, "action": action}
    if match is not None:
        rule["match"] = match
    if seconds is not None:
        rule["seconds"] = seconds
    return rule
