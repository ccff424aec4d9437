"""The config's JSON Schema and the docs generated from it (schemadoc.py): the committed
files must be what the schema gives, so CI fails when someone changes a field and not them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from poolswitch import schemadoc
from poolswitch.config import TOP_LEVEL, load_config, parse_config

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "poolswitch.example.yaml"


@pytest.mark.parametrize(
    "name", [schemadoc.SCHEMA_FILE, schemadoc.REFERENCE_FILE, schemadoc.README]
)
def test_committed_docs_match_the_schema(name: str) -> None:
    expected = schemadoc.outputs(ROOT)[ROOT / name]
    assert (ROOT / name).read_text(encoding="utf-8") == expected, (
        f"{name} is out of date: run `python -m poolswitch.schemadoc --write`"
    )


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text(f"x\n{schemadoc.BEGIN}\nold\n{schemadoc.END}\ny\n")
    assert schemadoc.main(["--check", "--root", str(tmp_path)]) == 1
    assert schemadoc.main(["--write", "--root", str(tmp_path)]) == 0
    assert schemadoc.main(["--check", "--root", str(tmp_path)]) == 0
    readme = (tmp_path / "README.md").read_text()
    assert readme.startswith("x\n") and readme.endswith("y\n") and "`listen_port`" in readme


def _properties(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = [("", schema)] + [(f"{n}.", d) for n, d in schema["$defs"].items()]
    return [(p + k, v) for p, d in found for k, v in d.get("properties", {}).items()]


def test_every_field_has_a_description_and_defaults_are_shown() -> None:
    schema = schemadoc.json_schema()
    for name, prop in _properties(schema):
        assert prop.get("description"), name
    top = schema["properties"]
    assert set(top) == set(TOP_LEVEL)
    assert (top["listen_port"]["default"], top["strategy"]["default"]) == (8080, "round_robin")
    assert top["listen_port"]["anyOf"][0] == {"type": "integer"}  # or a ${ENV} reference
    assert (top["listen_port"]["minimum"], top["listen_port"]["maximum"]) == (1, 65535)
    assert schema["$defs"]["PoolConfig"]["required"] == ["name", "keys"]


def test_schema_never_holds_a_default_secret() -> None:
    text = schemadoc.schema_text()
    assert "sk-" not in text


# ---- poolswitch.example.yaml: valid, checked by editors, every setting with its default ----


def test_example_names_the_schema_for_editors() -> None:
    first = EXAMPLE.read_text(encoding="utf-8").splitlines()[0]
    assert first == f"# yaml-language-server: $schema={schemadoc.SCHEMA_FILE}"
    assert (ROOT / schemadoc.SCHEMA_FILE).exists()


def test_example_is_valid_and_shows_each_setting_with_its_default() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    cfg = load_config(EXAMPLE, env={})
    assert cfg.upstream_base_url and cfg.keys
    written = yaml.safe_load(text)
    props = schemadoc.json_schema()["properties"]
    for name, value in written.items():
        if name in ("upstream_base_url", "keys"):
            continue
        default = props[name]["default"]
        assert value == default, f"{name}: the example shows {value!r}, the default is {default!r}"
    mentioned = set(re.findall(r"^#?\s*([a-z_]+):", text, re.MULTILINE))
    assert set(TOP_LEVEL) <= mentioned, set(TOP_LEVEL) - mentioned


def _commented(lines: list[str], start: str) -> Any:
    """The YAML of a commented-out example block that begins with `start`."""
    i = lines.index(start)
    block = [lines[i][2:]]
    while i + 1 < len(lines) and lines[i + 1].startswith("#   "):
        i += 1
        block.append(lines[i][2:])
    return yaml.safe_load("\n".join(block))


def test_example_pools_and_caller_limits_are_valid() -> None:
    """The commented `pools:` and `callers:` examples, uncommented, load."""
    text = EXAMPLE.read_text(encoding="utf-8")
    lines = text.splitlines()
    env = {n: f"sk-{n.lower()}-0123456789abcdef" for n in re.findall(r"\$\{(\w+)\}", text)}
    pools = parse_config(_commented(lines, "# pools:"), env=env).pools
    assert [(p.name, p.route, len(p.keys)) for p in pools] == [
        ("openai", "/openai", 1),
        ("anthropic", "/anthropic", 1),
    ]
    seed = yaml.safe_load(text)
    callers = parse_config({**seed, **_commented(lines, "# callers:")}, env=env).callers
    assert [(c.id, c.pools, c.rpm, c.max_concurrency) for c in callers] == [
        ("search", None, None, None),
        ("billing", ("default",), 600, 8),
    ]


def test_example_passes_the_json_schema_as_an_editor_checks_it() -> None:
    """With the validator editors use (jsonschema, a test dependency)."""
    validator = jsonschema.Draft202012Validator(schemadoc.json_schema())
    text = EXAMPLE.read_text(encoding="utf-8")
    seed = yaml.safe_load(text)
    lines = text.splitlines()
    for doc in (seed, _commented(lines, "# pools:"), {**seed, **_commented(lines, "# callers:")}):
        assert [e.message for e in validator.iter_errors(doc)] == []
    bad = {**seed, "listen_port": 0, "colour": 1, "keys": [{"id": "a"}]}
    assert len(list(validator.iter_errors(bad))) == 3
    assert not list(validator.iter_errors({**seed, "listen_port": "${PORT:-8080}"}))
