"""Vectors of the reset signals: every header format, the per-dimension windows, the longest
signal, Gemini's retryDelay and the delays written in messages."""

from __future__ import annotations

from vec_common import (
    ANTHROPIC_RATE_BODY,
    DEFAULT_RATE,
    GROQ_TPM,
    NOW,
    OPENAI_QUOTA_BODY,
    OPENAI_RATE_BODY,
    OPENAI_RPM,
    PER_MINUTE,
    Expect,
    Headers,
    Vector,
    answer,
    anthropic,
    at,
    gemini_rate,
    http_date,
    openai,
    quota,
    quota_failure,
    rate,
    retry_info,
)

MAX = 86400.0 * 31  # MAX_RESET_SECONDS


def _rate(name: str, rule: str, headers: Headers, expect: Expect, body: str = "") -> Vector:
    """A generic 429 (a rate limit by its status): the headers alone decide."""
    return answer(name, rule, "generic", 429, body, expect, headers=headers)


def plain_header_vectors() -> list[Vector]:
    """retry-after (seconds, HTTP-date), retry-after-ms, x-ms-retry-after-ms, x-ratelimit-reset."""
    ra, ms, xms, xr = (
        "resets.headers.retry-after",
        "resets.headers.retry-after-ms",
        "resets.headers.x-ms-retry-after-ms",
        "resets.headers.x-ratelimit-reset",
    )
    return [
        _rate("generic/retry_after_seconds", ra + "(seconds)", {"Retry-After": "30"},
              rate(30.0, "retry-after")),
        _rate("generic/retry_after_lower_case_name", ra + "(seconds)", {"retry-after": "17"},
              rate(17.0, "retry-after")),
        _rate("generic/retry_after_fraction", ra + "(seconds)", {"Retry-After": "1.5"},
              rate(1.5, "retry-after")),
        _rate("generic/retry_after_zero", ra + "(seconds)", {"Retry-After": "0"},
              rate(0.0, "retry-after")),
        _rate("generic/retry_after_negative", ra + "(negative->0)", {"Retry-After": "-5"},
              rate(0.0, "retry-after")),
        _rate("generic/retry_after_padded", ra + "(seconds)", {"Retry-After": " 42 "},
              rate(42.0, "retry-after")),
        _rate("generic/retry_after_http_date", ra + "(http-date)",
              {"Retry-After": http_date(NOW + 120)}, rate(120.0, "retry-after")),
        _rate("generic/retry_after_http_date_past", ra + "(http-date, past->0)",
              {"Retry-After": http_date(NOW - 3600)}, rate(0.0, "retry-after")),
        _rate("generic/retry_after_http_date_next_day", ra + "(http-date)",
              {"Retry-After": "Mon, 16 Mar 2026 00:00:00 GMT"},
              rate(at(2026, 3, 16) - NOW, "retry-after")),
        _rate("generic/retry_after_unparseable", ra + "(unparseable->ignored)",
              {"Retry-After": "soon"}, DEFAULT_RATE),
        _rate("generic/retry_after_clamped", ra + "(clamp MAX_RESET_SECONDS)",
              {"Retry-After": "99999999"}, rate(MAX, "retry-after")),
        _rate("generic/retry_after_ms", ms, {"retry-after-ms": "1500"},
              rate(1.5, "retry-after-ms")),
        _rate("generic/retry_after_ms_negative", ms + "(negative->0)", {"retry-after-ms": "-100"},
              rate(0.0, "retry-after-ms")),
        _rate("generic/retry_after_ms_unparseable", ms + "(unparseable->ignored)",
              {"retry-after-ms": "1.5s"}, DEFAULT_RATE),
        _rate("generic/x_ms_retry_after_ms", xms, {"x-ms-retry-after-ms": "2500"},
              rate(2.5, "x-ms-retry-after-ms")),
        _rate("generic/x_ms_retry_after_ms_unparseable", xms + "(unparseable->ignored)",
              {"x-ms-retry-after-ms": "abc"}, DEFAULT_RATE),
        _rate("generic/x_ratelimit_reset_relative", xr + "(small=relative)",
              {"x-ratelimit-reset": "30"}, rate(30.0, "x-ratelimit-reset")),
        _rate("generic/x_ratelimit_reset_relative_fraction", xr + "(small=relative)",
              {"x-ratelimit-reset": "12.5"}, rate(12.5, "x-ratelimit-reset")),
        _rate("generic/x_ratelimit_reset_epoch_seconds", xr + "(epoch seconds)",
              {"x-ratelimit-reset": str(int(NOW) + 90)}, rate(90.0, "x-ratelimit-reset")),
        _rate("generic/x_ratelimit_reset_epoch_millis", xr + "(epoch ms)",
              {"x-ratelimit-reset": str(int(NOW) * 1000 + 90500)},
              rate(90.5, "x-ratelimit-reset")),
        _rate("generic/x_ratelimit_reset_epoch_past", xr + "(epoch seconds, negative->0)",
              {"x-ratelimit-reset": str(int(NOW) - 100)}, rate(0.0, "x-ratelimit-reset")),
        _rate("generic/x_ratelimit_reset_1e9_is_epoch", xr + "(epoch seconds from 1e9)",
              {"x-ratelimit-reset": "1000000000"}, rate(0.0, "x-ratelimit-reset")),
        _rate("generic/x_ratelimit_reset_far_future", xr + "(clamp MAX_RESET_SECONDS)",
              {"x-ratelimit-reset": "4102444800"}, rate(MAX, "x-ratelimit-reset")),
        _rate("generic/x_ratelimit_reset_nan", xr + "(unparseable->ignored)",
              {"x-ratelimit-reset": "NaN"}, DEFAULT_RATE),
        _rate("generic/x_ratelimit_reset_inf", xr + "(unparseable->ignored)",
              {"x-ratelimit-reset": "Infinity", "Retry-After": "3"}, rate(3.0, "retry-after")),
    ]  # fmt: skip


