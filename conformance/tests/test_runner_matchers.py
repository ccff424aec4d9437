"""runner.matchers: JSON subset matching and the `$` matchers."""

from __future__ import annotations

from typing import Any

import pytest

from poolswitch_testing.conformance.matchers import MISSING, match, problems, short

NOW = 1_800_000_000.0


def ok(expected: Any, seen: Any) -> bool:
    return match(expected, seen, "v", now=NOW) == []


def test_mappings_match_as_subsets() -> None:
    assert ok({"a": 1}, {"a": 1, "b": 2})
    assert ok({"a": {"b": [1, 2]}}, {"a": {"b": [1, 2], "c": 3}})
    assert not ok({"a": 1, "b": 2}, {"a": 1})
    assert match({"a": {"b": 1}}, {"a": {"b": 2}}, "json") == ["json.a.b: expected 1, seen 2"]


def test_missing_field_is_reported_with_its_path() -> None:
    assert match({"error": {"code": "x"}}, {"error": {}}, "json", now=NOW) == [
        'json.error.code: missing (expected "x")'
    ]


def test_lists_match_element_by_element_with_the_same_length() -> None:
    assert ok([{"id": "a"}, {"id": "b"}], [{"id": "a", "n": 1}, {"id": "b"}])
    assert not ok([1, 2], [1, 2, 3])
    assert not ok([1, 2], [2, 1])
    assert "expected 2 item(s), seen 1" in match([1, 2], [1], "v")[0]


def test_booleans_never_equal_numbers() -> None:
    assert not ok(True, 1)
    assert not ok(0, False)
    assert ok(True, True)
    assert ok(1, 1.0)


def test_null_and_missing_differ() -> None:
    assert ok({"a": None}, {"a": None})
    assert not ok({"a": None}, {})
    assert not ok({"a": None}, {"a": 0})


@pytest.mark.parametrize(
    ("matcher", "good", "bad"),
    [
        ({"$re": "^ab+c$"}, "abbc", "abd"),
        ({"$re": "x"}, "axb", 5),
        ({"$range": [1, 2]}, 1.5, 2.5),
        ({"$range": [1, 2]}, 2, True),
        ({"$present": True}, None, MISSING),
        ({"$contains": "lo w"}, "hello world", "hello"),
        ({"$contains": "b"}, ["a", "b"], ["a"]),
        ({"$one_of": ["a", "b"]}, "b", "c"),
        ({"$from_now": [-1, 5]}, NOW + 4, NOW + 6),
        ({"$all": [{"$re": "a"}, {"$re": "b"}]}, "ab", "a"),
    ],
)
def test_matchers(matcher: dict[str, Any], good: Any, bad: Any) -> None:
    assert ok(matcher, good)
    assert not ok(matcher, bad)


def test_absent_inside_a_mapping() -> None:
    assert ok({"retry-after": {"$absent": True}}, {"other": "1"})
    assert match({"retry-after": {"$absent": True}}, {"retry-after": "3"}, "headers") == [
        'headers.retry-after: expected no value, seen "3"'
    ]


def test_from_now_reports_the_offset() -> None:
    [line] = match({"$from_now": [10, 20]}, NOW + 2.5, "cooldown_until", now=NOW)
    assert "now+2.50s" in line


def test_problems_find_bad_matchers() -> None:
    assert problems({"a": {"$regex": "x"}}, "e") == [
        "e.a: unknown matcher $regex (one of $absent, $all, $contains, $from_now, $one_of, "
        "$present, $range, $re)"
    ]
    assert problems({"$re": "("}, "e")[0].startswith("e: $re: invalid pattern")
    assert problems({"$range": [3, 1]}, "e") == ["e: $range needs [LO, HI] with LO <= HI"]
    assert problems({"$present": 1}, "e") == ["e: $present takes true"]
    assert problems({"a": 1, "$re": "x"}, "e") == [
        "e.$re: a matcher must be the only key of its mapping"
    ]
    assert problems({"$all": [{"$nope": 1}]}, "e")[0].startswith("e.$all[0]: unknown matcher")
    assert problems([{"x": {"$re": "ok"}}, 3], "e") == []


def test_short_clips_long_values() -> None:
    assert short("x" * 500).endswith("...")
    assert short(MISSING) == "<missing>"
    assert short({"b": 1, "a": "é"}) == '{"a": "é", "b": 1}'
