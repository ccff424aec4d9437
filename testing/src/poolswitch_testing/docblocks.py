"""The code blocks of a Markdown page and what the checked-docs runner is told to do with each.

A directive is an HTML comment on the line just above a fence (invisible on the rendered page):

    <!-- docs: not run: REASON -->     shown, not executed; the reason is printed in CI
    <!-- docs: serves -->              an sh block whose last command serves until stopped
    <!-- docs: sample GET /PATH -->    a JSON sample: every key in it is in the live answer
    <!-- docs: copy of FILE -->        the block is a verbatim excerpt of FILE (repository path)
    <!-- docs: config fragment -->     a YAML part of a config, checked on a minimal config

Pure: text in, blocks out (docrun.py runs them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FENCE = re.compile(r"^(?P<indent> *)(?P<ticks>`{3,})(?P<lang>[\w+-]*)\s*$")
DIRECTIVE = re.compile(r"^\s*<!--\s*docs:\s*(?P<body>.*?)\s*-->\s*$")
KINDS = ("not run", "serves", "sample", "copy of", "config fragment")


class DocError(ValueError):
    """A page whose blocks cannot be read: an unclosed fence or a directive not understood."""


@dataclass(frozen=True)
class Directive:
    kind: str  # one of KINDS
    arg: str = ""  # the reason, the path sampled ("GET /status") or the file copied


@dataclass(frozen=True)
class Block:
    path: str  # the page, as given
    line: int  # 1-based line of the opening fence
    lang: str  # "" for an untagged fence
    text: str  # the lines between the fences, indentation of the fence removed
    directive: Directive | None

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def parse_directive(body: str) -> Directive:
    for kind in KINDS:
        if body == kind or body.startswith(kind + ":") or body.startswith(kind + " "):
            arg = body[len(kind) :].lstrip(":").strip()
            if kind in ("not run", "sample", "copy of") and not arg:
                wanted = "a reason" if kind == "not run" else "an argument"
                raise DocError(f"'docs: {kind}' needs {wanted}")
            if kind in ("serves", "config fragment") and arg:
                raise DocError(f"'docs: {kind}' takes no argument, got {arg!r}")
            return Directive(kind, arg)
    raise DocError(f"unknown directive 'docs: {body}' (known: {', '.join(KINDS)})")


def blocks(path: str, text: str) -> list[Block]:
    """Every fenced block of the page, in order, with the directive just above it if any."""
    lines = text.split("\n")
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            if DIRECTIVE.match(lines[i]) and not (i + 1 < len(lines) and FENCE.match(lines[i + 1])):
                raise DocError(f"{path}:{i + 1}: a docs directive must be just above a fence")
            i += 1
            continue
        indent, ticks = len(opening["indent"]), opening["ticks"]
        close = next(
            (j for j in range(i + 1, len(lines)) if lines[j].strip() == ticks),
            None,
        )
        if close is None:
            raise DocError(f"{path}:{i + 1}: the fence opened here is never closed")
        above = DIRECTIVE.match(lines[i - 1]) if i > 0 else None
        try:
            directive = parse_directive(above["body"]) if above else None
        except DocError as exc:
            raise DocError(f"{path}:{i}: {exc}") from None
        body = "\n".join(_dedent(line, indent) for line in lines[i + 1 : close])
        found.append(Block(path, i + 1, opening["lang"].lower(), body + "\n", directive))
        i = close + 1
    return found


def _dedent(line: str, indent: int) -> str:
    """The line without the fence's indentation (a list item's block), never more than it."""
    kept = len(line) - len(line.lstrip(" "))
    return line[min(kept, indent) :]
