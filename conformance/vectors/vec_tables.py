"""Vectors of the classifier's tables: the status alone, the identifiers (common and per
profile), the phrases, and which field of a body counts first."""

from __future__ import annotations

from vec_common import (
    ANTHROPIC_WORKSPACE,
    CLIENT,
    DEFAULT_RATE,
    ERROR,
    INVALID,
    MONTHLY,
    NOW,
    OPENAI_QUOTA,
    OPENAI_QUOTA_BODY,
    OVERLOADED,
    PER_DAY,
    PER_MINUTE,
    SUCCESS,
    Vector,
    answer,
    anthropic,
    at,
    daily,
    doc,
    error_info,
    gemini,
    gemini_rate,
    openai,
    quota,
    quota_failure,
    rate,
    retry_info,
    spend_cap,
)

HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


def status_vectors() -> list[Vector]:
    """`_STATUS_KINDS`, the default kinds of other statuses, and success below 400."""
    out = [
        answer("generic/status_401", "status_kinds.401", "generic", 401, "", INVALID),
        answer("generic/status_402", "status_kinds.402", "generic", 402, "", quota()),
        answer("generic/status_403", "status_kinds.403", "generic", 403, "", INVALID),
        answer("generic/status_429", "status_kinds.429", "generic", 429, "", DEFAULT_RATE),
        answer("generic/status_503", "status_kinds.503", "generic", 503, "", OVERLOADED),
        answer("generic/status_529", "status_kinds.529", "generic", 529, "", OVERLOADED),
        answer("anthropic/status_529_empty", "status_kinds.529", "anthropic", 529, "", OVERLOADED),
        answer("gemini/status_503_empty", "status_kinds.503", "gemini", 503, "", OVERLOADED),
        answer("openai/status_401_empty", "status_kinds.401", "openai", 401, "", INVALID),
        answer("anthropic/status_402_empty", "status_kinds.402", "anthropic", 402, "", quota()),
    ]
    for status in (500, 501, 502, 504, 599):
        body = HTML_502 if status == 502 else ""
        out.append(answer(f"generic/status_{status}", "status.5xx", "generic", status, body, ERROR))
    for status in (400, 404, 405, 409, 413, 418, 422):
        out.append(answer(f"generic/status_{status}", "status.4xx", "generic", status, "", CLIENT))
    out.append(answer("generic/status_422_empty_json", "status.4xx", "generic", 422, "{}", CLIENT))
    for status in (200, 201, 204, 206, 301, 302, 304, 399):
        out.append(
            answer(
                f"generic/status_{status}_success",
                "status.below_400",
                "generic",
                status,
                OPENAI_QUOTA_BODY,
                SUCCESS,
                headers={"Retry-After": "30"},
            )
        )
    out += [
        answer("openai/status_200_quota_body", "status.below_400", "openai", 200,
               OPENAI_QUOTA_BODY, SUCCESS),
        answer("gemini/status_200_quota_body", "status.below_400", "gemini", 200,
               gemini_rate(quota_failure(PER_DAY)), SUCCESS),
        answer("generic/rate_default_cooldown_30", "rate.default_min_60_cooldown_seconds",
               "generic", 429, "", rate(30.0, "default"), cooldown=30.0),
        answer("generic/rate_default_cooldown_60", "rate.default_min_60_cooldown_seconds",
               "generic", 429, "", rate(60.0, "default"), cooldown=60.0),
        answer("generic/rate_default_cooldown_7200", "rate.default_min_60_cooldown_seconds",
               "generic", 429, "", rate(60.0, "default"), cooldown=7200.0),
        answer("generic/rate_default_cooldown_0", "rate.default_min_60_cooldown_seconds",
               "generic", 429, "", rate(0.0, "default"), cooldown=0.0),
        answer("generic/quota_default_cooldown_120", "quota.default_cooldown_seconds",
               "generic", 402, "", quota(120.0), cooldown=120.0),
        answer("openai/quota_default_cooldown_86400", "quota.default_cooldown_seconds",
               "openai", 429, OPENAI_QUOTA_BODY, quota(86400.0), cooldown=86400.0),
    ]  # fmt: skip
    return out


