"""Vectors of how a body is read: not JSON (truncated, HTML, plain text, binary), compressed
(gzip, deflate, br, unlabelled, corrupt), and the `on_status` rules read before everything."""

from __future__ import annotations

import gzip
import zlib

import brotli
from vec_common import (
    CLIENT,
    COOLDOWN,
    DEFAULT_RATE,
    ERROR,
    INVALID,
    MIDNIGHT_PACIFIC,
    OPENAI_QUOTA_BODY,
    OVERLOADED,
    PER_DAY,
    PER_MINUTE,
    SUCCESS,
    Vector,
    answer,
    daily,
    gemini_rate,
    on_status,
    openai,
    quota,
    quota_failure,
    rate,
    retry_info,
    verdict,
)

QUOTA_BYTES = OPENAI_QUOTA_BODY.encode()
# a gzip header, then a deflate block of the reserved type 3: "invalid block type"
CORRUPT_GZIP = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xff\xff\xff\xff not deflate"
CORRUPT_DEFLATE = b"\xff\xfe not deflate either"


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


def text_vectors() -> list[Vector]:
    """Bodies that are not JSON: the quoted fields, else the identifiers themselves."""
    truncated = OPENAI_QUOTA_BODY[: OPENAI_QUOTA_BODY.index('"code"') + 20]
    cut_early = '{"error": {"message": "You exceeded your current quota", "code": "insufficient_quo'
    minute = gemini_rate(quota_failure(PER_MINUTE), retry_info("46s"))
    per_day = gemini_rate(quota_failure(PER_DAY, value="50"), retry_info("46s"), limit=50)
    zero = gemini_rate(quota_failure(PER_MINUTE, value="0"), retry_info("46s"), limit=15)
    b = "body.not_json."
    return [
        answer("openai/truncated_json_quota", b + "quoted_fields", "openai", 429, truncated,
               quota()),
        answer("openai/truncated_json_cut_in_value", b + "quoted_fields", "openai", 429,
               cut_early, DEFAULT_RATE),
        answer("gemini/truncated_json_retry_delay", b + "quoted_fields.retryDelay", "gemini",
               429, minute[: minute.index("46s") + 6], rate(46.0, "retryDelay")),
        answer("gemini/truncated_json_per_day", b + "quoted_fields.quotaId", "gemini", 429,
               per_day[: per_day.index("PerDay") + 60], daily()),
        answer("gemini/truncated_json_quota_value_zero", b + "quoted_fields.quotaValue", "gemini",
               429, zero[: zero.index('"quotaValue"') + 20],
               quota(MIDNIGHT_PACIFIC, "limit: 0")),
        answer("openai/html_429", b + "html", "openai", 429,
               "<html><body><h1>429 Too Many Requests</h1></body></html>", DEFAULT_RATE),
        answer("openai/html_401", b + "html", "openai", 401,
               "<html><body><h1>401 Authorization Required</h1></body></html>", INVALID),
        answer("generic/html_503", b + "html", "generic", 503,
               "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>",
               OVERLOADED),
        answer("anthropic/html_400", b + "html", "anthropic", 400,
               "<html><body>Bad Request</body></html>", CLIENT),
        answer("openai/text_bare_identifier", b + "bare_identifiers", "openai", 429,
               "insufficient_quota: you exceeded your current quota", quota()),
        answer("generic/text_bare_identifier_table_order", b + "bare_identifiers(table order)",
               "generic", 429, "rate_limit_exceeded, then insufficient_quota", quota()),
        answer("openai/text_bare_profile_identifier", b + "bare_identifiers", "openai", 429,
               "error: slow_down", OVERLOADED),
        answer("gemini/text_bare_permission_denied", b + "bare_identifiers", "gemini", 400,
               "PERMISSION_DENIED", INVALID),
        answer("gemini/text_no_underscore_not_searched", b + "bare_identifiers(underscore)",
               "gemini", 400, "UNAUTHENTICATED", CLIENT),
        answer("generic/text_profile_identifier_not_common", b + "bare_identifiers", "generic",
               400, "account_deactivated", CLIENT),
        answer("generic/binary_body_429", b + "binary", "generic", 429,
               b"\xff\xfe\x00\x01\x80binary\x00", DEFAULT_RATE),
        answer("generic/binary_body_401", b + "binary", "generic", 401, b"\x00\x9f\x92\x96",
               INVALID),
        answer("generic/json_scalar_body", b + "json_scalar", "generic", 429,
               '"insufficient_quota"', quota()),
        answer("gemini/json_list_body", "body.json_list", "gemini", 429,
               "[" + minute + "]", rate(46.0, "retryDelay")),
        answer("generic/empty_body_500", "body.empty", "generic", 500, "", ERROR),
        answer("openai/empty_body_403", "body.empty", "openai", 403, "", INVALID),
        answer("generic/whitespace_body_429", "body.empty", "generic", 429, "  \r\n ",
               DEFAULT_RATE),
    ]  # fmt: skip


