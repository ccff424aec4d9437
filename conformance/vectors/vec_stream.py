"""Vectors of the first event of a 2xx stream (an error event gets the verdict its answer would
have had; content gets none) and of the profile detected from an upstream base URL."""

from __future__ import annotations

import json
from typing import Any

from vec_common import (
    CLIENT,
    DEFAULT_RATE,
    ERROR,
    INVALID,
    MONTHLY,
    OPENAI_QUOTA,
    OVERLOADED,
    PER_DAY,
    PER_MINUTE,
    Vector,
    daily,
    detect,
    error_info,
    gemini_error,
    gemini_rate,
    on_status,
    quota,
    quota_failure,
    rate,
    retry_info,
    spend_cap,
    stream,
    verdict,
)


def _sse(data: Any, event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    text = data if isinstance(data, str) else json.dumps(data)
    return f"{head}data: {text}\n\n"


def _anthropic(type_: str, message: str, **extra: Any) -> str:
    return _sse({"type": "error", "error": {"type": type_, "message": message, **extra}}, "error")


def _openai(message: str, type_: str | None, code: str | None) -> str:
    return _sse({"error": {"message": message, "type": type_, "param": None, "code": code}})


def stream_vectors() -> list[Vector]:
    e, c = "stream_start.event_status.", "stream_start.content"
    minute = json.loads(gemini_rate(quota_failure(PER_MINUTE), retry_info("46s")))
    day = json.loads(gemini_rate(quota_failure(PER_DAY, value="50"), retry_info("46s"), limit=50))
    message_start = {
        "type": "message_start",
        "message": {"id": "msg_01", "type": "message", "role": "assistant", "content": []},
    }
    chunk = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": "Hello"}}],
    }
    said_error = {"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {"content": "error"}}]}
    candidate = [{"candidates": [{"content": {"parts": [{"text": "Hi"}], "role": "model"}}]}]
    overloaded = _anthropic("overloaded_error", "Overloaded")
    return [
        stream("anthropic/stream_overloaded_error", e + "overloaded_error", "anthropic",
               overloaded, OVERLOADED),
        stream("anthropic/stream_rate_limit_error", e + "rate_limit_error", "anthropic",
               _anthropic("rate_limit_error", "Rate limited"), DEFAULT_RATE),
        stream("anthropic/stream_rate_limit_error_cooldown_30", e + "rate_limit_error",
               "anthropic", _anthropic("rate_limit_error", "Rate limited"),
               rate(30.0, "default"), cooldown=30.0),
        stream("anthropic/stream_rate_limit_headers", e + "rate_limit_error", "anthropic",
               _anthropic("rate_limit_error", "Rate limited"), rate(15.0, "retry-after"),
               headers={"Retry-After": "15"}),
        stream("anthropic/stream_monthly_spend_limit", e + "rate_limit_error(phrase)",
               "anthropic", _anthropic("rate_limit_error", MONTHLY), spend_cap()),
        stream("anthropic/stream_enforced_spend_limit_reached",
               e + "enforced_spend_limit_reached", "anthropic",
               _anthropic("rate_limit_error", "Over the limit.",
                          details={"error_code": "enforced_spend_limit_reached"}), spend_cap()),
        stream("anthropic/stream_authentication_error", e + "authentication_error", "anthropic",
               _anthropic("authentication_error", "invalid x-api-key"), INVALID),
        stream("anthropic/stream_billing_error", e + "billing_error", "anthropic",
               _anthropic("billing_error", "Billing issue."), quota()),
        stream("anthropic/stream_permission_error", e + "permission_error", "anthropic",
               _anthropic("permission_error", "No permission."), INVALID),
        stream("anthropic/stream_invalid_request_error", e + "invalid_request_error",
               "anthropic", _anthropic("invalid_request_error", "Bad request."), CLIENT),
        stream("anthropic/stream_not_found_error", e + "not_found_error", "anthropic",
               _anthropic("not_found_error", "model: claude-9"), CLIENT),
        stream("anthropic/stream_request_too_large", e + "request_too_large", "anthropic",
               _anthropic("request_too_large", "Too large."), CLIENT),
        stream("anthropic/stream_api_error", "stream_start.status_500", "anthropic",
               _anthropic("api_error", "Internal server error"), ERROR),
        stream("anthropic/stream_crlf", e + "overloaded_error(crlf)", "anthropic",
               overloaded.replace("\n", "\r\n"), OVERLOADED),
        stream("anthropic/stream_data_before_event", e + "overloaded_error(field order)",
               "anthropic",
               'data: {"type":"error","error":{"type":"overloaded_error"}}\nevent: error\n\n',
               OVERLOADED),
        stream("anthropic/stream_on_status_relay", "on_status.relay(stream)", "anthropic",
               overloaded, verdict("upstream_overloaded", failover=False, source="on_status[0]"),
               on_status=[on_status(529, "relay")]),
        stream("anthropic/stream_on_status_match", "on_status.cooldown(stream, match)",
               "anthropic", _anthropic("invalid_request_error", "Workspace is paused."),
               rate(120.0, "on_status[0]"),
               on_status=[on_status(400, "cooldown", "workspace is paused", 120.0)]),
        stream("anthropic/stream_message_start", c, "anthropic",
               _sse(message_start, "message_start"), None),
        stream("anthropic/stream_ping", c, "anthropic", _sse({"type": "ping"}, "ping"), None),
        stream("anthropic/stream_only_first_block", c + "(first block only)", "anthropic",
               _sse(message_start, "message_start") + overloaded, None),
        stream("openai/stream_insufficient_quota", e + "insufficient_quota", "openai",
               _openai(OPENAI_QUOTA, "insufficient_quota", "insufficient_quota"), quota()),
        stream("openai/stream_rate_limit_exceeded", e + "rate_limit_exceeded", "openai",
               _openai("Rate limit reached.", None, "rate_limit_exceeded"), DEFAULT_RATE,
               headers={"x-ratelimit-remaining-requests": "499",
                        "x-ratelimit-reset-requests": "120ms",
                        "x-ratelimit-remaining-tokens": "29000",
                        "x-ratelimit-reset-tokens": "2ms"}),
        stream("openai/stream_slow_down", e + "slow_down", "openai",
               _openai("Slow down.", None, "slow_down"), OVERLOADED),
        stream("generic/stream_enforced_spend_limit_reached_only",
               e + "enforced_spend_limit_reached", "generic",
               _sse({"error": {"details": {"error_code": "enforced_spend_limit_reached"}}}),
               spend_cap()),
        stream("generic/stream_slow_down", e + "slow_down", "generic",
               _openai("Slow down.", None, "slow_down"), DEFAULT_RATE),
        stream("openai/stream_slow_down_on_status", e + "slow_down(on_status 429)", "openai",
               _openai("Slow down.", None, "slow_down"),
               verdict("upstream_overloaded", failover=False, source="on_status[0]"),
               on_status=[on_status(429, "relay")]),
        stream("openai/stream_invalid_api_key_code_only", e + "invalid_api_key", "openai",
               _sse({"error": {"code": "invalid_api_key"}}), INVALID),
        stream("openai/stream_invalid_api_key", e + "invalid_api_key", "openai",
               _openai("Incorrect API key.", "invalid_request_error", "invalid_api_key"),
               INVALID),
        stream("openai/stream_multiline_data", e + "insufficient_quota(multi-line data)",
               "openai",
               'data: {"error":\ndata: {"type": "insufficient_quota", "code": null}}\n\n',
               quota()),
        stream("openai/stream_error_string_payload", "stream_start.status_500", "openai",
               _sse({"error": "rate_limit_exceeded"}), ERROR),
        stream("openai/stream_event_error_not_json", e + "none(bare overloaded_error)",
               "openai", "event: error\ndata: upstream overloaded_error\n\n", OVERLOADED),
        stream("generic/stream_event_error_plain", "stream_start.status_500", "generic",
               "event: error\ndata: something broke\n\n", ERROR),
        stream("generic/stream_unknown_type", "stream_start.status_500", "generic",
               _sse({"error": {"type": "weird_error"}}, "error"), ERROR),
        stream("generic/stream_invalid_argument", e + "invalid_argument", "generic",
               _sse({"error": {"status": "INVALID_ARGUMENT"}}), CLIENT),
        stream("generic/stream_unavailable", e + "unavailable", "generic",
               _sse({"error": {"status": "UNAVAILABLE"}}), OVERLOADED),
        stream("generic/stream_unauthenticated", e + "unauthenticated", "generic",
               _sse({"error": {"status": "UNAUTHENTICATED"}}), INVALID),
        stream("generic/stream_permission_denied", e + "permission_denied", "generic",
               _sse({"error": {"status": "PERMISSION_DENIED"}}), INVALID),
        stream("openai/stream_content_chunk", c, "openai", _sse(chunk), None),
        stream("openai/stream_done", c, "openai", "data: [DONE]\n\n", None),
        stream("openai/stream_error_null", c + "(error null)", "openai",
               _sse({"error": None, "choices": []}), None),
        stream("openai/stream_content_says_error", c + "(the word error)", "openai",
               _sse(said_error), None),
        stream("generic/stream_comment_only", c + "(comment)", "generic", ": keep-alive\n\n",
               None),
        stream("gemini/stream_resource_exhausted", "stream_start.numeric_code", "gemini",
               _sse(minute), rate(46.0, "retryDelay")),
        stream("gemini/stream_list_unavailable", "stream_start.list_payload", "gemini",
               _sse([gemini_error(503, "UNAVAILABLE", "The model is overloaded.")]), OVERLOADED),
        stream("gemini/stream_list_per_day", "stream_start.list_payload", "gemini",
               _sse([day]), daily()),
        stream("gemini/stream_api_key_invalid", "stream_start.numeric_code", "gemini",
               _sse(gemini_error(400, "INVALID_ARGUMENT", "API key not valid.",
                                 error_info("API_KEY_INVALID"))), INVALID),
        stream("gemini/stream_internal_500", "stream_start.numeric_code", "gemini",
               _sse(gemini_error(500, "INTERNAL", "An internal error has occurred.")), ERROR),
        stream("gemini/stream_numeric_code_wins", "stream_start.numeric_code", "gemini",
               _sse(gemini_error(503, "RESOURCE_EXHAUSTED", "Quota.")), OVERLOADED),
        stream("gemini/stream_code_not_http", e + "resource_exhausted(code not HTTP)", "gemini",
               _sse({"error": {"code": 8, "status": "RESOURCE_EXHAUSTED"}}), DEFAULT_RATE),
        stream("gemini/stream_content_list", c, "gemini", _sse(candidate), None),
        stream("gemini/stream_empty_list", c + "(empty list)", "gemini", "data: []\n\n", None),
    ]  # fmt: skip


def detect_vectors() -> list[Vector]:
    h = "detect.hosts."
    return [
        detect("detect/openai", h + "api.openai.com", "https://api.openai.com/v1", "openai"),
        detect("detect/groq", h + "api.groq.com", "https://api.groq.com/openai/v1", "openai"),
        detect("detect/mistral", h + "api.mistral.ai", "https://api.mistral.ai/v1", "openai"),
        detect("detect/anthropic", h + "api.anthropic.com", "https://api.anthropic.com",
               "anthropic"),
        detect("detect/gemini", h + "generativelanguage.googleapis.com",
               "https://generativelanguage.googleapis.com/v1beta", "gemini"),
        detect("detect/azure", "detect.host_suffixes[.openai.azure.com]",
               "https://my-resource.openai.azure.com/openai/deployments/gpt-4o", "openai"),
        detect("detect/azure_bare_suffix", "detect.host_suffixes(not the suffix itself)",
               "https://openai.azure.com", "generic"),
        detect("detect/upper_case_host", h + "(case)", "HTTPS://API.OPENAI.COM/v1", "openai"),
        detect("detect/trailing_dot", h + "(trailing dot)", "https://api.anthropic.com./v1",
               "anthropic"),
        detect("detect/port", h + "(port)", "https://api.groq.com:443/openai/v1", "openai"),
        detect("detect/no_scheme", h + "(no scheme)", "api.mistral.ai/v1", "openai"),
        detect("detect/whitespace", h + "(spaces)", "  https://api.openai.com  ", "openai"),
        detect("detect/user_info", h + "(userinfo)", "https://user@api.anthropic.com/v1",
               "anthropic"),
        detect("detect/subdomain", "detect.generic(not listed)", "https://eu.api.openai.com",
               "generic"),
        detect("detect/lookalike", "detect.generic(lookalike)",
               "https://api.openai.com.example.net/v1", "generic"),
        detect("detect/host_in_path", "detect.generic(host in path)",
               "https://gateway.example/api.openai.com", "generic"),
        detect("detect/localhost", "detect.generic", "http://127.0.0.1:8080/v1", "generic"),
        detect("detect/empty", "detect.generic(empty)", "", "generic"),
        detect("detect/invalid_url", "detect.generic(invalid)", "http://[::1", "generic"),
    ]  # fmt: skip