def fivexx_vectors() -> list[Vector]:
    """On a 5xx only an "overloaded" identifier counts."""
    slow = openai("Please reduce your request rate.", "rate_limit_error", "slow_down")
    unavailable = gemini(500, "UNAVAILABLE", "The model is overloaded. Please try again later.")
    return [
        answer("anthropic/overloaded_error_529_retry_after", "common.markers.overloaded_error",
               "anthropic", 529, anthropic("overloaded_error", "Overloaded"), OVERLOADED,
               headers={"Retry-After": "3"}),
        answer("generic/overloaded_error_500", "5xx.overloaded_marker", "generic", 500,
               anthropic("overloaded_error", "Overloaded"), OVERLOADED),
        answer("generic/overloaded_error_502_text", "5xx.overloaded_marker(bare)", "generic",
               502, "upstream said: overloaded_error", OVERLOADED),
        answer("openai/insufficient_quota_500", "5xx.other_markers_ignored", "openai", 500,
               OPENAI_QUOTA_BODY, ERROR),
        answer("anthropic/rate_limit_error_503", "5xx.other_markers_ignored", "anthropic", 503,
               anthropic("rate_limit_error", "Rate limited"), OVERLOADED),
        answer("anthropic/invalid_api_key_502", "5xx.other_markers_ignored", "anthropic", 502,
               openai("bad key", "invalid_request_error", "invalid_api_key"), ERROR),
        answer("anthropic/api_error_500", "5xx.no_marker", "anthropic", 500,
               anthropic("api_error", "Internal server error"), ERROR),
        answer("gemini/unavailable_500", "profiles.gemini.markers.unavailable(5xx)", "gemini",
               500, unavailable, OVERLOADED),
        answer("generic/unavailable_500", "5xx.no_marker", "generic", 500, unavailable, ERROR),
        answer("gemini/unavailable_500_text", "5xx.bare_identifier_needs_underscore", "gemini",
               500, "Service UNAVAILABLE", ERROR),
        answer("openai/slow_down_500", "profiles.openai.markers.slow_down(5xx)", "openai", 500,
               slow, OVERLOADED),
        answer("generic/slow_down_500", "5xx.no_marker", "generic", 500, slow, ERROR),
        answer("openai/server_error_503_html", "status_kinds.503", "openai", 503,
               "<html><body>The engine is currently overloaded</body></html>", OVERLOADED),
        answer("openai/server_error_500", "5xx.no_marker", "openai", 500,
               openai("The server had an error.", "server_error", None), ERROR),
    ]  # fmt: skip


