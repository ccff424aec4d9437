"""Vectors of the quota deadlines: Anthropic's spend limits (00:00 UTC on the 1st of next month)
and Gemini's daily quotas (midnight America/Los_Angeles, across DST changes and year ends),
with Gemini's refinements of a rate limit: per day, "limit: 0", quotaValue "0"."""

from __future__ import annotations

from vec_common import (
    ANTHROPIC_WORKSPACE,
    CLIENT,
    DEFAULT_RATE,
    MIDNIGHT_PACIFIC,
    MONTHLY,
    NOW,
    PER_DAY,
    PER_MINUTE,
    Vector,
    answer,
    anthropic,
    at,
    daily,
    doc,
    gemini,
    gemini_rate,
    openai,
    quota,
    quota_failure,
    rate,
    retry_info,
    spend_cap,
)

# (label, now, the next 00:00 UTC on the 1st)
_MONTHS = (
    ("march", NOW, at(2026, 4, 1)),
    ("january_last_second", at(2026, 1, 31, 23, 59, 59), at(2026, 2, 1)),
    ("on_month_start", at(2026, 4, 1), at(2026, 5, 1)),
    ("february_leap_year", at(2028, 2, 15), at(2028, 3, 1)),
    ("december", at(2026, 12, 15, 12), at(2027, 1, 1)),
    ("december_31", at(2026, 12, 31, 23), at(2027, 1, 1)),
)
# (label, now, the next midnight in Los Angeles, in UTC: 08:00 in PST, 07:00 in PDT).
# 2026: PDT from Sunday March 8 02:00 PST (10:00 UTC) to Sunday November 1 02:00 PDT (09:00 UTC).
_MIDNIGHTS = (
    ("pdt", NOW, at(2026, 3, 16, 7)),
    ("pst", at(2026, 1, 15, 12), at(2026, 1, 16, 8)),
    ("exact_midnight", at(2026, 3, 16, 7), at(2026, 3, 17, 7)),
    ("just_before_midnight", at(2026, 3, 16, 6, 59, 59), at(2026, 3, 16, 7)),
    ("before_spring_forward", at(2026, 3, 7, 20), at(2026, 3, 8, 8)),
    ("spring_forward_eve", at(2026, 3, 8, 7, 30), at(2026, 3, 8, 8)),
    ("spring_forward_day_pst", at(2026, 3, 8, 9), at(2026, 3, 9, 7)),
    ("spring_forward_day_pdt", at(2026, 3, 8, 20), at(2026, 3, 9, 7)),
    ("before_fall_back", at(2026, 10, 31, 19), at(2026, 11, 1, 7)),
    ("fall_back_day_pdt", at(2026, 11, 1, 8), at(2026, 11, 2, 8)),
    ("fall_back_day_repeated_hour", at(2026, 11, 1, 9, 30), at(2026, 11, 2, 8)),
    ("fall_back_day_pst", at(2026, 11, 1, 20), at(2026, 11, 2, 8)),
    ("month_end", at(2026, 3, 31, 20), at(2026, 4, 1, 7)),
    ("december_31", at(2026, 12, 31, 20), at(2027, 1, 1, 8)),
    ("new_year_eve_late", at(2027, 1, 1, 7), at(2027, 1, 1, 8)),
)


def spend_cap_vectors() -> list[Vector]:
    spend = anthropic("rate_limit_error", "Over the limit.",
                      details={"error_code": "enforced_spend_limit_reached"})  # fmt: skip
    out = [
        answer(f"anthropic/spend_cap_{label}", "deadlines.spend_cap", "anthropic", 429, spend,
               spend_cap(until - now), now=now)
        for label, now, until in _MONTHS
    ]  # fmt: skip
    out += [
        answer("anthropic/spend_cap_monthly_phrase_december", "deadlines.spend_cap",
               "anthropic", 429, anthropic("rate_limit_error", MONTHLY),
               spend_cap(at(2027, 1, 1) - at(2026, 12, 20)), now=at(2026, 12, 20)),
        answer("anthropic/spend_cap_prose_tie_december", "deadlines.spend_cap(first on tie)",
               "anthropic", 400,
               anthropic("invalid_request_error",
                         ANTHROPIC_WORKSPACE.replace("2026-04-01", "2027-01-01")),
               spend_cap(at(2027, 1, 1) - at(2026, 12, 15, 12)), now=at(2026, 12, 15, 12)),
        answer("anthropic/spend_cap_longer_header", "deadlines.spend_cap(longest wins)",
               "anthropic", 429, spend, quota(86400.0 * 31, "retry-after"),
               headers={"Retry-After": "99999999"}),
        answer("anthropic/spend_cap_windows_ignored", "deadlines.spend_cap(no windows)",
               "anthropic", 429, spend, spend_cap(),
               headers={"anthropic-ratelimit-requests-remaining": "0",
                        "anthropic-ratelimit-requests-reset": "2026-05-01T00:00:00Z"}),
    ]  # fmt: skip
    return out


