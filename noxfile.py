"""Every test, lint and benchmark of PoolSwitch: `nox -l` lists them, `nox` runs the default set.

Sessions install what they need. Tools that are not Python packages (promtool for the metrics
test, nginx and wrk for the benchmark) are installed with apt-get when missing and we are root.
"""

from __future__ import annotations

import os
import shutil

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

SERVER = "./server"
PY_SOURCES = ["server/src", "server/tests", "server/bench", "conformance", "noxfile.py"]


def ensure_apt(session: nox.Session, command: str, package: str) -> None:
    """Install a Debian package when `command` is not on PATH (needs root, as on CI)."""
    if shutil.which(command):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        session.error(f"{command} is missing: install the Debian package {package!r}")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run("apt-get", "update", "-q", external=True, env=env)
    session.run(
        "apt-get", "install", "-y", "-q", "--no-install-recommends", package, external=True, env=env
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (check + format) and mypy --strict over the Python code."""
    session.install("-e", f"{SERVER}[test]", "ruff", "mypy", "types-PyYAML")
    session.run("ruff", "check", *PY_SOURCES)
    session.run("ruff", "format", "--check", *PY_SOURCES)
    session.run(
        "mypy",
        "--strict",
        "--config-file",
        "server/pyproject.toml",
        "server/src",
        "conformance/fake_upstream.py",
    )
    with session.chdir("server"):
        session.run("mypy", "--strict", "tests")


@nox.session
def tests(session: nox.Session) -> None:
    """The server's tests: unit tests and end-to-end tests over loopback HTTP."""
    ensure_apt(session, "promtool", "prometheus")
    session.install("-e", f"{SERVER}[test]")
    session.run(
        "pytest",
        "-c",
        "server/pyproject.toml",
        "--rootdir",
        "server",
        "server/tests",
        "conformance/test_fake_upstream.py",
        *session.posargs,
    )


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Throughput, latency, SSE delay and memory against nginx references (not in `nox`)."""
    ensure_apt(session, "nginx", "nginx")
    ensure_apt(session, "wrk", "wrk")
    session.install(SERVER)
    session.run("python", "server/bench/run.py", *session.posargs)
