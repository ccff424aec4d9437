"""runner.patterns: --run/--skip globs and known-failing lists."""

from __future__ import annotations

import pytest

from poolswitch_testing.conformance.patterns import (
    PatternError,
    known_for,
    parse_known_failing,
    select,
    unused,
)

IDS = ["basic/json_post", "failover/rate_limit", "failover/drop_get", "streaming/cut"]


def test_select_everything_by_default() -> None:
    assert select(IDS, []) == IDS


def test_select_by_glob_keeps_case_order() -> None:
    assert select(IDS, ["streaming/*", "failover/*"]) == IDS[1:]
    assert select(IDS, ["*/drop_*"]) == ["failover/drop_get"]
    assert select(IDS, ["failover/*"], ["*drop*"]) == ["failover/rate_limit"]


def test_select_is_case_sensitive_and_whole_id() -> None:
    with pytest.raises(PatternError):
        select(IDS, ["Failover/*"])
    with pytest.raises(PatternError, match="'failover': matches no case"):
        select(IDS, ["failover"])


def test_parse_known_failing() -> None:
    text = "# comment\n\nfailover/*  # the server times out\nstreaming/cut #why\n"
    entries = parse_known_failing(text, "known-failing/go.txt")
    assert [(e.pattern, e.reason, e.where) for e in entries] == [
        ("failover/*", "the server times out", "known-failing/go.txt:3"),
        ("streaming/cut", "why", "known-failing/go.txt:4"),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("failover/x", "needs a reason"),
        ("failover/x #", "needs a reason"),
        ("a b # two patterns", "one pattern"),
        ("*/x#", "needs a reason"),
    ],
)
def test_known_failing_lines_need_a_pattern_and_a_reason(line: str, message: str) -> None:
    with pytest.raises(PatternError, match=message):
        parse_known_failing(line, "f.txt")


def test_unused_entries_are_those_matching_no_case() -> None:
    entries = parse_known_failing("failover/* # a\nnope/* # b\n", "f.txt")
    assert [e.pattern for e in unused(entries, IDS)] == ["nope/*"]


def test_known_for_returns_the_first_matching_entry() -> None:
    entries = parse_known_failing("failover/drop_* # a\nfailover/* # b\n", "f.txt")
    entry = known_for(entries, "failover/drop_get")
    assert entry is not None and entry.reason == "a"
    assert known_for(entries, "basic/json_post") is None
