from __future__ import annotations

import gzip
import json
import random
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import brotli
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from poolswitch.classifier import (
    CLIENT_ERROR,
    DEFAULT_RATE_LIMIT_COOLDOWN,
    MAX_RESET_SECONDS,
    NETWORK_ERROR,
    SUCCESS,
    TIMEOUT,
    Classifier,
    Outcome,
    Verdict,
    detect_provider,
    parse_duration,
    parse_retry_after,
    reset_after,
)
from poolswitch.config import PoolConfig, StatusRule

UTC = timezone.utc


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


NOW = at(2026, 3, 15, 12, 34, 56)  # Pacific daylight time (UTC-7) since March 8
COOLDOWN = 3600.0
NEXT_MONTH = at(2026, 4, 1) - NOW  # Anthropic spend limits: 00:00 UTC on the 1st
MIDNIGHT_PACIFIC = at(2026, 3, 16, 7) - NOW  # 00:00 PDT = 07:00 UTC


def rfc3339(seconds_from_now: float) -> str:
    return datetime.fromtimestamp(NOW + seconds_from_now, UTC).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------- real-shaped payloads


def body(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def openai(message: str, type_: str | None, code: str | None) -> bytes:
    return body({"error": {"message": message, "type": type_, "param": None, "code": code}})


def anthropic(type_: str, message: str, **extra: Any) -> bytes:
    error = {"type": type_, "message": message, **extra}
    return body({"type": "error", "error": error, "request_id": "req_011CZLrUfBVkVHn5T6EqQaf7"})


def gemini(code: int, status: str, message: str, *details: dict[str, Any]) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return body({"error": error})


def quota_failure(*quota_ids: str, value: str = "15") -> dict[str, Any]:
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


HELP = {
    "@type": "type.googleapis.com/google.rpc.Help",
    "links": [{"description": "Gemini API quotas", "url": "https://ai.google.dev/gemini-api"}],
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
OPENAI_RPM = (
    "Rate limit reached for gpt-4o in organization org-abc on requests per min (RPM): "
    "Limit 500, Used 500, Requested 1. Please try again in 120ms."
)
OPENAI_TPM = (
    "Rate limit reached for gpt-4o in organization org-abc on tokens per min (TPM): "
    "Limit 30000, Used 29000, Requested 1500. Please try again in 3s."
)
GROQ_TPM = (
    "Rate limit reached for model `llama-3.3-70b-versatile` in organization `org_01` service "
    "tier `on_demand` on tokens per minute (TPM): Limit 6000, Used 5956, Requested 1022. "
    "Please try again in 9.78s. Visit https://console.groq.com/docs/rate-limits for more."
)
ANTHROPIC_WORKSPACE = (
    "You have reached your specified API usage limits. "
    "You will regain access on 2026-04-01 at 00:00 UTC."
)


@dataclass(frozen=True)
class Case:
    id: str
    profile: str
    status: int
    body: bytes
    outcome: Outcome
    failover: bool = True
    cooldown: float | None = None
    source: str | None = None
    disable: bool = False
    backoff: bool = False
    headers: Mapping[str, str] | None = None


def rate(seconds: float, source: str) -> dict[str, Any]:
    return {"outcome": Outcome.RATE_LIMITED, "cooldown": seconds, "source": source}


def quota(seconds: float = COOLDOWN, source: str = "cooldown_seconds") -> dict[str, Any]:
    return {"outcome": Outcome.QUOTA_EXHAUSTED, "cooldown": seconds, "source": source}


INVALID: dict[str, Any] = {"outcome": Outcome.KEY_INVALID, "disable": True}
OVERLOADED: dict[str, Any] = {"outcome": Outcome.UPSTREAM_OVERLOADED, "backoff": True}
ERROR: dict[str, Any] = {"outcome": Outcome.UPSTREAM_ERROR}
CLIENT: dict[str, Any] = {"outcome": Outcome.CLIENT_ERROR, "failover": False}
DEFAULT_RATE = rate(DEFAULT_RATE_LIMIT_COOLDOWN, "default")

OPENAI_CASES = [
    Case(
        "openai 429 rate_limit_exceeded requests",
        "openai",
        429,
        openai(OPENAI_RPM, "requests", "rate_limit_exceeded"),
        headers={
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "6m0s",
            "x-ratelimit-remaining-tokens": "29000",
            "x-ratelimit-reset-tokens": "12ms",
        },
        **rate(360.0, "x-ratelimit-reset-requests"),
    ),
    Case(
        "openai 429 rate_limit_exceeded tokens: only the tokens window counts",
        "openai",
        429,
        openai(OPENAI_TPM, "tokens", "rate_limit_exceeded"),
        headers={
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "6m0s",
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-reset-tokens": "2m59.56s",
        },
        **rate(179.56, "x-ratelimit-reset-tokens"),
    ),
    Case(
        "openai 429 retry-after-ms and retry-after: the longest wins",
        "openai",
        429,
        openai(OPENAI_TPM, "tokens", "rate_limit_exceeded"),
        headers={"retry-after-ms": "1500", "retry-after": "2"},
        **rate(2.0, "retry-after"),
    ),
    Case(
        "openai 429 without headers: the message's delay",
        "openai",
        429,
        openai(OPENAI_RPM, "requests", "rate_limit_exceeded"),
        **rate(0.12, "message"),
    ),
    Case(
        "openai 429 insufficient_quota ignores rate windows",
        "openai",
        429,
        openai(OPENAI_QUOTA, "insufficient_quota", "insufficient_quota"),
        headers={"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "12ms"},
        **quota(),
    ),
    Case(
        "openai 429 billing code under type insufficient_quota",
        "openai",
        429,
        openai(
            "Your credit balance is exhausted.", "insufficient_quota", "credit_balance_exhausted"
        ),
        **quota(),
    ),
    Case(
        "openai 400 billing_hard_limit_reached",
        "openai",
        400,
        openai(
            "Billing hard limit has been reached",
            "invalid_request_error",
            "billing_hard_limit_reached",
        ),
        **quota(),
    ),
    Case(
        "openai 401 invalid_api_key",
        "openai",
        401,
        openai(
            "Incorrect API key provided: sk-proj-********************abcd. You can find your API "
            "key at https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        ),
        **INVALID,
    ),
    Case(
        "openai 401 IP not authorized",
        "openai",
        401,
        openai("IP not authorized", "invalid_request_error", None),
        **INVALID,
    ),
    Case(
        "openai 401 not a member of an organization",
        "openai",
        401,
        openai(
            "You must be a member of an organization to use the API.",
            "invalid_request_error",
            "no_organization",
        ),
        **INVALID,
    ),
    Case(
        "openai 403 region not supported: not the key's fault",
        "openai",
        403,
        openai(
            "Country, region, or territory not supported",
            "request_forbidden",
            "unsupported_country_region_territory",
        ),
        **CLIENT,
    ),
    Case(
        "openai 403 other: key_invalid",
        "openai",
        403,
        openai("You are not allowed to sample from this model", "invalid_request_error", None),
        **INVALID,
    ),
    Case(
        "openai 503 overloaded",
        "openai",
        503,
        openai("The engine is currently overloaded, please try again later", "server_error", None),
        **OVERLOADED,
    ),
    Case(
        "openai 429 slow_down",
        "openai",
        429,
        openai(
            "Please reduce your request rate: you are ramping up too quickly.",
            "rate_limit_error",
            "slow_down",
        ),
        headers={"retry-after": "5"},
        **OVERLOADED,
    ),
    Case(
        "openai 500 server_error",
        "openai",
        500,
        openai("The server had an error while processing your request.", "server_error", None),
        **ERROR,
    ),
    Case("openai 502 html", "openai", 502, b"<html><body>Bad gateway</body></html>", **ERROR),
    Case(
        "openai 400 invalid_value",
        "openai",
        400,
        openai("Invalid value for 'temperature'", "invalid_request_error", "invalid_value"),
        **CLIENT,
    ),
    Case(
        "openai 404 model_not_found",
        "openai",
        404,
        openai("The model `gpt-9` does not exist", "invalid_request_error", "model_not_found"),
        **CLIENT,
    ),
    Case("openai 413", "openai", 413, b"", **CLIENT),
    Case("openai 422", "openai", 422, b"{}", **CLIENT),
]

GROQ_MISTRAL_CASES = [
    Case(
        "groq 429 tokens: retry-after beats the tokens window, the day window is ignored",
        "openai",
        429,
        openai(GROQ_TPM, "tokens", "rate_limit_exceeded"),
        headers={
            "retry-after": "10",
            "x-ratelimit-limit-requests": "14400",
            "x-ratelimit-remaining-requests": "14370",
            "x-ratelimit-reset-requests": "2m59.56s",
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-reset-tokens": "7.66s",
        },
        **rate(10.0, "retry-after"),
    ),
    Case(
        "groq 429 requests per day",
        "openai",
        429,
        openai(
            "Rate limit reached for model `llama-3.1-8b-instant` on requests per day (RPD): "
            "Limit 14400, Used 14400, Requested 1. Please try again in 2m59.56s.",
            "requests",
            "rate_limit_exceeded",
        ),
        headers={
            "retry-after": "180",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "2m59.56s",
        },
        **rate(180.0, "retry-after"),
    ),
    Case(
        "mistral 429 rate_limited",
        "openai",
        429,
        body(
            {
                "object": "error",
                "message": "Rate limit exceeded",
                "type": "rate_limited",
                "param": None,
                "code": "1300",
            }
        ),
        headers={"retry-after": "1"},
        **rate(1.0, "retry-after"),
    ),
    Case(
        "mistral 429 message only",
        "openai",
        429,
        body({"message": "Requests rate limit exceeded"}),
        **DEFAULT_RATE,
    ),
]

ANTHROPIC_CASES = [
    Case(
        "anthropic 429 rate_limit_error: the exhausted window beats retry-after",
        "anthropic",
        429,
        anthropic(
            "rate_limit_error",
            "This request would exceed your organization's rate limit of 50 requests per minute",
        ),
        headers={
            "retry-after": "30",
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": rfc3339(45),
            "anthropic-ratelimit-tokens-remaining": "12000",
            "anthropic-ratelimit-tokens-reset": rfc3339(5),
        },
        **rate(45.0, "anthropic-ratelimit-requests-reset"),
    ),
    Case(
        "anthropic 429 input tokens, fractional RFC 3339",
        "anthropic",
        429,
        anthropic(
            "rate_limit_error",
            "This request would exceed your organization's rate limit of 30,000 input tokens "
            "per minute",
        ),
        headers={
            "retry-after": "10",
            "anthropic-ratelimit-input-tokens-remaining": "0",
            "anthropic-ratelimit-input-tokens-reset": "2026-03-15T12:35:08.500Z",
            "anthropic-ratelimit-output-tokens-remaining": "8000",
            "anthropic-ratelimit-output-tokens-reset": rfc3339(50),
        },
        **rate(12.5, "anthropic-ratelimit-input-tokens-reset"),
    ),
    Case(
        "anthropic 429 retry-after only",
        "anthropic",
        429,
        anthropic("rate_limit_error", "Rate limited"),
        headers={"retry-after": "20"},
        **rate(20.0, "retry-after"),
    ),
    Case(
        "anthropic 429 enforced_spend_limit_reached: next month, whatever retry-after says",
        "anthropic",
        429,
        anthropic(
            "rate_limit_error",
            "This request would exceed your account's monthly spend limit. Please try again later.",
            details={"error_code": "enforced_spend_limit_reached"},
        ),
        headers={"retry-after": "600"},
        **quota(NEXT_MONTH, "spend limit: next month"),
    ),
    Case(
        "anthropic 429 monthly spend limit without details",
        "anthropic",
        429,
        anthropic(
            "rate_limit_error",
            "This request would exceed your account's monthly spend limit. Please try again later.",
            details=None,
        ),
        **quota(NEXT_MONTH, "spend limit: next month"),
    ),
    Case(
        "anthropic 400 workspace spend limit",
        "anthropic",
        400,
        anthropic("invalid_request_error", ANTHROPIC_WORKSPACE),
        **quota(NEXT_MONTH, "spend limit: next month"),
    ),
    Case(
        "anthropic 400 credit balance too low",
        "anthropic",
        400,
        anthropic(
            "invalid_request_error",
            "Your credit balance is too low to access the Anthropic API. Please go to Plans & "
            "Billing to upgrade or purchase credits.",
        ),
        **quota(),
    ),
    Case(
        "anthropic 529 overloaded_error",
        "anthropic",
        529,
        anthropic("overloaded_error", "Overloaded"),
        headers={"retry-after": "3"},
        **OVERLOADED,
    ),
    Case(
        "anthropic 401 authentication_error",
        "anthropic",
        401,
        anthropic("authentication_error", "invalid x-api-key"),
        **INVALID,
    ),
    Case(
        "anthropic 402 billing_error",
        "anthropic",
        402,
        anthropic("billing_error", "Your account has a billing issue."),
        **quota(),
    ),
    Case(
        "anthropic 403 permission_error",
        "anthropic",
        403,
        anthropic("permission_error", "Your API key does not have permission to use this model."),
        **INVALID,
    ),
    Case(
        "anthropic 413 request_too_large",
        "anthropic",
        413,
        anthropic("request_too_large", "Request exceeds the maximum allowed number of bytes."),
        **CLIENT,
    ),
    Case(
        "anthropic 404 not_found_error",
        "anthropic",
        404,
        anthropic("not_found_error", "model: claude-9"),
        **CLIENT,
    ),
    Case(
        "anthropic 400 invalid_request_error",
        "anthropic",
        400,
        anthropic("invalid_request_error", "max_tokens: Field required"),
        **CLIENT,
    ),
    Case("anthropic 500 api_error", "anthropic", 500, anthropic("api_error", "Internal"), **ERROR),
]

GEMINI_CASES = [
    Case(
        "gemini 429 per-minute: retryDelay",
        "gemini",
        429,
        gemini(
            429,
            "RESOURCE_EXHAUSTED",
            GEMINI_QUOTA.format(limit=15, prose="46.33s"),
            quota_failure(PER_MINUTE),
            HELP,
            retry_info("46s"),
        ),
        **rate(46.0, "retryDelay"),
    ),
    Case(
        "gemini 429 per-day: midnight Pacific",
        "gemini",
        429,
        gemini(
            429,
            "RESOURCE_EXHAUSTED",
            GEMINI_QUOTA.format(limit=50, prose="5h3m2s"),
            quota_failure(PER_DAY, value="50"),
            HELP,
            retry_info("18182s"),
        ),
        **quota(MIDNIGHT_PACIFIC, "daily quota: midnight Pacific"),
    ),
    Case(
        "gemini 429 per-minute and per-day: the day wins",
        "gemini",
        429,
        gemini(
            429,
            "RESOURCE_EXHAUSTED",
            GEMINI_QUOTA.format(limit=50, prose="40s"),
            quota_failure(PER_MINUTE, PER_DAY),
            retry_info("40s"),
        ),
        **quota(MIDNIGHT_PACIFIC, "daily quota: midnight Pacific"),
    ),
    Case(
        "gemini 429 per-day with a retryDelay beyond midnight",
        "gemini",
        429,
        gemini(429, "RESOURCE_EXHAUSTED", "quota", quota_failure(PER_DAY), retry_info("90000s")),
        **quota(90000.0, "retryDelay"),
    ),
    Case(
        "gemini 429 limit: 0",
        "gemini",
        429,
        gemini(
            429,
            "RESOURCE_EXHAUSTED",
            GEMINI_QUOTA.format(limit=0, prose="20s"),
            quota_failure(PER_MINUTE, value="0"),
            retry_info("20s"),
        ),
        **quota(MIDNIGHT_PACIFIC, "limit: 0"),
    ),
    Case(
        "gemini 429 limit: 0 in the message only",
        "gemini",
        429,
        gemini(429, "RESOURCE_EXHAUSTED", GEMINI_QUOTA.format(limit=0, prose="20s")),
        **quota(MIDNIGHT_PACIFIC, "limit: 0"),
    ),
    Case(
        "gemini 429 without details",
        "gemini",
        429,
        gemini(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
        **DEFAULT_RATE,
    ),
    Case(
        "gemini 400 API_KEY_INVALID",
        "gemini",
        400,
        gemini(
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
            error_info("API_KEY_INVALID"),
            {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US"},
        ),
        **INVALID,
    ),
    Case(
        "gemini 400 API key expired",
        "gemini",
        400,
        gemini(
            400,
            "INVALID_ARGUMENT",
            "API key expired. Please renew the API key.",
            error_info("API_KEY_INVALID"),
        ),
        **INVALID,
    ),
    Case(
        "gemini 403 PERMISSION_DENIED",
        "gemini",
        403,
        gemini(
            403,
            "PERMISSION_DENIED",
            "Permission denied: Consumer 'api_key:AIza...' has been suspended.",
            error_info("CONSUMER_SUSPENDED"),
        ),
        **INVALID,
    ),
    Case(
        "gemini 400 FAILED_PRECONDITION billing",
        "gemini",
        400,
        gemini(
            400,
            "FAILED_PRECONDITION",
            "Gemini API free tier is not available in your country. Please enable billing on "
            "your project in Google AI Studio.",
        ),
        **quota(),
    ),
    Case(
        "gemini 400 FAILED_PRECONDITION location: not the key's fault",
        "gemini",
        400,
        gemini(400, "FAILED_PRECONDITION", "User location is not supported for the API use."),
        **CLIENT,
    ),
    Case(
        "gemini 400 INVALID_ARGUMENT",
        "gemini",
        400,
        gemini(400, "INVALID_ARGUMENT", 'Invalid JSON payload received. Unknown name "foo"'),
        **CLIENT,
    ),
    Case(
        "gemini 503 UNAVAILABLE",
        "gemini",
        503,
        gemini(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
        **OVERLOADED,
    ),
    Case(
        "gemini 500 INTERNAL",
        "gemini",
        500,
        gemini(500, "INTERNAL", "An internal error has occurred."),
        **ERROR,
    ),
    Case(
        "gemini 504 DEADLINE_EXCEEDED",
        "gemini",
        504,
        gemini(504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
        **ERROR,
    ),
    Case(
        "gemini list-shaped body",
        "gemini",
        429,
        b"[" + gemini(429, "RESOURCE_EXHAUSTED", "q", retry_info("7s")) + b"]",
        **rate(7.0, "retryDelay"),
    ),
]

GENERIC_CASES = [
    Case(
        "generic 429 x-ratelimit-reset epoch",
        "generic",
        429,
        b'{"message": "Too Many Requests"}',
        headers={"x-ratelimit-reset": str(int(NOW) + 90)},
        **rate(90.0, "x-ratelimit-reset"),
    ),
    Case(
        "generic 429 x-ratelimit-reset delta",
        "generic",
        429,
        b"",
        headers={"x-ratelimit-reset": "30"},
        **rate(30.0, "x-ratelimit-reset"),
    ),
    Case(
        "generic 429 absurd retry-after is clamped",
        "generic",
        429,
        b"",
        headers={"retry-after": "99999999999"},
        **rate(MAX_RESET_SECONDS, "retry-after"),
    ),
    Case("generic 429 html", "generic", 429, b"<html>Too Many Requests</html>", **DEFAULT_RATE),
    Case("generic 401", "generic", 401, b"Unauthorized", **INVALID),
    Case("generic 403", "generic", 403, b"", **INVALID),
    Case("generic 402", "generic", 402, b"", **quota()),
    Case(
        "generic 402 with retry-after",
        "generic",
        402,
        b"",
        headers={"retry-after": "120"},
        **quota(120.0, "retry-after"),
    ),
    Case("generic 500", "generic", 500, b"", **ERROR),
    Case("generic 502 html says unavailable", "generic", 502, b"Service Unavailable", **ERROR),
    Case("generic 503", "generic", 503, b"", **OVERLOADED),
    Case("generic 529", "generic", 529, b"", **OVERLOADED),
    Case("generic 404", "generic", 404, b"Not Found", **CLIENT),
    Case("generic 400", "generic", 400, b'{"error": "bad request"}', **CLIENT),
    Case(
        "generic insufficient_quota",
        "generic",
        429,
        openai(OPENAI_QUOTA, "insufficient_quota", "insufficient_quota"),
        **quota(),
    ),
    Case(
        "generic enforced_spend_limit_reached",
        "generic",
        429,
        anthropic("rate_limit_error", "x", details={"error_code": "enforced_spend_limit_reached"}),
        **quota(NEXT_MONTH, "spend limit: next month"),
    ),
    Case(
        "generic API_KEY_INVALID on a 400",
        "generic",
        400,
        gemini(400, "INVALID_ARGUMENT", "API key not valid.", error_info("API_KEY_INVALID")),
        **INVALID,
    ),
    Case(
        "generic overloaded_error on a 500",
        "generic",
        500,
        anthropic("overloaded_error", "Overloaded"),
        **OVERLOADED,
    ),
    Case(
        "generic region not supported",
        "generic",
        403,
        openai(
            "Country, region, or territory not supported",
            "request_forbidden",
            "unsupported_country_region_territory",
        ),
        **CLIENT,
    ),
    Case(
        "generic does not know openai's slow_down",
        "generic",
        429,
        openai("Please reduce your request rate.", None, "slow_down"),
        **DEFAULT_RATE,
    ),
    Case(
        "generic 'limit: 0' outside a Gemini body is a rate limit",
        "generic",
        429,
        b'{"error": {"message": "Rate limit: 0 requests left in this window"}}',
        **DEFAULT_RATE,
    ),
    Case(
        "generic gemini per-day body",
        "generic",
        429,
        gemini(429, "RESOURCE_EXHAUSTED", "q", quota_failure(PER_DAY), retry_info("60s")),
        **quota(MIDNIGHT_PACIFIC, "daily quota: midnight Pacific"),
    ),
]

BODY_CASES = [
    Case(
        "truncated JSON: quoted fields still read",
        "openai",
        429,
        openai(OPENAI_QUOTA, "insufficient_quota", "insufficient_quota")[-90:],
        **quota(),
    ),
    Case(
        "truncated gemini JSON: retryDelay still read",
        "gemini",
        429,
        gemini(429, "RESOURCE_EXHAUSTED", "q", quota_failure(PER_MINUTE), retry_info("33s"))[:-3],
        **rate(33.0, "retryDelay"),
    ),
    Case(
        "plain text identifier",
        "openai",
        429,
        b"error: insufficient_quota (you exceeded your current quota)",
        **quota(),
    ),
    Case(
        "gzip bytes without content-encoding: decoded",
        "openai",
        429,
        gzip.compress(openai(OPENAI_QUOTA, "insufficient_quota", "insufficient_quota")),
        **quota(),
    ),
    Case(
        "content-encoding gzip insufficient_quota: decoded, a quota",
        "openai",
        429,
        gzip.compress(openai(OPENAI_QUOTA, "insufficient_quota", "insufficient_quota")),
        headers={"content-encoding": "gzip"},
        **quota(),
    ),
    Case(
        "content-encoding gzip gemini API_KEY_INVALID: decoded, invalid",
        "gemini",
        400,
        gzip.compress(
            gemini(400, "INVALID_ARGUMENT", "API key not valid.", error_info("API_KEY_INVALID"))
        ),
        headers={"content-encoding": "gzip"},
        **INVALID,
    ),
    Case(
        "content-encoding deflate insufficient_quota",
        "openai",
        429,
        zlib.compress(openai(OPENAI_QUOTA, "insufficient_quota", "insufficient_quota")),
        headers={"content-encoding": "deflate"},
        **quota(),
    ),
    Case(
        "content-encoding br insufficient_quota",
        "openai",
        429,
        brotli.compress(openai(OPENAI_QUOTA, "insufficient_quota", "insufficient_quota")),
        headers={"content-encoding": "br"},
        **quota(),
    ),
    Case(
        "content-encoding gzip, a bomb: decoded only up to the bound",
        "openai",
        429,
        gzip.compress(
            openai(OPENAI_QUOTA, "insufficient_quota", "insufficient_quota")[:-2]
            + b" " * (8 << 20)
            + b"}}"
        ),
        headers={"content-encoding": "gzip"},
        **quota(),  # the quoted fields of the first 64 KiB still say so
    ),
    Case(
        "content-encoding gzip, corrupt: status only",
        "openai",
        429,
        b"\x1f\x8b\x08\x00corrupt-gzip-body-insufficient_quota",
        headers={"content-encoding": "gzip"},
        **DEFAULT_RATE,
    ),
    Case(
        "content-encoding unknown: status only",
        "openai",
        429,
        openai(OPENAI_QUOTA, "insufficient_quota", "insufficient_quota"),
        headers={"content-encoding": "zstd"},
        **DEFAULT_RATE,
    ),
    Case(
        "content-encoding br, unreadable: status only",
        "anthropic",
        401,
        bytes(range(7, 200)),
        headers={"content-encoding": "br"},
        **INVALID,
    ),
    Case(
        "not UTF-8",
        "openai",
        500,
        b"\xff\xfe\x00garbage",
        **ERROR,
    ),
    Case(
        "deeply nested JSON",
        "openai",
        400,
        b"[" * 100_000,
        **CLIENT,
    ),
]

ALL_CASES = [
    *OPENAI_CASES,
    *GROQ_MISTRAL_CASES,
    *ANTHROPIC_CASES,
    *GEMINI_CASES,
    *GENERIC_CASES,
    *BODY_CASES,
]


def classify(case: Case, cooldown: float = COOLDOWN) -> Verdict:
    classifier = Classifier(case.profile, cooldown)
    return classifier.classify(case.status, case.headers or {}, case.body, NOW)


def check(got: Verdict | None, case: Case) -> None:
    assert got is not None
    assert (got.outcome, got.failover, got.disable, got.backoff, got.source) == (
        case.outcome,
        case.failover,
        case.disable,
        case.backoff,
        case.source,
    )
    if case.cooldown is None:
        assert got.cooldown is None
    else:
        assert got.cooldown == pytest.approx(case.cooldown, abs=1e-6)


@pytest.mark.parametrize("case", ALL_CASES, ids=[c.id for c in ALL_CASES])
def test_classify(case: Case) -> None:
    check(classify(case), case)


def test_every_case_id_is_unique() -> None:
    assert len({c.id for c in ALL_CASES}) == len(ALL_CASES)


# ---------------------------------------------------------------- details


class Untouchable(Mapping[str, str]):
    def __getitem__(self, key: str) -> str:
        raise AssertionError("the success path must not read headers")

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("the success path must not read headers")

    def __len__(self) -> int:
        raise AssertionError("the success path must not read headers")


@pytest.mark.parametrize("status", [100, 200, 201, 204, 206, 301, 304, 399])
def test_success_is_a_constant(status: int) -> None:
    classifier = Classifier("openai", COOLDOWN, (StatusRule(status, "failover"),))
    assert classifier.classify(status, Untouchable(), b'{"error": {}}', NOW) is SUCCESS
    assert Verdict(Outcome.SUCCESS) == SUCCESS


def test_ready_made_verdicts() -> None:
    assert Verdict(Outcome.NETWORK_ERROR, failover=True) == NETWORK_ERROR
    assert Verdict(Outcome.TIMEOUT, failover=True) == TIMEOUT
    assert Verdict(Outcome.CLIENT_ERROR) == CLIENT_ERROR
    assert Outcome.UPSTREAM_OVERLOADED.value == "upstream_overloaded"


def test_rate_limit_default_never_exceeds_cooldown_seconds() -> None:
    got = Classifier("generic", 5).classify(429, {}, b"", NOW)
    assert (got.cooldown, got.source) == (5, "default")


def test_limit_zero_parks_at_least_cooldown_seconds() -> None:
    case = next(c for c in GEMINI_CASES if c.id == "gemini 429 limit: 0")
    got = classify(case, cooldown=200_000.0)
    assert (got.outcome, got.cooldown, got.source) == (
        Outcome.QUOTA_EXHAUSTED,
        200_000.0,
        "limit: 0",
    )


def test_spend_limit_in_december_lasts_until_january() -> None:
    now = at(2026, 12, 20, 10)
    case = next(c for c in ANTHROPIC_CASES if "enforced_spend_limit_reached" in c.id)
    got = Classifier("anthropic", COOLDOWN).classify(429, {}, case.body, now)
    assert got.cooldown == pytest.approx(at(2027, 1, 1) - now)
    assert got.source == "spend limit: next month"


def test_case_insensitive_headers() -> None:
    headers = CIMultiDictProxy(CIMultiDict({"Retry-After": "17", "Content-Type": "text/plain"}))
    got = Classifier("openai", COOLDOWN).classify(429, headers, b"", NOW)
    assert (got.cooldown, got.source) == (17.0, "retry-after")


def test_large_body_is_read_by_its_head() -> None:
    padding = "x" * 100_000
    doc = {"error": {"message": padding, "status": "RESOURCE_EXHAUSTED"}}
    got = Classifier("gemini", COOLDOWN).classify(429, {}, body(doc), NOW)
    assert got.outcome is Outcome.RATE_LIMITED


def payloads() -> list[bytes]:
    return [c.body for c in ALL_CASES if 0 < len(c.body) < 4096]


def test_never_raises_on_truncated_or_random_bodies() -> None:
    rng = random.Random(7)
    garbage = [bytes(rng.randrange(256) for _ in range(rng.randrange(300))) for _ in range(200)]
    headers = {
        "retry-after": "x",
        "x-ratelimit-reset": "nan",
        "anthropic-ratelimit-tokens-reset": "?",
    }
    for profile in ("openai", "anthropic", "gemini", "generic"):
        classifier = Classifier(profile, COOLDOWN)
        for payload in payloads():
            for cut in range(0, len(payload), 7):
                for status in (400, 429, 503):
                    got = classifier.classify(status, headers, payload[:cut], NOW)
                    assert isinstance(got, Verdict)
                event = b"event: error\ndata: " + payload[:cut]
                assert classifier.classify_stream_start(event, headers, NOW) is not None
        for blob in garbage:
            assert isinstance(classifier.classify(429, {}, blob, NOW), Verdict)
            classifier.classify_stream_start(blob, {}, NOW)


# ---------------------------------------------------------------- on_status rules


def ruled(*rules: StatusRule, profile: str = "openai") -> Classifier:
    return Classifier(profile, COOLDOWN, rules)


TEMPORARY = openai("The server is temporarily unable to serve", "invalid_request_error", None)


def test_rule_retry() -> None:
    got = ruled(StatusRule(400, "retry", "temporarily")).classify(400, {}, TEMPORARY, NOW)
    assert got == Verdict(
        Outcome.UPSTREAM_ERROR, failover=True, backoff=True, source="on_status[0]"
    )


def test_rule_retry_keeps_the_profile_outcome() -> None:
    got = ruled(StatusRule(429, "retry")).classify(
        429, {"retry-after": "9"}, openai(OPENAI_RPM, "requests", "rate_limit_exceeded"), NOW
    )
    assert got == Verdict(Outcome.RATE_LIMITED, failover=True, backoff=True, source="on_status[0]")


def test_rule_failover() -> None:
    got = ruled(StatusRule(404, "failover")).classify(404, {}, b"no such deployment", NOW)
    assert got == Verdict(Outcome.UPSTREAM_ERROR, failover=True, source="on_status[0]")


def test_rule_cooldown() -> None:
    classifier = ruled(
        StatusRule(400, "cooldown", "free tier", 900.0),
        StatusRule(429, "cooldown", None, 7200.0),
    )
    got = classifier.classify(400, {}, b'{"error": "Free tier exhausted"}', NOW)
    assert got == Verdict(
        Outcome.RATE_LIMITED, failover=True, cooldown=900.0, source="on_status[0]"
    )
    got = classifier.classify(
        429, {}, openai(OPENAI_QUOTA, "insufficient_quota", "insufficient_quota"), NOW
    )
    assert got == Verdict(
        Outcome.QUOTA_EXHAUSTED, failover=True, cooldown=7200.0, source="on_status[1]"
    )


def test_rule_disable() -> None:
    got = ruled(StatusRule(400, "disable", "SUSPENDED")).classify(
        400, {}, b'{"error": {"message": "account suspended"}}', NOW
    )
    assert got == Verdict(Outcome.KEY_INVALID, failover=True, disable=True, source="on_status[0]")


def test_rule_relay() -> None:
    got = ruled(StatusRule(401, "relay")).classify(
        401, {}, openai("Incorrect API key", "invalid_request_error", "invalid_api_key"), NOW
    )
    assert got == Verdict(Outcome.KEY_INVALID, source="on_status[0]")
    got = ruled(StatusRule(503, "relay"), profile="gemini").classify(503, {}, b"", NOW)
    assert got == Verdict(Outcome.UPSTREAM_OVERLOADED, source="on_status[0]")


def test_rules_first_match_wins_and_need_their_status_and_text() -> None:
    classifier = ruled(
        StatusRule(403, "relay", "region"),
        StatusRule(429, "disable"),
        StatusRule(403, "cooldown", "forbidden", 60.0),
        StatusRule(403, "failover"),
    )
    forbidden = openai("Forbidden", "request_forbidden", None)
    assert classifier.classify(403, {}, forbidden, NOW).source == "on_status[2]"
    assert classifier.classify(403, {}, b"Region blocked", NOW).source == "on_status[0]"
    assert classifier.classify(403, {}, b"nope", NOW).source == "on_status[3]"
    assert classifier.classify(401, {}, b"nope", NOW) == Verdict(
        Outcome.KEY_INVALID, failover=True, disable=True, confirm=True
    )  # the profile's: disabled once confirmed (verify.py); a rule's disable needs no confirming


def test_rule_with_an_unknown_action_is_skipped() -> None:
    got = ruled(StatusRule(404, "explode"), StatusRule(404, "failover")).classify(404, {}, b"", NOW)
    assert got.source == "on_status[1]"


# ---------------------------------------------------------------- streams

ANTHROPIC_STREAM_HEADERS = {
    "content-type": "text/event-stream; charset=utf-8",
    "anthropic-ratelimit-requests-remaining": "49",
    "anthropic-ratelimit-requests-reset": rfc3339(30),
}


def event(name: str | None, data: bytes | str, newline: str = "\n") -> bytes:
    text = data.decode() if isinstance(data, bytes) else data
    lines = ([f"event: {name}"] if name else []) + [f"data: {text}"]
    return newline.join(lines).encode() + newline.encode()


STREAM_CASES = [
    Case(
        "anthropic error event overloaded_error",
        "anthropic",
        200,
        event("error", anthropic("overloaded_error", "Overloaded")),
        **OVERLOADED,
    ),
    Case(
        "anthropic error event over CRLF",
        "anthropic",
        200,
        event("error", anthropic("overloaded_error", "Overloaded"), "\r\n"),
        **OVERLOADED,
    ),
    Case(
        "anthropic error event rate_limit_error",
        "anthropic",
        200,
        event("error", anthropic("rate_limit_error", "Rate limited")),
        headers=ANTHROPIC_STREAM_HEADERS,
        **DEFAULT_RATE,
    ),
    Case(
        "anthropic error event spend limit",
        "anthropic",
        200,
        event(
            "error",
            anthropic(
                "rate_limit_error", "x", details={"error_code": "enforced_spend_limit_reached"}
            ),
        ),
        **quota(NEXT_MONTH, "spend limit: next month"),
    ),
    Case(
        "anthropic error event invalid_request_error: relayed",
        "anthropic",
        200,
        event("error", anthropic("invalid_request_error", "messages: too long")),
        **CLIENT,
    ),
    Case(
        "openai data error insufficient_quota",
        "openai",
        200,
        event(None, openai(OPENAI_QUOTA, "insufficient_quota", "insufficient_quota")),
        **quota(),
    ),
    Case(
        "openai data error server_error",
        "openai",
        200,
        event(None, openai("The server had an error", "server_error", None)),
        **ERROR,
    ),
    Case(
        "openai data error over CRLF, multi-line data",
        "openai",
        200,
        b'data: {"error": {"message": "Incorrect API key",\r\n'
        b'data:  "code": "invalid_api_key"}}\r\n',
        **INVALID,
    ),
    Case(
        "gemini data error UNAVAILABLE",
        "gemini",
        200,
        event(None, gemini(503, "UNAVAILABLE", "The model is overloaded.")),
        **OVERLOADED,
    ),
    Case(
        "gemini data error RESOURCE_EXHAUSTED with retryDelay",
        "gemini",
        200,
        event(None, gemini(429, "RESOURCE_EXHAUSTED", "q", retry_info("30s"))),
        **rate(30.0, "retryDelay"),
    ),
    Case("unknown error event", "generic", 200, b"event: error\ndata: oops\n", **ERROR),
    Case("error event without data", "generic", 200, b"event: error\n", **ERROR),
]


@pytest.mark.parametrize("case", STREAM_CASES, ids=[c.id for c in STREAM_CASES])
def test_stream_start_error(case: Case) -> None:
    classifier = Classifier(case.profile, COOLDOWN)
    check(classifier.classify_stream_start(case.body, case.headers or {}, NOW), case)


@pytest.mark.parametrize(
    "first_event",
    [
        b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,'
        b'"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n',
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1",'
        b'"type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5"}}\n',
        b'event: ping\ndata: {"type": "ping"}\n',
        b'event: ping\r\ndata: {"type": "ping"}\r\n',
        b": keep-alive\n",
        b'data: {"candidates":[{"content":{"parts":[{"text":"Hi"}],"role":"model"}}]}\r\n',
        b'data: {"id": "x", "error": null, "choices": []}\n',
        b'data: {"choices":[{"delta":{"content":"{\\"error\\": 1}"}}]}\n',
        b"data: [DONE]\n",
        b"",
        b"\n\n",
    ],
)
def test_stream_start_content_is_none(first_event: bytes) -> None:
    classifier = Classifier("openai", COOLDOWN)
    assert classifier.classify_stream_start(first_event, {}, NOW) is None


def test_stream_start_reads_only_the_first_event() -> None:
    block = b'data: {"id": 1}\n\nevent: error\ndata: {"error": {"type": "overloaded_error"}}\n'
    assert Classifier("anthropic", COOLDOWN).classify_stream_start(block, {}, NOW) is None


def test_stream_start_applies_rules_to_the_status_it_stands_for() -> None:
    classifier = ruled(StatusRule(529, "relay"), profile="anthropic")
    got = classifier.classify_stream_start(
        event("error", anthropic("overloaded_error", "Overloaded")), {}, NOW
    )
    assert got == Verdict(Outcome.UPSTREAM_OVERLOADED, source="on_status[0]")


# ---------------------------------------------------------------- profiles


@pytest.mark.parametrize(
    ("url", "profile"),
    [
        ("https://api.openai.com/v1", "openai"),
        ("https://API.GROQ.COM/openai/v1", "openai"),
        ("https://api.mistral.ai", "openai"),
        ("https://my-resource.openai.azure.com/openai/deployments/gpt-4o", "openai"),
        ("https://api.anthropic.com/", "anthropic"),
        ("https://generativelanguage.googleapis.com/v1beta", "gemini"),
        ("api.openai.com/v1", "openai"),
        ("https://api.openai.com.:443/v1", "openai"),
        ("http://localhost:8000", "generic"),
        ("https://example.com/api.openai.com", "generic"),
        ("https://api.openai.com.example.com", "generic"),
        ("https://openai.azure.com.example.com", "generic"),
        ("", "generic"),
        ("http://[::1", "generic"),
    ],
)
def test_detect_provider(url: str, profile: str) -> None:
    assert detect_provider(url) == profile


def test_from_config_resolves_auto_and_takes_rules() -> None:
    rules = (StatusRule(400, "cooldown", "quota", 60.0),)
    config = PoolConfig(
        name="p",
        route="/",
        upstream_base_url="https://api.anthropic.com",
        keys=(),
        cooldown_seconds=120.0,
        on_status=rules,
    )
    assert Classifier.from_config(config) == Classifier("anthropic", 120.0, rules)
    explicit = PoolConfig(
        name="p", route="/", upstream_base_url="https://llm.internal", keys=(), provider="gemini"
    )
    assert Classifier.from_config(explicit).profile == "gemini"
    auto = PoolConfig(name="p", route="/", upstream_base_url="https://llm.internal", keys=())
    assert Classifier.from_config(auto).profile == "generic"


def test_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="auto"):
        Classifier("auto", COOLDOWN)


def test_reset_helpers_are_still_exported() -> None:
    assert parse_duration("6m0s") == 360.0
    assert parse_retry_after("30", NOW) == 30.0
    assert reset_after({"retry-after": "30"}, NOW) == (30.0, "retry-after")
