"""The checked-docs runner's pure parts: reading blocks and directives, rewriting a block for this
machine, comparing a JSON sample with a live answer. `nox -s docs` runs the pages themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from poolswitch_testing.docblocks import Block, Directive, DocError, blocks, parse_directive
from poolswitch_testing.docrun import Page, missing_keys, rewrite


def test_blocks_with_their_language_line_and_directive() -> None:
    page = "\n".join(
        [
            "# Title",
            "```sh",
            "echo one",
            "```",
            "<!-- docs: not run: needs a cluster -->",
            "```yaml",
            "kind: Deployment",
            "```",
            "1. a step",
            "   ```python",
            "   print('indented')",
            "       # kept relative",
            "   ```",
            "```",
            "untagged",
            "```",
        ]
    )
    found = blocks("p.md", page)
    assert [(b.line, b.lang, b.text) for b in found] == [
        (2, "sh", "echo one\n"),
        (6, "yaml", "kind: Deployment\n"),
        (10, "python", "print('indented')\n    # kept relative\n"),
        (14, "", "untagged\n"),
    ]
    assert found[0].directive is None
    assert found[1].directive == Directive("not run", "needs a cluster")
    assert found[1].where == "p.md:6"


@pytest.mark.parametrize(
    ("body", "directive"),
    [
        ("not run: a diagram", Directive("not run", "a diagram")),
        ("serves", Directive("serves")),
        ("sample GET /status", Directive("sample", "GET /status")),
        ("copy of deploy/poolswitch.service", Directive("copy of", "deploy/poolswitch.service")),
        ("config fragment", Directive("config fragment")),
    ],
)
def test_directives(body: str, directive: Directive) -> None:
    assert parse_directive(body) == directive


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not run", "needs a reason"),
        ("not run:", "needs a reason"),
        ("sample", "needs an argument"),
        ("serves now", "takes no argument"),
        ("skip", "unknown directive 'docs: skip'"),
    ],
)
def test_bad_directives(body: str, message: str) -> None:
    with pytest.raises(DocError, match=message):
        parse_directive(body)


@pytest.mark.parametrize(
    ("page", "message"),
    [
        ("```sh\necho never closed\n", "p.md:1: the fence opened here is never closed"),
        ("<!-- docs: serves -->\n\n```sh\nx\n```\n", "p.md:1: a docs directive must be just above"),
        ("<!-- docs: later -->\n```sh\nx\n```\n", "p.md:1: unknown directive"),
    ],
)
def test_pages_that_cannot_be_read(page: str, message: str) -> None:
    with pytest.raises(DocError, match=message):
        blocks("p.md", page)


PAGE = Page(Path("/nonexistent"), "http://127.0.0.1:9000", 8500)


@pytest.mark.parametrize(
    ("text", "ran"),
    [
        ("curl http://127.0.0.1:8080/health", "curl http://127.0.0.1:8500/health"),
        ("curl localhost:8080/v1", "curl 127.0.0.1:8500/v1"),
        ("curl 127.0.0.1:80800/x", "curl 127.0.0.1:80800/x"),
        (
            "poolswitch start --config f.yaml   # then http://127.0.0.1:8080/dashboard",
            "poolswitch start --port 8600 --config f.yaml   # then http://127.0.0.1:8500/dashboard",
        ),
        ("poolswitch demo --no-traffic --port 8080", "poolswitch demo --no-traffic --port 8600"),
        ("poolswitch start --port 9999", "poolswitch start --port 9999"),
        ("poolswitch status", "poolswitch status"),
        (
            "upstream_base_url: https://api.anthropic.com",
            "upstream_base_url: http://127.0.0.1:9000",
        ),
        (
            'OpenAI(base_url="https://api.openai.com/v1")',
            'OpenAI(base_url="http://127.0.0.1:9000/v1")',
        ),
    ],
)
def test_rewrite_for_this_machine(text: str, ran: str) -> None:
    assert rewrite(text, PAGE, 8500, 8600) == ran


LIVE: dict[str, Any] = {
    "storage": "memory",
    "storage_health": {"status": "ok", "reason": None},
    "pools": [{"name": "default", "keys": [{"id": "a", "state": "available"}]}],
}


@pytest.mark.parametrize(
    ("sample", "missing"),
    [
        ({"storage": "sqlite"}, []),  # values may differ; keys may not
        ({"storage_health": {"status": "ok"}}, []),
        ({"pools": [{"keys": [{"id": "b", "state": "disabled"}]}]}, []),
        ({"pools": []}, []),  # an empty list says nothing about its items
        ({"store": "memory"}, ["store"]),
        ({"storage_health": {"since": None}}, ["storage_health.since"]),
        ({"pools": [{"keys": [{"cooldown": 1}]}]}, ["pools[0].keys[0].cooldown"]),
        ({"storage": {"backend": "memory"}}, ["storage"]),  # an object where the live has a value
    ],
)
def test_a_sample_is_checked_by_its_keys(sample: dict[str, Any], missing: list[str]) -> None:
    assert sorted(missing_keys(sample, LIVE)) == missing


def test_a_block_knows_where_it_is() -> None:
    block = Block("docs/x.md", 12, "sh", "true\n", None)
    assert block.where == "docs/x.md:12"
