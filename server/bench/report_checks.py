"""One line of the summary: a figure against its acceptance target (or `info`, no target)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Check:
    name: str
    value: float | None
    shown: str
    target: str
    passed: bool | None  # None: not measured, or informational
    informational: bool = False  # printed for comparison, no target

    @property
    def status(self) -> str:
        if self.informational and self.value is not None:
            return "info"
        if self.passed is None:
            return "NOT MEASURED"
        return "PASS" if self.passed else "FAIL"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "target": self.target,
            "status": self.status,
            "informational": self.informational,
        }


def check(
    name: str,
    value: float | None,
    fmt: str,
    target: str,
    ok: Callable[[float], bool],
) -> Check:
    if value is None:
        return Check(name, None, "n/a", target, None)
    return Check(name, value, fmt.format(value), target, ok(value))


def info(name: str, value: float | None, fmt: str) -> Check:
    shown = "n/a" if value is None else fmt.format(value)
    return Check(name, value, shown, "-", None, informational=True)