def common_vectors() -> list[Vector]:
    """`_COMMON`: the identifiers that mean one thing in every profile."""
    spend = anthropic("rate_limit_error", "Over the limit.",
                      details={"error_code": "enforced_spend_limit_reached"})  # fmt: skip
    credit = openai("Your credit balance is exhausted.", "insufficient_quota",
                    "credit_balance_exhausted")  # fmt: skip
    hard = openai("Billing hard limit has been reached", "invalid_request_error",
                  "billing_hard_limit_reached")  # fmt: skip
    billing = anthropic("billing_error", "Your account has a billing issue.")
    bad_key = openai("Incorrect API key provided: sk-proj-****abcd.", "invalid_request_error",
                     "invalid_api_key")  # fmt: skip
    gemini_key = gemini(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                        error_info("API_KEY_INVALID"))  # fmt: skip
    auth = anthropic("authentication_error", "invalid x-api-key")
    region = openai("Your request was made from an unsupported location.", "request_forbidden",
                    "unsupported_country_region_territory")  # fmt: skip
    m = "common.markers."
    return [
        answer("generic/enforced_spend_limit_reached_429", m + "enforced_spend_limit_reached",
               "generic", 429, spend, spend_cap()),
        answer("openai/enforced_spend_limit_reached_429", m + "enforced_spend_limit_reached",
               "openai", 429, spend, spend_cap()),
        answer("anthropic/enforced_spend_limit_reached_retry_after",
               m + "enforced_spend_limit_reached", "anthropic", 429, spend, spend_cap(),
               headers={"Retry-After": "600"}),
        answer("openai/insufficient_quota_429", m + "insufficient_quota", "openai", 429,
               OPENAI_QUOTA_BODY, quota()),
        answer("generic/insufficient_quota_429", m + "insufficient_quota", "generic", 429,
               OPENAI_QUOTA_BODY, quota()),
        answer("gemini/insufficient_quota_400", m + "insufficient_quota", "gemini", 400,
               OPENAI_QUOTA_BODY, quota()),
        answer("openai/insufficient_quota_ignores_windows", "quota.ignores_windows", "openai",
               429, OPENAI_QUOTA_BODY, quota(),
               headers={"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "12ms",
                        "anthropic-ratelimit-requests-reset": "2026-03-15T13:00:00Z"}),
        answer("openai/credit_balance_exhausted_429", m + "credit_balance_exhausted", "openai",
               429, credit, quota()),
        answer("generic/credit_balance_exhausted_400", m + "credit_balance_exhausted",
               "generic", 400,
               openai("Your credit balance is exhausted.", "invalid_request_error",
                      "credit_balance_exhausted"), quota()),
        answer("openai/billing_hard_limit_reached_400", m + "billing_hard_limit_reached",
               "openai", 400, hard, quota()),
        answer("anthropic/billing_hard_limit_reached_400", m + "billing_hard_limit_reached",
               "anthropic", 400, hard, quota()),
        answer("anthropic/billing_error_402", m + "billing_error", "anthropic", 402, billing,
               quota()),
        answer("generic/billing_error_400", m + "billing_error", "generic", 400, billing,
               quota()),
        answer("openai/invalid_api_key_401", m + "invalid_api_key", "openai", 401, bad_key,
               INVALID),
        answer("generic/invalid_api_key_400", m + "invalid_api_key", "generic", 400, bad_key,
               INVALID),
        answer("gemini/api_key_invalid_400", m + "api_key_invalid", "gemini", 400, gemini_key,
               INVALID),
        answer("generic/api_key_invalid_400", m + "api_key_invalid", "generic", 400,
               gemini_key, INVALID),
        answer("anthropic/authentication_error_401", m + "authentication_error", "anthropic",
               401, auth, INVALID),
        answer("openai/authentication_error_400", m + "authentication_error", "openai", 400,
               auth, INVALID),
        answer("openai/rate_limit_exceeded_400", m + "rate_limit_exceeded", "openai", 400,
               openai("Too many requests.", None, "rate_limit_exceeded"), DEFAULT_RATE),
        answer("generic/rate_limit_exceeded_429", m + "rate_limit_exceeded", "generic", 429,
               openai("Too many requests.", None, "rate_limit_exceeded"), DEFAULT_RATE),
        answer("anthropic/rate_limit_error_429", m + "rate_limit_error", "anthropic", 429,
               anthropic("rate_limit_error", "Rate limited"), rate(20.0, "retry-after"),
               headers={"Retry-After": "20"}),
        answer("gemini/rate_limit_error_400", m + "rate_limit_error", "gemini", 400,
               anthropic("rate_limit_error", "Rate limited"), DEFAULT_RATE),
        answer("gemini/resource_exhausted_per_minute", m + "resource_exhausted", "gemini", 429,
               gemini_rate(quota_failure(PER_MINUTE), retry_info("46s")),
               rate(46.0, "retryDelay")),
        answer("generic/resource_exhausted_per_minute", m + "resource_exhausted", "generic",
               429, gemini_rate(quota_failure(PER_MINUTE), retry_info("46s")),
               rate(46.0, "retryDelay")),
        answer("generic/resource_exhausted_per_day", "refine.gemini_per_day", "generic", 429,
               gemini_rate(quota_failure(PER_DAY), retry_info("46s"), limit=50), daily()),
        answer("anthropic/overloaded_error_529", m + "overloaded_error", "anthropic", 529,
               anthropic("overloaded_error", "Overloaded"), OVERLOADED),
        answer("generic/overloaded_error_429", m + "overloaded_error", "generic", 429,
               anthropic("overloaded_error", "Overloaded"), OVERLOADED,
               headers={"Retry-After": "10"}),
        answer("openai/unsupported_country_region_territory_403",
               m + "unsupported_country_region_territory", "openai", 403, region, CLIENT),
        answer("generic/unsupported_country_region_territory_403",
               m + "unsupported_country_region_territory", "generic", 403, region, CLIENT),
    ]  # fmt: skip