def daily_vectors() -> list[Vector]:
    day = gemini_rate(
        quota_failure(PER_DAY, value="50"), retry_info("0.5s"), limit=50, prose="0.5s"
    )
    out = [
        answer(f"gemini/daily_{label}", "deadlines.gemini_daily", "gemini", 429, day,
               daily(until - now), now=now)
        for label, now, until in _MIDNIGHTS
    ]  # fmt: skip
    both = gemini_rate(quota_failure(PER_MINUTE, PER_DAY, value="50"), retry_info("46s"))
    no_delay = gemini_rate(quota_failure(PER_DAY, value="50"), limit=50, prose="20h")
    long_delay = gemini_rate(quota_failure(PER_DAY, value="50"), retry_info("90000s"), limit=50)
    limit_zero = gemini_rate(quota_failure(PER_MINUTE, value="15"), retry_info("46s"), limit=0)
    value_zero = gemini_rate(quota_failure(PER_MINUTE, value="0"), retry_info("46s"))
    numeric_zero = gemini_rate(quota_failure(PER_MINUTE, value=0), retry_info("46s"))
    plain_day = doc({"error": {"details": [{"violations": [{"quotaId": PER_DAY}]}]}})
    z, rd = "refine.gemini_limit_0", "refine.gemini_per_day"
    out += [
        answer("gemini/per_day_and_per_minute", rd, "gemini", 429, both, daily()),
        answer("gemini/per_day_prose_only", rd + "(prose longer)", "gemini", 429, no_delay,
               quota(72000.0, "message")),
        answer("gemini/per_day_retry_delay_longer", rd + "(longest wins)", "gemini", 429,
               long_delay, quota(90000.0, "retryDelay")),
        answer("gemini/per_day_header_longer", rd + "(longest wins)", "gemini", 429, day,
               quota(80000.0, "retry-after"), headers={"Retry-After": "80000"}),
        answer("generic/per_day_quota_id_on_plain_429", rd + "(quotaId alone)", "generic", 429,
               plain_day, daily()),
        answer("gemini/per_day_on_400_not_refined", rd + "(rate limits only)", "gemini", 400,
               gemini(400, "INVALID_ARGUMENT", "Bad request.", quota_failure(PER_DAY)), CLIENT),
        answer("gemini/per_minute_not_refined", rd, "gemini", 429,
               gemini_rate(quota_failure(PER_MINUTE), retry_info("46s")),
               rate(46.0, "retryDelay")),
        answer("gemini/limit_0", z, "gemini", 429, limit_zero,
               quota(MIDNIGHT_PACIFIC, "limit: 0")),
        answer("gemini/limit_0_cooldown_longer", z + "(cooldown_seconds longer)", "gemini",
               429, limit_zero, quota(100000.0, "limit: 0"), cooldown=100000.0),
        answer("gemini/limit_0_header_longer", z + "(longest wins)", "gemini", 429, limit_zero,
               quota(90000.0, "limit: 0"), headers={"Retry-After": "90000"}),
        answer("gemini/limit_0_pst", z, "gemini", 429, limit_zero,
               quota(at(2026, 1, 16, 8) - at(2026, 1, 15, 12), "limit: 0"),
               now=at(2026, 1, 15, 12)),
        answer("gemini/limit_0_per_day", z + "(before per day)", "gemini", 429,
               gemini_rate(quota_failure(PER_DAY, value="0"), limit=0),
               quota(MIDNIGHT_PACIFIC, "limit: 0")),
        answer("gemini/quota_value_zero", "refine.gemini_quota_value_0", "gemini", 429,
               value_zero, quota(MIDNIGHT_PACIFIC, "limit: 0")),
        answer("gemini/quota_value_zero_numeric", "refine.gemini_quota_value_0", "gemini", 429,
               numeric_zero, quota(MIDNIGHT_PACIFIC, "limit: 0")),
        answer("generic/limit_0_resource_exhausted", z, "generic", 429, limit_zero,
               quota(MIDNIGHT_PACIFIC, "limit: 0")),
        answer("gemini/limit_50_not_zero", z + "(not 50)", "gemini", 429,
               gemini_rate(quota_failure(PER_MINUTE, value="50"), retry_info("46s"), limit=50),
               rate(46.0, "retryDelay")),
        answer("gemini/limit_0_5_not_zero", z + "(not 0.5)", "gemini", 429,
               gemini_rate(quota_failure(PER_MINUTE, value="0.5"), retry_info("46s")).replace(
                   "limit: 15", "limit: 0.5"), rate(46.0, "retryDelay")),
        answer("openai/limit_0_without_resource_exhausted", z + "(gemini only)", "openai", 429,
               openai("Rate limit reached: limit: 0, used: 0.", None, "rate_limit_exceeded"),
               DEFAULT_RATE),
    ]  # fmt: skip
    return out
