"""Fuzz: every reset parser takes any text without raising; a raw parser gives None or a
number that `clamp` bounds, a signal is always finite and within [0, MAX_RESET_SECONDS]."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from poolswitch import resets
from poolswitch.resets import MAX_RESET_SECONDS, Signal

from fuzzing import REPLAY, SIGNAL_HEADERS, fuzz_settings

pytestmark = pytest.mark.fuzz

NOW = st.floats(min_value=1e9, max_value=4e9)
PIECES = st.sampled_from(
    [
        "0",
        "1",
        "9" * 30,
        "9" * 400,
        ".",
        "-",
        "+",
        "e",
        "E400",
        "nan",
        "inf",
        "h",
        "m",
        "s",
        "ms",
        "us",
        "µs",
        "ns",
        "T",
        "Z",
        ":",
        " ",
        "GMT",
        "Wed, 21 Oct 2015 07:28:00 GMT",
        "9999-12-31T23:59:59",
        "0000-00-00T00:00:00",
        "+99:99",
        "try again in ",
        "retry in ",
        "regain access on ",
        "resets at ",
        " at ",
        "2026-04-01",
        "00:00",
        "99:99:99",
        "\x00",
        "\u0660",  # Arabic-Indic zero: a digit to \d and float()
        "٩",
    ]
)
TEXT = st.one_of(st.text(max_size=40), st.lists(PIECES, max_size=8).map("".join))

RAW: tuple[Callable[[str, float], float | None], ...] = (
    resets.parse_retry_after,
    resets.parse_millis,
    resets.parse_rfc3339,
    resets.parse_epoch,
    lambda value, now: resets.parse_duration(value),
)


def bounded(signal: Signal | None) -> None:
    if signal is None:
        return
    seconds, source = signal
    assert isinstance(source, str) and source, REPLAY
    assert math.isfinite(seconds) and 0 <= seconds <= MAX_RESET_SECONDS, f"{signal} ({REPLAY})"


@fuzz_settings()
@given(TEXT, NOW)
def test_raw_parsers_never_raise(value: str, now: float) -> None:
    for parse in RAW:
        seconds = parse(value, now)
        if seconds is not None:
            assert isinstance(seconds, float) and not math.isnan(seconds), f"{parse}: {seconds}"
            clamped = resets.clamp(seconds)
            assert 0 <= clamped <= MAX_RESET_SECONDS, REPLAY


@fuzz_settings()
@given(TEXT, NOW)
def test_prose_signal_is_bounded(text: str, now: float) -> None:
    bounded(resets.prose_signal(text.lower(), now))


HEADERS = st.dictionaries(
    st.sampled_from(SIGNAL_HEADERS),
    TEXT,
    max_size=8,
)


@fuzz_settings()
@given(HEADERS, NOW, st.sampled_from([None, "requests", "tokens", "other"]), st.booleans())
def test_header_signals_are_bounded(
    headers: dict[str, str], now: float, dimension: str | None, windows: bool
) -> None:
    for signal in resets.header_signals(headers, now, windows=windows, dimension=dimension):
        bounded(signal)
    bounded(resets.reset_after(headers, now))


@fuzz_settings()
@given(
    st.lists(st.tuples(st.floats(allow_nan=False), st.text(min_size=1, max_size=5)), max_size=5),
    NOW,
)
def test_longest_and_calendar_resets_are_bounded(signals: list[Signal], now: float) -> None:
    bounded(resets.longest(signals))
    for seconds in (resets.until_month_start(now), resets.until_midnight(now, resets.pacific())):
        assert 0 < seconds <= 86400 * 31 + 3600, REPLAY
