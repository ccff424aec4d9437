"""`poolswitch keys`: durations and usage checks (the calls themselves: test_e2e_admin.py)."""

from __future__ import annotations

import argparse

import pytest

from poolswitch.cli import parser
from poolswitch.keyscli import describe, duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("10m", 600), ("1h", 3600), ("1h30m", 5400), ("2d", 172800), ("45", 45)],
)
def test_durations(text: str, seconds: float) -> None:
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "10x", "0s", "-5m", "1h 30m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        duration(text)


@pytest.mark.parametrize(
    "argv",
    [
        ["keys", "enable", "a", "--for", "1m"],
        ["keys", "disable", "a", "--counters"],
        ["keys", "reset", "a", "--apply"],
        ["keys", "drain"],
        ["keys", "list", "a"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    args = parser().parse_args([*argv, "--token", "t" * 16])
    assert args.run(args) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_describe_a_timed_disable_and_a_test() -> None:
    key = {"id": "a", "state": "cooling_down", "cooldown_until": 700.0}
    key["reason"] = "disabled_by_operator"
    assert describe(key, 100.0) == "a: cooling_down (returns in 600s: disabled_by_operator)"
    test = {"status": 401, "outcome": "key_invalid", "key": "invalid", "latency_ms": 12.0}
    test["detail"] = "GET /v1/models answered 401"
    line = describe({"id": "b", "state": "available", "test": test}, 0.0)
    assert (
        line == "b: invalid — 401 key_invalid in 12ms (GET /v1/models answered 401); now available"
    )
