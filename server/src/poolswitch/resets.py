"""Reset signals: when a provider says a key may be used again, read into seconds from `now`.

Every parser takes the raw text (and `now`, a Unix time, when the value is absolute) and returns
seconds from `now`, or None when it cannot read the value; none of them raises. A signal is
`(seconds, source)`: `source` names where the time came from and is shown in `/status`.

    source                                format                            example
    retry-after                           seconds or HTTP-date (RFC 9110)   30
    retry-after-ms, x-ms-retry-after-ms   milliseconds (OpenAI SDK, Azure)  1500
    x-ratelimit-reset-requests / -tokens  Go duration (OpenAI, Groq)        12ms, 6m0s, 2m59.56s
    anthropic-ratelimit-*-reset           RFC 3339 time                     2026-08-21T12:40:59Z
    x-ratelimit-reset                     epoch seconds (generic, Envoy)    1760000000
    retryDelay                            duration in a Gemini body         46s
    message                               prose, when nothing else says     "try again in 9.78s",
                                                                            "regain access on
                                                                            2026-04-01 at 00:00 UTC"

`x-ratelimit-reset` below 1e9 is read as seconds from now (the IETF draft's RateLimit-Reset),
above 1e12 as epoch milliseconds. The per-dimension windows (`x-ratelimit-reset-requests`,
`anthropic-ratelimit-tokens-reset`, ...) count only for an exhausted dimension: the one the error
names, else one whose `...-remaining` header is absent or 0 (a window with requests left did not
cause the 429, and Groq's request window is a whole day). Every signal is clamped to
[0, MAX_RESET_SECONDS]; the longest wins.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, time, timedelta, timezone, tzinfo
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MAX_RESET_SECONDS = 86400.0 * 31
PACIFIC_FALLBACK = timezone(timedelta(hours=-8), "UTC-8")

Signal = tuple[float, str]
_Parser = Callable[[str, float], float | None]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:([Zz])|([+-])(\d\d):(\d\d))"
)
_PROSE_DELAY = re.compile(r"(?:try again|retry) in ((?:\d+(?:\.\d+)?(?:ms|us|µs|ns|h|m|s))+)")
_PROSE_DATE = re.compile(
    r"(?:regain access on|resets? (?:at|on))\s+(\d{4}-\d\d-\d\d)"
    r"(?:(?:\s+at\s+|[t ])(\d\d:\d\d(?::\d\d)?))?"
)


def clamp(seconds: float) -> float:
    """Bound a reset to [0, MAX_RESET_SECONDS]: a provider's absurd value must not park a key
    for ever (or for a negative time)."""
    return min(max(seconds, 0.0), MAX_RESET_SECONDS)


def _number(value: str) -> float | None:
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_duration(value: str) -> float | None:
    """Go-style durations as sent by OpenAI and Groq: `12ms`, `1s`, `6m0s`, `2m59.56s`; also a
    bare number of seconds."""
    value = value.strip()
    total = 0.0
    pos = 0
    for match in _DURATION_PART.finditer(value):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos == 0:
        return _number(value) if value else None
    return total if pos == len(value) else None


def parse_retry_after(value: str, now: float) -> float | None:
    """RFC 9110 Retry-After: delay-seconds or an HTTP-date; a date in the past is 0."""
    seconds = _number(value)
    if seconds is not None:
        return max(seconds, 0.0)
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(when.timestamp() - now, 0.0)


def parse_millis(value: str, now: float = 0.0) -> float | None:
    """`retry-after-ms: 1500` -> 1.5 seconds."""
    millis = _number(value)
    return None if millis is None else millis / 1000.0


def parse_rfc3339(value: str, now: float) -> float | None:
    """Anthropic's `anthropic-ratelimit-*-reset: 2026-08-21T12:40:59Z`, as seconds from now."""
    match = _RFC3339.fullmatch(value.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zulu, sign, tz_h, tz_m = match.groups()
    offset = timedelta() if zulu else timedelta(hours=int(tz_h), minutes=int(tz_m))
    try:
        when = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second),
            tzinfo=timezone(-offset if sign == "-" else offset),
        )  # fmt: skip
    except ValueError:
        return None
    return when.timestamp() + float(f"0.{fraction or 0}") - now


def parse_epoch(value: str, now: float) -> float | None:
    """Generic `x-ratelimit-reset`: epoch seconds (epoch milliseconds above 1e12, seconds from
    now below 1e9)."""
    number = _number(value)
    if number is None:
        return None
    if number < 1e9:
        return number
    return (number / 1000.0 if number > 1e12 else number) - now


