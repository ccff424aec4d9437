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

Which headers, windows and phrases count, and in which format, is data (profiles/providers.json,
`resets`); the parsers of the formats are here: `FORMATS`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, time, timedelta, timezone, tzinfo
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from poolswitch.profiles import RULES

MAX_RESET_SECONDS = RULES.max_reset_seconds
PACIFIC_FALLBACK = timezone(timedelta(hours=-8), "UTC-8")

Signal = tuple[float, str]
_Parser = Callable[[str, float], float | None]

_UNITS = RULES.duration_units
_DURATION_PART = re.compile(
    r"(\d+(?:\.\d+)?)(" + "|".join(map(re.escape, sorted(_UNITS, key=len, reverse=True))) + ")"
)
_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:([Zz])|([+-])(\d\d):(\d\d))"
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
        total += float(match.group(1)) * _UNITS[match.group(2)]
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


FORMATS: dict[str, _Parser] = {
    "retry_after": parse_retry_after,
    "millis": parse_millis,
    "epoch": parse_epoch,
    "duration": _go_duration,
    "rfc3339": parse_rfc3339,
}
"""The parser of each header format that providers.json names."""


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
    for signal in RULES.header_signals:
        _add(found, headers, signal.name, FORMATS[signal.format], now)
    if windows:
        for signal in RULES.windows:
            if dimension is not None and signal.dimension != dimension:
                continue
            if dimension is None and signal.remaining and _has_left(headers.get(signal.remaining)):
                continue
            _add(found, headers, signal.name, FORMATS[signal.format], now)
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
    for pattern, form in RULES.prose:
        found = pattern.search(text)
        if found is None:
            continue
        if form == "date_utc":
            clock = found.group(2) or "00:00"
            stamp = f"{found.group(1)}T{clock}{':00' if len(clock) == 5 else ''}Z"
            seconds = parse_rfc3339(stamp, now)
        else:
            seconds = FORMATS[form](found.group(1), now)
        if seconds is not None:
            return clamp(seconds), "message"
    return None


def until_month_start(now: float, zone: tzinfo = timezone.utc) -> float:
    """Seconds until 00:00 on the 1st of next month in `zone` (Anthropic's monthly spend
    limits: UTC)."""
    today = datetime.fromtimestamp(now, zone)
    year, month = (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)
    return datetime(year, month, 1, tzinfo=zone).timestamp() - now


def zone(name: str, fallback: tzinfo) -> tzinfo:
    """The IANA time zone `name`, or `fallback` where the tz database is missing."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, OSError, ValueError):
        return fallback


def pacific() -> tzinfo:
    """America/Los_Angeles, or a fixed UTC-8 where the tz database is missing."""
    return zone("America/Los_Angeles", PACIFIC_FALLBACK)


def until_midnight(now: float, zone: tzinfo) -> float:
    """Seconds until the next midnight in `zone` (Gemini's daily quotas: midnight Pacific)."""
    tomorrow = datetime.fromtimestamp(now, zone).date() + timedelta(days=1)
    return datetime.combine(tomorrow, time(), tzinfo=zone).timestamp() - now
