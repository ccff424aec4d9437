"""deploy/: the systemd unit (checked by `systemd-analyze verify`, Debian's systemd package;
fails without it) and the container file (read instruction by instruction: no image is built
here, the base image needs a registry). Both must be shown in docs/deploy.md as they are."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from poolswitch.config import Config

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "poolswitch.service"
CONTAINERFILE = ROOT / "deploy" / "Containerfile"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
DEFAULT_PORT = next(f.default for f in dataclasses.fields(Config) if f.name == "listen_port")


def start_flags() -> set[str]:
    """The long options `poolswitch start --help` lists."""
    done = subprocess.run(
        [sys.executable, "-m", "poolswitch", "start", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return set(re.findall(r"--[a-z][a-z-]+", done.stdout))


def unit_settings() -> dict[str, list[str]]:
    """Every `Name=value` of the unit (a name may repeat), continuation lines joined."""
    settings: dict[str, list[str]] = {}
    text = UNIT.read_text(encoding="utf-8").replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        name, _, value = line.partition("=")
        settings.setdefault(name, []).append(value)
    return settings


def instructions() -> list[tuple[str, str]]:
    """The container file as (INSTRUCTION, arguments), continuation lines joined."""
    text = CONTAINERFILE.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def check_start_command(argv: list[str]) -> None:
    """`poolswitch start ...` with flags that exist, a config file and the default port."""
    assert argv[:2] == ["poolswitch", "start"], argv
    known = start_flags()
    flags = [a for a in argv[2:] if a.startswith("--")]
    assert flags and set(flags) <= known, f"unknown flags {set(flags) - known}"
    assert "--config" in flags
    assert argv[argv.index("--port") + 1] == str(DEFAULT_PORT)
    assert argv[argv.index("--host") + 1] == "0.0.0.0"


def test_unit_is_verified_by_systemd_analyze(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze") or shutil.which(
        "systemd-analyze", path="/usr/sbin:/usr/bin"
    )
    if tool is None:
        pytest.fail(
            "systemd-analyze is missing: install the Debian package systemd (nox -s tests does)",
            pytrace=False,
        )
    # verify checks that ExecStart's program exists: use this environment's own poolswitch
    program = Path(sys.executable).with_name("poolswitch")
    assert program.exists(), program
    text = UNIT.read_text(encoding="utf-8")
    assert "/opt/poolswitch/venv/bin/poolswitch " in text
    copy = tmp_path / "poolswitch.service"
    copy.write_text(text.replace("/opt/poolswitch/venv/bin/poolswitch ", f"{program} "))
    done = subprocess.run(
        [tool, "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # the copy's own lines only (verify also reads the units it names, e.g. network-online)
    complaints = [line for line in done.stderr.splitlines() if str(copy) in line]
    assert done.returncode == 0 and not complaints, done.stdout + done.stderr


def test_unit_reloads_restarts_and_stops_as_documented() -> None:
    s = unit_settings()
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert s["Restart"] == ["on-failure"]
    assert s["RestartPreventExitStatus"] == ["2"]  # a bad config: a restart will not fix it
    assert s["KillSignal"] == ["SIGTERM"] and s["KillMode"] == ["mixed"]
    assert float(s["TimeoutStopSec"][0]) > 30  # the drain takes up to 30 s
    assert s["EnvironmentFile"] == ["/etc/poolswitch/poolswitch.env"]
    assert s["User"] == ["poolswitch"]
    for hardening in ("NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp"):
        assert hardening in s, hardening
    argv = shlex.split(s["ExecStart"][0])
    check_start_command([Path(argv[0]).name, *argv[1:]])


def test_containerfile_runs_poolswitch_unprivileged_with_a_health_check() -> None:
    found = instructions()
    words = [word for word, _ in found]
    assert words[0] == "FROM" and found[0][1] == "python:3.11-slim"
    users = [args for word, args in found if word == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert [args for word, args in found if word == "EXPOSE"] == [str(DEFAULT_PORT)]
    health = [args for word, args in found if word == "HEALTHCHECK"]
    assert len(health) == 1 and f"http://127.0.0.1:{DEFAULT_PORT}/health" in health[0]
    assert "curl" not in health[0] and "urllib.request" in health[0]  # slim has no curl
    assert words.index("USER") < words.index("ENTRYPOINT")
    entrypoint = exec_form(dict(found)["ENTRYPOINT"])
    cmd = exec_form(dict(found)["CMD"])
    check_start_command(entrypoint + cmd)
    assert any(word == "RUN" and "pip install /src/server" in args for word, args in found)


def test_health_check_command_is_valid_python() -> None:
    health = dict(instructions())["HEALTHCHECK"]
    argv = exec_form(health[health.index("CMD") + len("CMD") :].strip())
    assert argv[:2] == ["python", "-c"]
    compile(argv[2], "HEALTHCHECK", "exec")


@pytest.mark.parametrize("path", [UNIT, CONTAINERFILE], ids=lambda p: p.name)
def test_deploy_doc_shows_the_file_as_it_is(path: Path) -> None:
    assert path.read_text(encoding="utf-8") in DEPLOY_DOC.read_text(encoding="utf-8")
