"""Which cases run (`--run` / `--skip` globs) and which may fail (`known-failing/<sdk>.txt`).

A case's id is `<file stem>/<case name>` (`failover/rate_limit_moves_to_next_key`); patterns are
shell globs over it (`failover/*`, `*/stream_*`), matched case-sensitively.

A known-failing list has one entry per line, `pattern  # reason`; blank lines and lines that start
with `#` are comments. The reason is required. A listed case that fails is accepted; a listed case
that passes fails the run (take it off the list), and so does a pattern that matches no case.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["KnownFailing", "PatternError", "known_for", "parse_known_failing", "select", "unused"]


class PatternError(ValueError):
    """A pattern or a known-failing list is invalid; `problems` has one line each."""

    def __init__(self, found: Sequence[str]) -> None:
        self.problems = tuple(found)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class KnownFailing:
    pattern: str
    reason: str
    where: str  # "known-failing/go.txt:3"


def matches(pattern: str, case_id: str) -> bool:
    return fnmatch.fnmatchcase(case_id, pattern)


def select(case_ids: Sequence[str], run: Sequence[str], skip: Sequence[str] = ()) -> list[str]:
    """The ids matched by any `run` pattern (all when none is given) and by no `skip` pattern.
    A `run` pattern that matches no case is an error (a typo would otherwise run nothing)."""
    idle = [p for p in run if not any(matches(p, case_id) for case_id in case_ids)]
    if idle:
        raise PatternError([f"--run {p!r}: matches no case" for p in idle])
    chosen = [c for c in case_ids if not run or any(matches(p, c) for p in run)]
    return [c for c in chosen if not any(matches(p, c) for p in skip)]


def parse_known_failing(text: str, source: str) -> list[KnownFailing]:
    """The entries of a known-failing list; `source` names it in messages."""
    entries: list[KnownFailing] = []
    found: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pattern, hash_, reason = stripped.partition("#")
        pattern, reason = pattern.strip(), reason.strip()
        where = f"{source}:{number}"
        if not hash_ or not reason:
            found.append(f"{where}: {pattern!r} needs a reason: `pattern  # why it fails`")
        elif not pattern or any(c.isspace() for c in pattern):
            found.append(f"{where}: expected one pattern before the '#', got {pattern!r}")
        else:
            entries.append(KnownFailing(pattern, reason, where))
    if found:
        raise PatternError(found)
    return entries


def unused(entries: Iterable[KnownFailing], case_ids: Sequence[str]) -> list[KnownFailing]:
    """Entries whose pattern matches none of `case_ids` (every loaded case, not only the
    selected ones, so that narrowing a run with --run does not trip this)."""
    return [e for e in entries if not any(matches(e.pattern, c) for c in case_ids)]


def known_for(entries: Iterable[KnownFailing], case_id: str) -> KnownFailing | None:
    """The first entry that lists `case_id`, if any."""
    return next((e for e in entries if matches(e.pattern, case_id)), None)