def profile_vectors() -> list[Vector]:
    """`_PROFILE_MARKERS`: a profile's own identifiers, and other profiles not reading them."""
    o, a, g = "profiles.openai.markers.", "profiles.anthropic.markers.", "profiles.gemini.markers."
    slow = openai("Please reduce your request rate.", "rate_limit_error", "slow_down")
    slow_only = openai("Please reduce your request rate.", None, "slow_down")
    inactive = openai("Your account is not active, please check your billing details.",
                      "billing_not_active", "billing_not_active")  # fmt: skip
    terminated = openai("Your access was terminated.", "access_terminated", "access_terminated")
    deactivated = openai("This key is associated with a deactivated account.",
                         "invalid_request_error", "account_deactivated")  # fmt: skip
    mistral = doc({"object": "error", "message": "Rate limit exceeded", "type": "rate_limited",
                   "param": None, "code": "1300"})  # fmt: skip
    permission = anthropic("permission_error", "Your API key does not have permission.")
    denied = gemini(403, "PERMISSION_DENIED", "Permission denied on resource project x.",
                    error_info("SERVICE_DISABLED"))  # fmt: skip
    unauth = gemini(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
    precondition = gemini(400, "FAILED_PRECONDITION", "Precondition check failed.")
    unavailable = gemini(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
    return [
        answer("openai/slow_down_429", o + "slow_down", "openai", 429, slow, OVERLOADED,
               headers={"Retry-After": "5"}),
        answer("openai/slow_down_429_code_only", o + "slow_down", "openai", 429, slow_only,
               OVERLOADED),
        answer("generic/slow_down_429", "profiles.generic(no slow_down)", "generic", 429,
               slow_only, rate(5.0, "retry-after"), headers={"Retry-After": "5"}),
        answer("openai/billing_not_active_429", o + "billing_not_active", "openai", 429,
               inactive, quota()),
        answer("generic/billing_not_active_429", "profiles.generic(no billing_not_active)",
               "generic", 429, inactive, DEFAULT_RATE),
        answer("anthropic/billing_not_active_400", "profiles.anthropic(no billing_not_active)",
               "anthropic", 400, inactive, CLIENT),
        answer("openai/access_terminated_403", o + "access_terminated", "openai", 403,
               terminated, INVALID),
        answer("openai/access_terminated_400", o + "access_terminated", "openai", 400,
               terminated, INVALID),
        answer("generic/access_terminated_400", "profiles.generic(no access_terminated)",
               "generic", 400, terminated, CLIENT),
        answer("openai/account_deactivated_401", o + "account_deactivated", "openai", 401,
               deactivated, INVALID),
        answer("openai/account_deactivated_400", o + "account_deactivated", "openai", 400,
               deactivated, INVALID),
        answer("gemini/account_deactivated_400", "profiles.gemini(no account_deactivated)",
               "gemini", 400, deactivated, CLIENT),
        answer("openai/rate_limited_mistral_429", o + "rate_limited", "openai", 429, mistral,
               rate(1.0, "retry-after"), headers={"Retry-After": "1"}),
        answer("openai/rate_limited_mistral_400", o + "rate_limited", "openai", 400, mistral,
               DEFAULT_RATE),
        answer("generic/rate_limited_400", "profiles.generic(no rate_limited)", "generic", 400,
               mistral, CLIENT),
        answer("openai/mistral_message_only_429", "status_kinds.429", "openai", 429,
               doc({"message": "Requests rate limit exceeded"}), DEFAULT_RATE),
        answer("anthropic/permission_error_403", a + "permission_error", "anthropic", 403,
               permission, INVALID),
        answer("anthropic/permission_error_400", a + "permission_error", "anthropic", 400,
               permission, INVALID),
        answer("generic/permission_error_400", "profiles.generic(no permission_error)",
               "generic", 400, permission, CLIENT),
        answer("openai/permission_error_400", "profiles.openai(no permission_error)", "openai",
               400, permission, CLIENT),
        answer("gemini/permission_denied_403", g + "permission_denied", "gemini", 403, denied,
               INVALID),
        answer("gemini/permission_denied_400", g + "permission_denied", "gemini", 400, denied,
               INVALID),
        answer("anthropic/permission_denied_400", "profiles.anthropic(no permission_denied)",
               "anthropic", 400, denied, CLIENT),
        answer("gemini/unauthenticated_401", g + "unauthenticated", "gemini", 401, unauth,
               INVALID),
        answer("gemini/unauthenticated_400", g + "unauthenticated", "gemini", 400, unauth,
               INVALID),
        answer("generic/unauthenticated_400", "profiles.generic(no unauthenticated)", "generic",
               400, unauth, CLIENT),
        answer("gemini/failed_precondition_400", g + "failed_precondition", "gemini", 400,
               precondition, quota()),
        answer("openai/failed_precondition_400", "profiles.openai(no failed_precondition)",
               "openai", 400, precondition, CLIENT),
        answer("gemini/unavailable_503", g + "unavailable", "gemini", 503, unavailable,
               OVERLOADED),
        answer("gemini/unavailable_429", g + "unavailable", "gemini", 429, unavailable,
               OVERLOADED),
        answer("generic/unavailable_429", "profiles.generic(no unavailable)", "generic", 429,
               unavailable, DEFAULT_RATE),
    ]  # fmt: skip


def phrase_vectors() -> list[Vector]:
    """`_PHRASES`: checked before the identifiers, anywhere in the body, any case."""
    region = openai("Country, region, or territory not supported", "request_forbidden", None)
    upper = openai("COUNTRY, REGION, OR TERRITORY NOT SUPPORTED", "invalid_request_error", None)
    credit = anthropic("invalid_request_error",
                       "Your credit balance is too low to access the Anthropic API. Please go to "
                       "Plans & Billing to upgrade or purchase credits.")  # fmt: skip
    later = ANTHROPIC_WORKSPACE.replace("2026-04-01", "2026-04-10")
    location = gemini(400, "FAILED_PRECONDITION", "User location is not supported for the API use.")
    return [
        answer("openai/phrase_region_403", "profiles.openai.phrases[0]", "openai", 403, region,
               CLIENT),
        answer("openai/phrase_region_upper_case", "profiles.openai.phrases[0]", "openai", 403,
               upper, CLIENT),
        answer("generic/phrase_region_403", "profiles.generic(no phrases)", "generic", 403,
               region, INVALID),
        answer("anthropic/phrase_monthly_spend_limit_429", "profiles.anthropic.phrases[0]",
               "anthropic", 429, anthropic("rate_limit_error", MONTHLY), spend_cap(),
               headers={"Retry-After": "60"}),
        answer("anthropic/phrase_monthly_spend_limit_mixed_case", "profiles.anthropic.phrases[0]",
               "anthropic", 429, anthropic("rate_limit_error", MONTHLY.upper()), spend_cap()),
        answer("generic/phrase_monthly_spend_limit_429", "profiles.generic(no phrases)",
               "generic", 429, anthropic("rate_limit_error", MONTHLY), DEFAULT_RATE),
        answer("anthropic/phrase_api_usage_limits_400", "profiles.anthropic.phrases[1]",
               "anthropic", 400, anthropic("invalid_request_error", ANTHROPIC_WORKSPACE),
               spend_cap()),
        answer("anthropic/phrase_api_usage_limits_later_date", "profiles.anthropic.phrases[1]",
               "anthropic", 400, anthropic("invalid_request_error", later),
               quota(at(2026, 4, 10) - NOW, "message")),
        answer("anthropic/phrase_api_usage_limits_text", "profiles.anthropic.phrases[1]",
               "anthropic", 400, "You have reached your specified API usage limits.",
               spend_cap()),
        answer("anthropic/phrase_credit_balance_400", "profiles.anthropic.phrases[2]",
               "anthropic", 400, credit, quota()),
        answer("openai/phrase_credit_balance_400", "profiles.openai(no anthropic phrases)",
               "openai", 400, credit, CLIENT),
        answer("gemini/phrase_location_400", "profiles.gemini.phrases[0]", "gemini", 400,
               location, CLIENT),
        answer("generic/phrase_location_400", "profiles.generic(no phrases)", "generic", 400,
               location, CLIENT),
        answer("gemini/phrase_location_429", "profiles.gemini.phrases[0]", "gemini", 429,
               location, CLIENT),
    ]  # fmt: skip


def specificity_vectors() -> list[Vector]:
    """Identifiers most specific first: error_code, code, reason, status, type."""
    s = "fields.specificity"
    return [
        answer("openai/code_over_type_quota", s, "openai", 429,
               openai(OPENAI_QUOTA, "rate_limit_exceeded", "insufficient_quota"), quota()),
        answer("openai/code_over_type_rate", s, "openai", 429,
               openai("Too many requests.", "insufficient_quota", "rate_limit_exceeded"),
               DEFAULT_RATE),
        answer("anthropic/error_code_over_type", s, "anthropic", 429,
               anthropic("rate_limit_error", "Over the limit.",
                         details={"error_code": "enforced_spend_limit_reached"}),
               spend_cap(), headers={"Retry-After": "30"}),
        answer("gemini/reason_over_status", s, "gemini", 400,
               gemini(400, "FAILED_PRECONDITION", "Bad key.", error_info("API_KEY_INVALID")),
               INVALID),
        answer("generic/status_over_type", s, "generic", 429,
               doc({"error": {"status": "RESOURCE_EXHAUSTED", "type": "billing_error"}}),
               DEFAULT_RATE),
        answer("generic/unknown_field_then_marker", "fields.first_known_marker", "generic", 400,
               doc({"error": {"code": "E42", "type": "invalid_api_key"}}), INVALID),
        answer("generic/fields_without_marker_no_bare_search", "fields.no_bare_search",
               "generic", 400,
               doc({"error": {"code": "quota_problem", "message": "insufficient_quota"}}),
               CLIENT),
        answer("openai/null_fields_bare_search", "body.bare_identifiers", "openai", 400,
               openai("insufficient_quota: check your plan", None, None), quota()),
    ]  # fmt: skip
