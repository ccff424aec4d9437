"""Every test, lint and benchmark of PoolSwitch: `nox -l` lists them, `nox` runs the default set.

Sessions install what they need. Tools that are not Python packages (promtool for the metrics
test, redis-server for the Redis backend's tests, nginx for the multi-replica example and the
benchmark, wrk for the benchmark) are installed with apt-get when missing and we are root; the
Redis tests fail, never skip, without it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil

import nox

nox.options.sessions = [
    "lint",
    "tests",
    "fuzz",
    "sdk_python",
    "demo",
    "docs",
    "sdk_node",
    "sdk_go",
    "conformance",
    "official_sdks",
]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

SERVER = "./server"
TESTING = "./testing"  # the test-support package (poolswitch_testing) every Python suite uses
CI_FUZZ_SEED = "20261201"
PY_SOURCES = [
    "server/src",
    "server/tests",
    "server/bench",
    "conformance",
    "testing",
    "sdk-python",
    "examples/python",
    "examples/multi-replica",
    "noxfile.py",
]


def ensure_apt(session: nox.Session, command: str, package: str) -> None:
    """Install a Debian package when `command` is not on PATH (needs root, as on CI)."""
    if shutil.which(command) or shutil.which(command, path="/usr/sbin:/usr/bin"):
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
    session.install(
        "-e",
        f"{SERVER}[test]",
        "-e",
        "./sdk-python",
        "-e",
        TESTING,
        "ruff==0.17.6",
        "mypy==2.4.1",
        "types-PyYAML",
        "types-jsonschema",
    )
    session.run("ruff", "check", *PY_SOURCES)
    session.run("ruff", "format", "--check", *PY_SOURCES)
    session.run(
        "mypy",
        "--strict",
        "--config-file",
        "server/pyproject.toml",
        "server/src",
        "server/bench",
        "testing/src",
        "testing/tests",
        "conformance/fake_upstream.py",
        "conformance/run_cases.py",
        "conformance/tests",
        "conformance/clients/raw",
        "conformance/clients/python",
        "conformance/official",
        "conformance/vectors",
        "examples/multi-replica",
    )
    with session.chdir("server"):
        session.run("mypy", "--strict", "tests")


@nox.session
def tests(session: nox.Session) -> None:
    """The server's tests: unit tests and end-to-end tests over loopback HTTP."""
    ensure_apt(session, "promtool", "prometheus")
    ensure_apt(session, "redis-server", "redis-server")
    ensure_apt(session, "openssl", "openssl")  # a TLS redis-server's certificate
    ensure_apt(session, "nginx", "nginx")  # the load balancer of examples/multi-replica
    ensure_apt(session, "chromium", "chromium")  # the dashboard's browser test
    ensure_apt(session, "chromedriver", "chromium-driver")
    ensure_apt(session, "tmux", "tmux")  # the demo's live view under a terminal (test_demo.py)
    ensure_apt(session, "curl", "curl")  # the demo's `curl` line, run as printed (test_demo.py)
    ensure_apt(session, "systemd-analyze", "systemd")  # verifies deploy/poolswitch.service
    session.install("-e", f"{SERVER}[test]", "-e", "./sdk-python", "-e", TESTING)
    session.run(
        "pytest",
        "-c",
        "server/pyproject.toml",
        "--rootdir",
        "server",
        "server/tests",
        "testing/tests",
        "conformance/tests",
        *session.posargs,
    )


@nox.session
def fuzz(session: nox.Session) -> None:
    """Hypothesis properties (config, classifier, reset parsers) and a raw-socket fuzz of a live
    proxy. Short by default (about a minute); `nox -s fuzz -- --long` (or POOLSWITCH_FUZZ_LONG=1)
    for the long run. Prints its seed; POOLSWITCH_FUZZ_SEED=N replays a run."""
    ensure_apt(session, "redis-server", "redis-server")  # the live-proxy fuzz is end to end
    session.install("-e", f"{SERVER}[test]", "-e", TESTING)
    args = list(session.posargs)
    # A fresh seed each run explores; CI runs a fixed one, so that a landing is reproducible
    # (a run elsewhere that finds something prints the seed to replay it with).
    seed = os.environ.get("POOLSWITCH_FUZZ_SEED") or (
        CI_FUZZ_SEED if os.environ.get("CI") else str(secrets.randbits(32))
    )
    env = {"POOLSWITCH_FUZZ_SEED": seed}
    if "--long" in args:
        args.remove("--long")
        env["POOLSWITCH_FUZZ_LONG"] = "1"
    long = env.get("POOLSWITCH_FUZZ_LONG", os.environ.get("POOLSWITCH_FUZZ_LONG", ""))
    session.log(
        f"fuzz seed {env['POOLSWITCH_FUZZ_SEED']} ({'long' if long not in ('', '0') else 'short'}"
        f" run); replay with POOLSWITCH_FUZZ_SEED={env['POOLSWITCH_FUZZ_SEED']}"
    )
    session.run(
        "pytest",
        "-c",
        "server/pyproject.toml",
        "--rootdir",
        "server",
        "-m",
        "fuzz",
        "server/tests/fuzz",
        *args,
        env=env,
    )


