"""upstreamtls.py and the `upstream_ca_file` setting: a PEM bundle that does not load is a
config problem naming the field (never the path), relative paths are the config file's."""

from __future__ import annotations

import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

from poolswitch import upstreamtls
from poolswitch.config import load_config, parse_config
from poolswitch.errors import ConfigError

from conftest import VALUES

BASE: dict[str, Any] = {
    "upstream_base_url": "https://127.0.0.1:1",
    "keys": [{"id": "a", "value": "sk-a"}],
}


def problems(doc: dict[str, Any], base_dir: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(doc, env={}, base_dir=base_dir)
    return list(info.value.problems)


@pytest.fixture
def ca_pem(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


def test_a_ca_file_that_loads_is_kept_and_pools_inherit_it(ca_pem: Path) -> None:
    cfg = parse_config({**BASE, "upstream_ca_file": str(ca_pem)}, env={})
    assert cfg.upstream_ca_file == str(ca_pem)
    assert cfg.pools[0].upstream_ca_file == str(ca_pem)
    pools = {
        "upstream_ca_file": str(ca_pem),
        "pools": [
            {"name": "inside", "upstream_base_url": "https://gw:1", "keys": BASE["keys"]},
            {
                "name": "public",
                "upstream_base_url": "https://api.openai.com",
                "upstream_ca_file": None,
                "keys": [{"id": "b", "value": "sk-b"}],
            },
        ],
    }
    inside, public = parse_config(pools, env={}).pools
    assert inside.upstream_ca_file == str(ca_pem)
    assert public.upstream_ca_file is None  # null in a pool: the system's CAs only
    assert parse_config(BASE, env={}).upstream_ca_file is None


def test_a_relative_path_is_the_config_files(
    ca_pem: Path, tmp_config: Callable[[str], Path]
) -> None:
    path = tmp_config(
        "upstream_ca_file: ca.pem\n"
        "pools:\n"
        "  - {name: one, upstream_base_url: 'https://h:1', keys: [{id: a, value: sk-a}]}\n"
        "  - name: two\n"
        "    upstream_base_url: 'https://h:2'\n"
        "    upstream_ca_file: ./ca.pem\n"
        "    keys: [{id: b, value: sk-b}]\n"
    )
    one, two = load_config(path, env={}).pools
    assert one.upstream_ca_file == str(ca_pem)
    assert Path(two.upstream_ca_file or "").resolve() == ca_pem.resolve()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "upstream_ca_file: cannot read (No such file or directory)"),
        (b"", "upstream_ca_file: not a PEM file of CA certificates (no BEGIN CERTIFICATE block)"),
        (b"\x30\x82\x01\xff\x00", "upstream_ca_file: not a PEM file (binary content)"),
        (
            b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
            "upstream_ca_file: not a PEM file of CA certificates (a certificate does not parse)",
        ),
    ],
)
def test_a_ca_file_that_does_not_load_is_one_problem_naming_the_field(
    tmp_path: Path, content: bytes | None, expected: str
) -> None:
    path = tmp_path / "secret-looking-name.pem"
    if content is not None:
        path.write_bytes(content)
    assert problems({**BASE, "upstream_ca_file": str(path)}) == [expected]
    in_pool = {
        "pools": [
            {
                "name": "p",
                "upstream_base_url": "https://h:1",
                "upstream_ca_file": str(path),
                "keys": [{"id": "a", "value": "sk-a"}],
            }
        ]
    }
    assert problems(in_pool) == ["pools[0]." + expected]
    assert all("secret-looking-name" not in line for line in problems(in_pool))


def test_a_directory_or_a_blank_or_a_number_is_refused(tmp_path: Path) -> None:
    assert problems({**BASE, "upstream_ca_file": str(tmp_path)}) == [
        "upstream_ca_file: cannot read (Is a directory)"
    ]
    for bad in ("  ", 5):
        assert problems({**BASE, "upstream_ca_file": bad}) == [
            "upstream_ca_file: must be a path to a PEM file of CA certificates"
        ]


def test_validate_and_start_exit_2_with_one_line(tmp_config: Callable[[str], Path]) -> None:
    text = (
        "upstream_base_url: https://127.0.0.1:1\n"
        "upstream_ca_file: missing.pem\n"
        f"keys:\n  - {{id: a, value: {VALUES['a']}}}\n"
    )
    for command in ("validate", "start"):
        result = subprocess.run(
            [sys.executable, "-m", "poolswitch", command, "--config", str(tmp_config(text))],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr.splitlines() == [
            "config error: upstream_ca_file: cannot read (No such file or directory)"
        ]


def test_the_client_context_trusts_the_bundle_and_the_system_store(ca_pem: Path) -> None:
    text, fingerprint = upstreamtls.read_bundle(str(ca_pem))
    assert len(fingerprint) == 64
    context = upstreamtls.client_context(text)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    default = ssl.create_default_context()
    assert context.cert_store_stats()["x509_ca"] == default.cert_store_stats()["x509_ca"] + 1