def compressed_vectors() -> list[Vector]:
    """Compressed bodies are decoded first; one that cannot be decoded counts as empty."""
    gz = _gzip(QUOTA_BYTES)
    per_day = gemini_rate(quota_failure(PER_DAY), retry_info("46s"), limit=50).encode()
    c = "decoding."
    return [
        answer("openai/gzip_labelled", c + "gzip", "openai", 429, gz, quota(),
               headers={"Content-Encoding": "gzip"}),
        answer("openai/gzip_x_gzip", c + "x-gzip", "openai", 429, gz, quota(),
               headers={"Content-Encoding": "x-gzip"}),
        answer("openai/gzip_upper_case_label", c + "gzip", "openai", 429, gz, quota(),
               headers={"Content-Encoding": "GZIP"}),
        answer("openai/gzip_unlabelled", c + "gzip(unlabelled magic)", "openai", 429, gz,
               quota()),
        answer("gemini/gzip_unlabelled_per_day", c + "gzip(unlabelled magic)", "gemini", 429,
               _gzip(per_day), daily()),
        answer("openai/deflate_zlib", c + "deflate(zlib)", "openai", 429,
               zlib.compress(QUOTA_BYTES, 9), quota(), headers={"Content-Encoding": "deflate"}),
        answer("openai/deflate_raw", c + "deflate(raw)", "openai", 429,
               _raw_deflate(QUOTA_BYTES), quota(), headers={"Content-Encoding": "deflate"}),
        answer("openai/br", c + "br", "openai", 429, brotli.compress(QUOTA_BYTES, quality=11),
               quota(), headers={"Content-Encoding": "br"}),
        answer("openai/gzip_then_br", c + "gzip, br", "openai", 429,
               brotli.compress(gz, quality=11), quota(),
               headers={"Content-Encoding": "gzip, br"}),
        answer("openai/identity_label", c + "identity", "openai", 429, OPENAI_QUOTA_BODY,
               quota(), headers={"Content-Encoding": "identity"}),
        answer("generic/gzip_magic_labelled_identity", c + "identity(read as is)", "generic",
               429, gz, DEFAULT_RATE, headers={"Content-Encoding": "identity"}),
        answer("openai/gzip_corrupt_labelled", c + "corrupt->status", "openai", 429,
               CORRUPT_GZIP, DEFAULT_RATE, headers={"Content-Encoding": "gzip"}),
        answer("openai/gzip_corrupt_unlabelled_retry_after", c + "corrupt->status", "openai",
               429, CORRUPT_GZIP, rate(30.0, "retry-after"), headers={"Retry-After": "30"}),
        answer("openai/gzip_corrupt_401", c + "corrupt->status", "openai", 401, CORRUPT_GZIP,
               INVALID, headers={"Content-Encoding": "gzip"}),
        answer("generic/br_corrupt_402", c + "corrupt->status", "generic", 402,
               b"\xff\xff\xff not brotli", quota(), headers={"Content-Encoding": "br"}),
        answer("openai/deflate_corrupt_429", c + "corrupt->status", "openai", 429,
               CORRUPT_DEFLATE + QUOTA_BYTES, DEFAULT_RATE,
               headers={"Content-Encoding": "deflate"}),
        answer("openai/unknown_encoding_zstd", c + "unsupported->status", "openai", 429,
               OPENAI_QUOTA_BODY, DEFAULT_RATE, headers={"Content-Encoding": "zstd"}),
        answer("generic/gzip_success_not_read", "status.below_400", "generic", 200,
               CORRUPT_GZIP, SUCCESS, headers={"Content-Encoding": "gzip"}),
    ]  # fmt: skip