def venv_python(session: nox.Session) -> str:
    """The session's interpreter, which has the server and the test-support package installed:
    SDK tests start the real proxy (`$POOLSWITCH_PYTHON -m poolswitch start`) and the fake
    upstream (`-m poolswitch_testing.fake_upstream`) with it."""
    return os.path.join(session.bin, "python")


@nox.session
def sdk_python(session: nox.Session) -> None:
    """The Python SDK: mypy --strict and its unit tests (httpx MockTransport; what crosses the
    proxy is proven by the conformance cases); then the embedded client from a fresh venv."""
    session.install("-e", "./sdk-python[test]", "mypy==2.4.1")
    session.run(
        "mypy",
        "--strict",
        "--config-file",
        "sdk-python/pyproject.toml",
        "sdk-python/src",
        "sdk-python/tests",
    )
    session.run(
        "pytest",
        "-c",
        "sdk-python/pyproject.toml",
        "--rootdir",
        "sdk-python",
        "sdk-python/tests",
        *session.posargs,
    )
    # The embedded client as a user installs it: a fresh venv, not editable, then the example
    # fails over from a spent key against the fake upstream (it prints the key that answered).
    fresh = os.path.join(session.create_tmp(), "fresh-embedded")
    session.run("python", "-m", "venv", "--clear", fresh)
    bin_dir = os.path.join(fresh, "bin")
    session.run(
        os.path.join(bin_dir, "pip"),
        "install",
        "-q",
        "./sdk-python",
        "./server[embedded]",
        TESTING,
        external=True,
    )
    out = session.run(
        os.path.join(bin_dir, "python"), "examples/python/embedded.py", external=True, silent=True
    )
    if "answered by key backup after 2 attempt(s)" not in str(out):
        session.error(f"examples/python/embedded.py did not fail over: {out}")


@nox.session
def demo(session: nox.Session) -> None:
    """`pip install ./server && poolswitch demo` as a newcomer runs it: a fresh venv, not
    editable, offline; the summary must show failover for quota, rate limit and invalid key
    within 10 s and no error seen by the caller."""
    fresh = os.path.join(session.create_tmp(), "fresh-demo")
    session.run("python", "-m", "venv", "--clear", fresh)
    bin_dir = os.path.join(fresh, "bin")
    session.run(os.path.join(bin_dir, "pip"), "install", "-q", "./server", external=True)
    out = session.run(
        os.path.join(bin_dir, "poolswitch"),
        "demo",
        "--json",
        "--exit-after-summary",
        external=True,
        silent=True,
    )
    summary = json.loads(str(out).strip().splitlines()[-1])
    causes = summary["failovers_by_cause"]
    if (
        summary["caller_errors"] != 0
        or any(causes.get(c, 0) < 1 for c in ("quota_exhausted", "rate_limited", "key_invalid"))
        or summary["first_failover_seconds"] >= 10
    ):
        session.error(f"poolswitch demo did not show failover as promised: {summary}")
    session.log(
        f"demo: {summary['requests']} requests, {summary['failovers']} failovers {causes}, "
        f"first after {summary['first_failover_seconds']} s, 0 caller errors"
    )


@nox.session
def docs(session: nox.Session) -> None:
    """Every code block of README.md and docs/ run as a reader would (testing's docrun.py): the
    shell lines, the official-SDK snippets in Python and Node, the configs through `poolswitch
    validate`; `nox -s docs -- docs/quickstart.md` runs one page."""
    ensure_apt(session, "redis-server", "redis-server")  # $REDIS_URL for the Redis configs
    ensure_apt(session, "node", "nodejs")
    ensure_apt(session, "npm", "npm")
    ensure_apt(session, "curl", "curl")
    # the server as the README installs it (not editable); the pages' official SDKs
    session.install(f"{SERVER}[test]", "-e", "./sdk-python", "-e", TESTING, "mistralai>=3.7")
    with session.chdir("conformance/official/node"):  # openai and @anthropic-ai/sdk for node
        session.run("npm", "ci", "--no-audit", "--no-fund", external=True)
    with session.chdir("sdk-node"):  # poolswitch-node, for the embedded-mode snippet
        session.run("npm", "ci", "--no-audit", "--no-fund", external=True)
        session.run("npm", "run", "build", external=True)
    session.run("python", "-m", "poolswitch_testing.docrun", *session.posargs)