def _go_duration(value: str, now: float) -> float | None:
    return parse_duration(value)


_PLAIN: tuple[tuple[str, _Parser], ...] = (
    ("retry-after", parse_retry_after),
    ("retry-after-ms", parse_millis),
    ("x-ms-retry-after-ms", parse_millis),
    ("x-ratelimit-reset", parse_epoch),
)
# (header, parser, dimension, the header that says what is left of that dimension)
_WINDOWS: tuple[tuple[str, _Parser, str, str], ...] = (
    *(
        (f"x-ratelimit-reset-{d}", _go_duration, d, f"x-ratelimit-remaining-{d}")
        for d in ("requests", "tokens")
    ),
    *(
        (f"anthropic-ratelimit-{d}-reset", parse_rfc3339, d, f"anthropic-ratelimit-{d}-remaining")
        for d in ("requests", "tokens", "input-tokens", "output-tokens")
    ),
)


def _has_left(value: str | None) -> bool:
    number = None if value is None else _number(value)
    return number is not None and number > 0


def header_signals(
    headers: Mapping[str, str], now: float, *, windows: bool = True, dimension: str | None = None
) -> list[Signal]:
    """Every reset signal in `headers` (case-insensitive or lower-cased), clamped. `windows=False`
    leaves out the per-dimension rate windows (they say nothing about a quota); `dimension`
    ("requests" or "tokens", as an OpenAI error's `type` names it) keeps only that window."""
    found: list[Signal] = []
    for name, parse in _PLAIN:
        _add(found, headers, name, parse, now)
    if windows:
        for name, parse, dim, remaining in _WINDOWS:
            if dimension is not None and dim != dimension:
                continue
            if dimension is None and _has_left(headers.get(remaining)):
                continue
            _add(found, headers, name, parse, now)
    return found


def _add(
    found: list[Signal], headers: Mapping[str, str], name: str, parse: _Parser, now: float
) -> None:
    value = headers.get(name)
    if value is not None:
        seconds = parse(value, now)
        if seconds is not None:
            found.append((clamp(seconds), name))


def longest(signals: Iterable[Signal]) -> Signal | None:
    """The longest signal, clamped; the first one on a tie."""
    best: Signal | None = None
    for seconds, source in signals:
        seconds = clamp(seconds)
        if best is None or seconds > best[0]:
            best = (seconds, source)
    return best


def reset_after(headers: Mapping[str, str], now: float) -> Signal | None:
    """Seconds until the headers say the key may be used again, and the header that said it."""
    return longest(header_signals(headers, now))


def prose_signal(text: str, now: float) -> Signal | None:
    """A reset stated in an error message (lower-cased): "please try again in 9.78s", "please
    retry in 10h17m5.7s", "you will regain access on 2026-04-01 at 00:00 utc" (read as UTC)."""
    delay = _PROSE_DELAY.search(text)
    if delay is not None:
        seconds = parse_duration(delay.group(1))
        if seconds is not None:
            return clamp(seconds), "message"
    date = _PROSE_DATE.search(text)
    if date is not None:
        clock = date.group(2) or "00:00"
        seconds = parse_rfc3339(f"{date.group(1)}T{clock}{':00' if len(clock) == 5 else ''}Z", now)
        if seconds is not None:
            return clamp(seconds), "message"
    return None


def until_month_start(now: float) -> float:
    """Seconds until 00:00 UTC on the 1st of next month (Anthropic's monthly spend limits)."""
    today = datetime.fromtimestamp(now, timezone.utc)
    year, month = (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)
    return datetime(year, month, 1, tzinfo=timezone.utc).timestamp() - now


def pacific() -> tzinfo:
    """America/Los_Angeles, or a fixed UTC-8 where the tz database is missing."""
    try:
        return ZoneInfo("America/Los_Angeles")
    except (ZoneInfoNotFoundError, OSError, ValueError):
        return PACIFIC_FALLBACK


def until_midnight(now: float, zone: tzinfo) -> float:
    """Seconds until the next midnight in `zone` (Gemini's daily quotas: midnight Pacific)."""
    tomorrow = datetime.fromtimestamp(now, zone).date() + timedelta(days=1)
    return datetime.combine(tomorrow, time(), tzinfo=zone).timestamp() - now