def rule_vectors() -> list[Vector]:
    """`on_status`: first match wins, `match` case-insensitive in the body's head; the actions."""
    r = "on_status."
    temporary = "The service is temporarily unavailable, please retry."
    region = openai("Country, region, or territory not supported", "request_forbidden", None)
    minute = gemini_rate(quota_failure(PER_MINUTE), retry_info("46s")).encode()
    bad_key = openai("Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
    return [
        answer("generic/on_status_retry_match", r + "retry(match)", "generic", 400, temporary,
               verdict("upstream_error", backoff=True, source="on_status[0]"),
               on_status=[on_status(400, "retry", "temporarily")]),
        answer("generic/on_status_match_case_insensitive", r + "match(case)", "generic", 400,
               temporary, verdict("upstream_error", backoff=True, source="on_status[0]"),
               on_status=[on_status(400, "retry", "TEMPORARILY Unavailable")]),
        answer("generic/on_status_retry_no_match", r + "retry(match)", "generic", 400,
               "bad request", CLIENT, on_status=[on_status(400, "retry", "temporarily")]),
        answer("generic/on_status_retry_429", r + "retry", "generic", 429, "",
               verdict("rate_limited", backoff=True, source="on_status[0]"),
               on_status=[on_status(429, "retry")]),
        answer("generic/on_status_retry_503", r + "retry", "generic", 503, "",
               verdict("upstream_overloaded", backoff=True, source="on_status[0]"),
               on_status=[on_status(503, "retry")]),
        answer("generic/on_status_failover_404", r + "failover", "generic", 404,
               "no such deployment", verdict("upstream_error", source="on_status[0]"),
               on_status=[on_status(404, "failover")]),
        answer("openai/on_status_failover_429", r + "failover", "openai", 429, GROQ_RATE,
               verdict("rate_limited", source="on_status[0]"),
               on_status=[on_status(429, "failover")], headers={"Retry-After": "10"}),
        answer("openai/on_status_failover_401", r + "failover", "openai", 401, bad_key,
               verdict("key_invalid", source="on_status[0]"),
               on_status=[on_status(401, "failover")]),
        answer("generic/on_status_cooldown_match", r + "cooldown(match)", "generic", 400,
               "This model is not available on the free tier.",
               rate(900.0, "on_status[0]"),
               on_status=[on_status(400, "cooldown", "free tier", 900.0)]),
        answer("generic/on_status_cooldown_429", r + "cooldown", "generic", 429, "",
               rate(7200.0, "on_status[0]"), on_status=[on_status(429, "cooldown", None, 7200.0)],
               headers={"Retry-After": "30"}),
        answer("openai/on_status_cooldown_keeps_quota", r + "cooldown(quota)", "openai", 429,
               OPENAI_QUOTA_BODY, quota(60.0, "on_status[0]"),
               on_status=[on_status(429, "cooldown", None, 60.0)]),
        answer("generic/on_status_cooldown_402", r + "cooldown(quota)", "generic", 402, "",
               quota(100.0, "on_status[0]"), on_status=[on_status(402, "cooldown", None, 100.0)]),
        answer("generic/on_status_cooldown_500", r + "cooldown(error->rate)", "generic", 500, "",
               rate(30.0, "on_status[0]"), on_status=[on_status(500, "cooldown", None, 30.0)]),
        answer("generic/on_status_cooldown_zero", r + "cooldown(0)", "generic", 429, "",
               rate(0.0, "on_status[0]"), on_status=[on_status(429, "cooldown", None, 0.0)]),
        answer("generic/on_status_cooldown_fraction", r + "cooldown", "generic", 403, "",
               rate(1.5, "on_status[0]"), on_status=[on_status(403, "cooldown", None, 1.5)]),
        answer("generic/on_status_disable_match", r + "disable(match)", "generic", 400,
               "Your account has been SUSPENDED.",
               verdict("key_invalid", disable=True, source="on_status[0]"),
               on_status=[on_status(400, "disable", "suspended")]),
        answer("generic/on_status_disable_429", r + "disable", "generic", 429, "",
               verdict("key_invalid", disable=True, source="on_status[0]"),
               on_status=[on_status(429, "disable")]),
        answer("generic/on_status_relay_401", r + "relay", "generic", 401, "",
               verdict("key_invalid", failover=False, source="on_status[0]"),
               on_status=[on_status(401, "relay")]),
        answer("gemini/on_status_relay_503", r + "relay", "gemini", 503, "",
               verdict("upstream_overloaded", failover=False, source="on_status[0]"),
               on_status=[on_status(503, "relay")]),
        answer("openai/on_status_relay_region", r + "relay(match)", "openai", 403, region,
               verdict("client_error", failover=False, source="on_status[0]"),
               on_status=[on_status(403, "relay", "region")]),
        answer("generic/on_status_relay_429", r + "relay", "generic", 429, "",
               verdict("rate_limited", failover=False, source="on_status[0]"),
               on_status=[on_status(429, "relay")], headers={"Retry-After": "30"}),
        answer("generic/on_status_first_match_wins", r + "order", "generic", 429, "",
               rate(10.0, "on_status[0]"),
               on_status=[on_status(429, "cooldown", None, 10.0),
                          on_status(429, "cooldown", None, 20.0)]),
        answer("generic/on_status_skips_non_matching", r + "order", "generic", 429, "quota",
               rate(20.0, "on_status[2]"),
               on_status=[on_status(429, "relay", "nope"), on_status(500, "retry"),
                          on_status(429, "cooldown", None, 20.0)]),
        answer("generic/on_status_other_status", r + "status", "generic", 429, "",
               DEFAULT_RATE, on_status=[on_status(500, "retry"), on_status(430, "relay")]),
        answer("generic/on_status_not_on_success", r + "below_400", "generic", 200, "",
               SUCCESS, on_status=[on_status(200, "disable")]),
        answer("generic/on_status_match_empty_body", r + "match(empty body)", "generic", 429, "",
               DEFAULT_RATE, on_status=[on_status(429, "relay", "x")]),
        answer("gemini/on_status_match_gzip_body", r + "match(decoded body)", "gemini", 429,
               _gzip(minute), rate(5.0, "on_status[0]"),
               on_status=[on_status(429, "cooldown", "GENERATE_CONTENT_FREE_TIER", 5.0)],
               headers={"Content-Encoding": "gzip"}),
        answer("openai/on_status_before_phrases", r + "before_phrases", "openai", 403, region,
               verdict("upstream_error", source="on_status[0]", backoff=True),
               on_status=[on_status(403, "retry")]),
        answer("openai/on_status_with_cooldown_seconds", r + "cooldown", "openai", 429,
               OPENAI_QUOTA_BODY, quota(COOLDOWN), cooldown=COOLDOWN,
               on_status=[on_status(429, "relay", "no such text")]),
    ]  # fmt: skip


GROQ_RATE = openai("Rate limit reached. Please try again in 9.78s.", "tokens",
                   "rate_limit_exceeded")  # fmt: skip