@nox.session
def sdk_node(session: nox.Session) -> None:
    """The Node SDK: npm ci, build, node:test unit tests (an injected fetch, local servers), and
    the packed tarball running the examples against the real proxy and the fake upstream."""
    ensure_apt(session, "node", "nodejs")
    ensure_apt(session, "npm", "npm")
    session.install("-e", SERVER, "-e", TESTING)
    env = {"POOLSWITCH_PYTHON": venv_python(session)}
    with session.chdir("sdk-node"):
        session.run("npm", "ci", "--no-audit", "--no-fund", external=True)
        session.run("npm", "run", "build", external=True)
        session.run("npm", "test", external=True, env=env)


@nox.session
def sdk_go(session: nox.Session) -> None:
    """The Go SDK: gofmt, go vet and go test (httptest servers; what crosses the proxy is proven
    by the conformance cases)."""
    ensure_apt(session, "go", "golang-go")
    with session.chdir("sdk-go"):
        unformatted = session.run("gofmt", "-l", ".", external=True, silent=True)
        if unformatted and str(unformatted).strip():
            session.error(f"gofmt would change: {unformatted}")
        session.run("go", "vet", "./...", external=True)
        session.run("go", "test", "-count=1", "./...", external=True)
    with session.chdir("examples/go"):
        session.run("go", "vet", "./...", external=True)


@nox.session
@nox.parametrize("sdk", ["raw", "python", "node", "go", "embedded-node", "embedded-python"])
def conformance(session: nox.Session, sdk: str) -> None:
    """The conformance cases through one client (raw HTTP or an SDK) against the real proxy, and
    through the embedded clients (the pool in the client, no proxy; cases tagged `proxy` left
    out): `nox -s conformance` runs all six; `-- --run 'failover/*'` narrows
    (conformance/README.md)."""
    ensure_apt(session, "redis-server", "redis-server")  # cases with proxies sharing one Redis
    session.install("-e", SERVER, "-e", "./sdk-python", "-e", TESTING)
    if sdk in ("node", "embedded-node"):
        ensure_apt(session, "node", "nodejs")
        ensure_apt(session, "npm", "npm")
        with session.chdir("sdk-node"):
            session.run("npm", "ci", "--no-audit", "--no-fund", external=True)
            session.run("npm", "run", "build", external=True)
    if sdk == "go":
        ensure_apt(session, "go", "golang-go")
        with session.chdir("conformance/clients/go"):
            unformatted = session.run("gofmt", "-l", ".", external=True, silent=True)
            if unformatted and str(unformatted).strip():
                session.error(f"gofmt would change: {unformatted}")
            session.run("go", "vet", "./...", external=True)
    session.run("python", "conformance/run_cases.py", "--sdk", sdk, *session.posargs)


@nox.session
def official_sdks(session: nox.Session) -> None:
    """The official Node and Go SDKs (npm `openai`, `@anthropic-ai/sdk`, openai-go) with their
    default retries against the real proxy on an exhausted pool (conformance/official/); the
    official Python SDKs run in `tests` (server/tests/test_official_sdks.py)."""
    ensure_apt(session, "node", "nodejs")
    ensure_apt(session, "npm", "npm")
    ensure_apt(session, "go", "golang-go")
    session.install("-e", f"{SERVER}[test]", "-e", TESTING)
    with session.chdir("conformance/official/node"):
        session.run("npm", "ci", "--no-audit", "--no-fund", external=True)
    with session.chdir("conformance/official/go"):
        unformatted = session.run("gofmt", "-l", ".", external=True, silent=True)
        if unformatted and str(unformatted).strip():
            session.error(f"gofmt would change: {unformatted}")
        session.run("go", "vet", "./...", external=True)
    session.run(
        "pytest",
        "-c",
        "server/pyproject.toml",
        "--rootdir",
        "server",
        "conformance/official",
        *session.posargs,
    )


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Throughput, latency, SSE delay and memory against nginx references, Redis vs memory,
    --workers 2 vs 1, the propagation delay between replicas, an HTTPS upstream and 10,000
    open streams (not in `nox`). Takes about 25 min; `nox -s bench -- --only
    redis,workers,propagation` runs just those, `-- --profile` adds py-spy's top frames of the
    c=16 run (py-spy needs ptrace: root, as on CI)."""
    ensure_apt(session, "nginx", "nginx")
    ensure_apt(session, "wrk", "wrk")
    ensure_apt(session, "redis-server", "redis-server")
    # poolswitch_testing starts redis-server; trustme makes the HTTPS upstream's certificate
    session.install("-e", SERVER, "-e", TESTING, "trustme", "py-spy")
    session.run("python", "server/bench/run.py", *session.posargs)