def window_vectors() -> list[Vector]:
    """Go durations of x-ratelimit-reset-*, RFC 3339 of anthropic-ratelimit-*-reset, and the
    exhausted dimension: the one the error names, else one with no requests/tokens left."""
    go = "resets.headers.x-ratelimit-reset-requests(go duration)"
    out = [
        _rate(f"generic/go_duration_{label}", go, {"x-ratelimit-reset-requests": value},
              rate(seconds, "x-ratelimit-reset-requests"))
        for label, value, seconds in (
            ("12ms", "12ms", 0.012), ("1s", "1s", 1.0), ("6m0s", "6m0s", 360.0),
            ("2m59_56s", "2m59.56s", 179.56), ("1h2m", "1h2m", 3720.0),
            ("1h30m0_5s", "1h30m0.5s", 5400.5), ("250us", "250us", 0.00025),
            ("250micro", "250µs", 0.00025), ("2500000ns", "2500000ns", 0.0025),
            ("bare_seconds", "7", 7.0), ("bare_fraction", "7.5", 7.5),
            ("clamped", "2000h", MAX),
        )
    ]  # fmt: skip
    out += [
        _rate(f"generic/go_duration_unparseable_{label}", go + "(unparseable->ignored)",
              {"x-ratelimit-reset-requests": value, "Retry-After": "2"}, rate(2.0, "retry-after"))
        for label, value in (("word", "soon"), ("trailing", "1m junk"), ("unit", "5d"),
                             ("empty", ""), ("sign", "-1s"))
    ]  # fmt: skip
    a = "resets.headers.anthropic-ratelimit-requests-reset(rfc3339"
    out += [
        answer(f"anthropic/rfc3339_{label}", f"{a}, {label})", "anthropic", 429,
               ANTHROPIC_RATE_BODY, rate(seconds, "anthropic-ratelimit-requests-reset"),
               headers={"anthropic-ratelimit-requests-reset": value})
        for label, value, seconds in (
            ("zulu", "2026-03-15T12:35:41Z", 45.0),
            ("plus_offset", "2026-03-15T14:35:41+02:00", 45.0),
            ("minus_offset", "2026-03-15T05:05:41-07:30", 45.0),
            ("fraction", "2026-03-15T12:35:08.500Z", 12.5),
            ("long_fraction", "2026-03-15T12:35:41.123456789Z", 45.123456789),
            ("lower_case", "2026-03-15t12:35:41z", 45.0),
            ("space", "2026-03-15 12:35:41Z", 45.0),
            ("past", "2026-03-15T12:00:00Z", 0.0),
            ("clamped", "2027-03-15T12:00:00Z", MAX),
        )
    ]  # fmt: skip
    out += [
        answer(f"anthropic/rfc3339_unparseable_{label}", f"{a}, unparseable->ignored)",
               "anthropic", 429, ANTHROPIC_RATE_BODY, rate(20.0, "retry-after"),
               headers={"anthropic-ratelimit-requests-reset": value, "Retry-After": "20"})
        for label, value in (("word", "tomorrow"), ("no_zone", "2026-03-15T12:35:41"),
                             ("bad_date", "2026-02-30T00:00:00Z"), ("epoch", "1773578141"))
    ]  # fmt: skip
    w, d = "resets.windows.", "resets.windows.dimension"
    anthropic_429 = anthropic("rate_limit_error", "This request would exceed your rate limit.")
    out += [
        answer("openai/window_dimension_requests", d + "(type requests)", "openai", 429,
               openai(OPENAI_RPM.replace(" Please try again in 120ms.", ""), "requests",
                      "rate_limit_exceeded"),
               rate(360.0, "x-ratelimit-reset-requests"),
               headers={"x-ratelimit-remaining-requests": "5", "x-ratelimit-reset-requests": "6m0s",
                        "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "1h"}),
        answer("openai/window_dimension_tokens", d + "(type tokens)", "openai", 429,
               openai("Rate limit reached on tokens per min (TPM).", "tokens",
                      "rate_limit_exceeded"),
               rate(179.56, "x-ratelimit-reset-tokens"),
               headers={"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6m0s",
                        "x-ratelimit-remaining-tokens": "0",
                        "x-ratelimit-reset-tokens": "2m59.56s"}),
        answer("openai/window_groq_day_window_ignored", d + "(type tokens)", "openai", 429,
               openai(GROQ_TPM, "tokens", "rate_limit_exceeded"), rate(10.0, "retry-after"),
               headers={"retry-after": "10", "x-ratelimit-limit-requests": "14400",
                        "x-ratelimit-remaining-requests": "14370",
                        "x-ratelimit-reset-requests": "2m59.56s",
                        "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "7.66s"}),
        answer("openai/window_remaining_decides", w + "remaining", "openai", 429,
               OPENAI_RATE_BODY, rate(3.0, "x-ratelimit-reset-tokens"),
               headers={"x-ratelimit-remaining-requests": "499",
                        "x-ratelimit-reset-requests": "6m0s",
                        "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "3s"}),
        answer("openai/window_remaining_absent_counts", w + "remaining(absent)", "openai", 429,
               OPENAI_RATE_BODY, rate(360.0, "x-ratelimit-reset-requests"),
               headers={"x-ratelimit-reset-requests": "6m0s", "x-ratelimit-reset-tokens": "3s"}),
        answer("openai/window_remaining_unparseable_counts", w + "remaining(unparseable)",
               "openai", 429, OPENAI_RATE_BODY, rate(360.0, "x-ratelimit-reset-requests"),
               headers={"x-ratelimit-remaining-requests": "n/a",
                        "x-ratelimit-reset-requests": "6m0s",
                        "x-ratelimit-remaining-tokens": "0.0", "x-ratelimit-reset-tokens": "3s"}),
        answer("openai/window_all_left_none_counts", w + "remaining(all left)", "openai", 429,
               OPENAI_RATE_BODY, DEFAULT_RATE,
               headers={"x-ratelimit-remaining-requests": "1",
                        "x-ratelimit-reset-requests": "6m0s",
                        "x-ratelimit-remaining-tokens": "0.5", "x-ratelimit-reset-tokens": "3s"}),
        answer("openai/window_all_left_message", w + "remaining(all left)", "openai", 429,
               openai(OPENAI_RPM, "rate_limit_error", "rate_limit_exceeded"),
               rate(0.12, "message"),
               headers={"x-ratelimit-remaining-requests": "3",
                        "x-ratelimit-reset-requests": "6m0s"}),
        answer("anthropic/window_requests_exhausted", w + "anthropic", "anthropic", 429,
               anthropic_429, rate(45.0, "anthropic-ratelimit-requests-reset"),
               headers={"retry-after": "30", "anthropic-ratelimit-requests-limit": "50",
                        "anthropic-ratelimit-requests-remaining": "0",
                        "anthropic-ratelimit-requests-reset": "2026-03-15T12:35:41Z",
                        "anthropic-ratelimit-tokens-remaining": "12000",
                        "anthropic-ratelimit-tokens-reset": "2026-03-15T12:40:00Z"}),
        answer("anthropic/window_tokens", w + "anthropic", "anthropic", 429, anthropic_429,
               rate(64.0, "anthropic-ratelimit-tokens-reset"),
               headers={"anthropic-ratelimit-requests-remaining": "40",
                        "anthropic-ratelimit-requests-reset": "2026-03-15T12:40:00Z",
                        "anthropic-ratelimit-tokens-remaining": "0",
                        "anthropic-ratelimit-tokens-reset": "2026-03-15T12:36:00Z"}),
        answer("anthropic/window_input_tokens", w + "anthropic", "anthropic", 429, anthropic_429,
               rate(12.5, "anthropic-ratelimit-input-tokens-reset"),
               headers={"retry-after": "10",
                        "anthropic-ratelimit-input-tokens-remaining": "0",
                        "anthropic-ratelimit-input-tokens-reset": "2026-03-15T12:35:08.500Z",
                        "anthropic-ratelimit-output-tokens-remaining": "8000",
                        "anthropic-ratelimit-output-tokens-reset": "2026-03-15T12:35:46Z"}),
        answer("anthropic/window_output_tokens", w + "anthropic", "anthropic", 429,
               anthropic_429, rate(50.0, "anthropic-ratelimit-output-tokens-reset"),
               headers={"anthropic-ratelimit-input-tokens-remaining": "30000",
                        "anthropic-ratelimit-input-tokens-reset": "2026-03-15T12:36:00Z",
                        "anthropic-ratelimit-output-tokens-remaining": "0",
                        "anthropic-ratelimit-output-tokens-reset": "2026-03-15T12:35:46Z"}),
        answer("anthropic/window_ignored_for_quota", "quota.ignores_windows", "anthropic", 402,
               anthropic("billing_error", "Your account has a billing issue."), quota(),
               headers={"anthropic-ratelimit-requests-remaining": "0",
                        "anthropic-ratelimit-requests-reset": "2026-03-15T13:00:00Z"}),
        answer("openai/quota_plain_headers_count", "quota.plain_headers", "openai", 429,
               OPENAI_QUOTA_BODY, quota(7200.0, "retry-after"),
               headers={"retry-after": "7200", "x-ratelimit-reset-requests": "9h"}),
        answer("generic/quota_x_ratelimit_reset", "quota.plain_headers", "generic", 402, "",
               quota(5000.0, "x-ratelimit-reset"),
               headers={"x-ratelimit-reset": str(int(NOW) + 5000), "retry-after-ms": "100"}),
    ]  # fmt: skip
    return out


def longest_vectors() -> list[Vector]:
    """The longest signal wins; the first (retryDelay, retry-after, retry-after-ms,
    x-ms-retry-after-ms, x-ratelimit-reset, the windows) on a tie."""
    lw, tie = "resets.longest", "resets.longest(first on tie)"
    minute = gemini_rate(quota_failure(PER_MINUTE), retry_info("30s"))
    return [
        _rate("generic/longest_retry_after", lw, {"Retry-After": "2", "retry-after-ms": "1500"},
              rate(2.0, "retry-after")),
        _rate("generic/longest_retry_after_ms", lw,
              {"Retry-After": "1", "retry-after-ms": "1500", "x-ms-retry-after-ms": "900"},
              rate(1.5, "retry-after-ms")),
        _rate("generic/longest_window", lw,
              {"Retry-After": "10", "x-ratelimit-reset-tokens": "1m", "x-ratelimit-reset": "20"},
              rate(60.0, "x-ratelimit-reset-tokens")),
        _rate("generic/longest_x_ratelimit_reset", lw,
              {"Retry-After": "10", "x-ratelimit-reset-tokens": "7.66s", "x-ratelimit-reset": "20"},
              rate(20.0, "x-ratelimit-reset")),
        _rate("generic/tie_retry_after_first", tie,
              {"retry-after-ms": "30000", "Retry-After": "30"}, rate(30.0, "retry-after")),
        _rate("generic/tie_ms_headers", tie,
              {"x-ms-retry-after-ms": "2500", "retry-after-ms": "2500"},
              rate(2.5, "retry-after-ms")),
        _rate("generic/tie_windows_requests_first", tie,
              {"x-ratelimit-reset-tokens": "30s", "x-ratelimit-reset-requests": "30s"},
              rate(30.0, "x-ratelimit-reset-requests")),
        _rate("generic/tie_plain_before_window", tie,
              {"x-ratelimit-reset-requests": "30s", "x-ratelimit-reset": "30"},
              rate(30.0, "x-ratelimit-reset")),
        _rate("generic/tie_clamped_first", tie,
              {"x-ratelimit-reset": "4102444800", "Retry-After": "99999999"},
              rate(MAX, "retry-after")),
        answer("gemini/tie_retry_delay_first", tie, "gemini", 429, minute,
               rate(30.0, "retryDelay"), headers={"Retry-After": "30"}),
        answer("gemini/longest_header_over_retry_delay", lw, "gemini", 429, minute,
               rate(31.0, "retry-after"), headers={"Retry-After": "31"}),
    ]  # fmt: skip


def delay_vectors() -> list[Vector]:
    """Gemini's retryDelay, and the delay in a message when nothing else says."""
    rd, p = "resets.body.retryDelay", "resets.prose"

    def minute(*delays: str, prose: str = "46.33s") -> str:
        return gemini_rate(quota_failure(PER_MINUTE), *map(retry_info, delays), prose=prose)

    return [
        answer("gemini/retry_delay_fraction", rd, "gemini", 429, minute("1.5s"),
               rate(1.5, "retryDelay")),
        answer("gemini/retry_delay_millis", rd, "gemini", 429, minute("0.250s"),
               rate(0.25, "retryDelay")),
        answer("gemini/retry_delay_bare_number", rd, "gemini", 429, minute("46"),
               rate(46.0, "retryDelay")),
        answer("gemini/retry_delay_longest_of_two", rd, "gemini", 429, minute("5s", "20s"),
               rate(20.0, "retryDelay")),
        answer("gemini/retry_delay_clamped", rd + "(clamp)", "gemini", 429, minute("9999999s"),
               rate(MAX, "retryDelay")),
        answer("gemini/retry_delay_unparseable_message", rd + "(unparseable->ignored)", "gemini",
               429, minute("soon"), rate(46.33, "message")),
        answer("gemini/retry_delay_absent_message", p, "gemini", 429,
               minute(prose="10h17m5.7s"), rate(37025.7, "message")),
        answer("openai/prose_try_again_ms", p, "openai", 429,
               openai(OPENAI_RPM, "requests", "rate_limit_exceeded"), rate(0.12, "message")),
        answer("openai/prose_groq_seconds", p, "openai", 429,
               openai(GROQ_TPM, "tokens", "rate_limit_exceeded"), rate(9.78, "message")),
        answer("openai/prose_ignored_with_header", p + "(headers first)", "openai", 429,
               openai(GROQ_TPM, "tokens", "rate_limit_exceeded"), rate(5.0, "retry-after"),
               headers={"retry-after": "5"}),
        _rate("generic/prose_retry_in", p, {}, rate(90.0, "message"),
              body="Too many requests, please retry in 1m30s"),
        _rate("generic/prose_resets_at_rfc3339", p + "(resets at)", {}, rate(1504.0, "message"),
              body="Your limit resets at 2026-03-15T13:00:00Z."),
        _rate("generic/prose_resets_at_space_time", p + "(resets at)", {},
              rate(1504.0, "message"), body="Quota resets at 2026-03-15 13:00 UTC"),
        _rate("generic/prose_reset_on_date", p + "(reset on)", {},
              rate(at(2026, 3, 16) - NOW, "message"), body="The limit will reset on 2026-03-16."),
        _rate("generic/prose_regain_access_rate", p + "(regain access on)", {},
              rate(at(2026, 3, 15, 18, 30) - NOW, "message"),
              body="You will regain access on 2026-03-15 at 18:30 UTC."),
        _rate("generic/prose_past_date", p + "(negative->0)", {}, rate(0.0, "message"),
              body="Your limit resets at 2026-03-01."),
        _rate("generic/prose_clamped", p + "(clamp)", {}, rate(MAX, "message"),
              body="Please try again in 9999h."),
        _rate("generic/prose_in_words_ignored", p + "(unparseable->ignored)", {}, DEFAULT_RATE,
              body="Please try again in a few minutes."),
        _rate("generic/prose_bad_date_ignored", p + "(unparseable->ignored)", {}, DEFAULT_RATE,
              body="Your limit resets at 2026-13-45."),
        answer("generic/prose_regain_access_quota", p + "(quota)", "generic", 402,
               "You will regain access on 2026-04-01 at 00:00 UTC.",
               quota(at(2026, 4, 1) - NOW, "message")),
        answer("generic/prose_quota_retry_in", p + "(quota)", "generic", 402,
               "Credits exhausted: retry in 2h", quota(7200.0, "message")),
        answer("generic/prose_quota_after_headers", p + "(quota, headers first)", "generic",
               402, "Credits exhausted: retry in 5h", quota(100.0, "retry-after"),
               headers={"Retry-After": "100"}),
    ]  # fmt: skip
