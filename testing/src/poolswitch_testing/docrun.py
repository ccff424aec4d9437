"""The checked docs: run every code block of the README and docs/ (`nox -s docs`).

    python -m poolswitch_testing.docrun [PAGE.md ...]     (default: README.md and docs/**/*.md)

Each page gets a scratch directory holding the repository's top-level entries (so `./server`
and `poolswitch.example.yaml` resolve) and runs its blocks in order, as a reader would:

- `sh`: run by bash (`set -euo pipefail`), exit 0 wanted. A `<!-- docs: serves -->` block's
  last command is left serving; once its `/health` answers it is the page's proxy for the blocks
  after it, and it is stopped at the end of the page.
- `python`, `js`: run by this Python or by node (`.mjs`, or `.cjs` when it uses `require` and
  no `import`), with the official SDKs installed by the session.
- `yaml`: a config, checked by `poolswitch validate`; one whose first line is `# NAME.yaml` is
  written into the scratch directory for the blocks after it; `<!-- docs: config fragment -->`
  is checked on top of a minimal config (the keys `primary` and `backup`).
- `json`: parsed (a `"key": value` fragment inside braces); `<!-- docs: sample GET /PATH -->`
  also wants every key of the sample in the page's proxy's live answer.
- `<!-- docs: copy of FILE -->`: the block is found verbatim in FILE.
- Anything else fails unless marked `<!-- docs: not run: REASON -->`.

Until a page starts a proxy of its own, `127.0.0.1:8080` is `poolswitch demo --no-traffic`. What
the runner changes in a block before running it:
- `127.0.0.1:8080` and `localhost:8080` become the page's proxy, and so does `$POOLSWITCH_URL`;
  `poolswitch start` and `poolswitch demo` listen on a free port (`--port` added, or `--port
  8080` changed), which is the page's proxy in a `serves` block;
- the providers' hosts become a local stand-in (provider_upstream.py); `$REDIS_URL` is a Redis
  started for the run; curl fails on an HTTP error (`--fail-with-body`);
- `${VAR}`, `$VAR`, `os.environ["VAR"]` and `process.env.VAR` not set get a placeholder value.
Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from . import provider_upstream
from .docblocks import Block, DocError, blocks
from .proxy import free_port
from .redis_server import RedisServer

REPO = Path(__file__).resolve().parents[3]
PROVIDER_HOSTS = (
    "https://api.openai.com",
    "https://api.anthropic.com",
    "https://generativelanguage.googleapis.com",
    "https://api.groq.com",
    "https://api.mistral.ai",
    "https://api.search.brave.com",
)
MINIMAL_CONFIG = (  # the keys of poolswitch.example.yaml, which the README's examples name
    "upstream_base_url: {upstream}\nkeys:\n"
    "  - {{id: primary, value: docs-primary-value}}\n  - {{id: backup, value: docs-backup-value}}\n"
)
ENV_NAMES = re.compile(
    r"\$\{(\w+)\}|\$(\w+)|os\.environ\[\"(\w+)\"\]|os\.environ\.get\(\"(\w+)\"|process\.env\.(\w+)"
)
NODE_SDKS = REPO / "conformance" / "official" / "node" / "node_modules"
RUN_SECONDS = 180.0
SERVE_SECONDS = 120.0  # a block may `pip install ./server` before it serves
PREAMBLE = (  # an HTTP error from a documented curl is drift, not output
    'set -euo pipefail\ncurl() { command curl --fail-with-body "$@"; }\n'
)


class Failed(Exception):
    """A block that did not do what the page says; the message is what CI prints."""


@dataclass
class Outcome:
    block: Block
    status: str  # "ran", "checked", "not run", "FAIL"
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Page:
    scratch: Path
    upstream: str  # the provider stand-in's base URL
    port: int  # the page's proxy
    env: dict[str, str] = field(default_factory=dict)
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def stop(self) -> None:
        for server in self.servers:
            _stop(server)
        self.servers.clear()


# --- what the runner changes in a block ---


def rewrite(text: str, page: Page, target: int, started: int) -> str:
    """The block as run here: `127.0.0.1:8080` is `target`, a proxy the block starts listens on
    `started`, the providers' hosts are the stand-in."""
    text = re.sub(r"\b(127\.0\.0\.1|localhost):8080\b", f"127.0.0.1:{target}", text)
    text = re.sub(r"--port 8080\b", f"--port {started}", text)
    for host in PROVIDER_HOSTS:
        text = text.replace(host, page.upstream)
    lines = []
    for line in text.split("\n"):
        if "--port" not in line:
            line = re.sub(r"\bpoolswitch (start|demo)\b", rf"poolswitch \1 --port {started}", line)
        lines.append(line)
    return "\n".join(lines)


def environment(text: str, page: Page) -> dict[str, str]:
    """This process's environment, the page's, and a placeholder for each variable the block
    names that neither sets (a shell `export` in the block sets its own first)."""
    env = {**os.environ, **page.env}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["POOLSWITCH_URL"] = f"http://127.0.0.1:{page.port}"  # for `poolswitch status` and such
    for name in _names(text):
        if name not in env:
            env[name] = f"docs-placeholder-{name.lower()}"
    return env


def _names(text: str) -> list[str]:
    return [next(g for g in match.groups() if g) for match in ENV_NAMES.finditer(text)]


# --- one block ---


def run_block(block: Block, page: Page) -> Outcome:
    started = time.monotonic()
    try:
        status, detail = _dispatch(block, page)
    except Failed as exc:
        status, detail = "FAIL", str(exc)
    return Outcome(block, status, detail, time.monotonic() - started)


def _dispatch(block: Block, page: Page) -> tuple[str, str]:
    kind, arg = (block.directive.kind, block.directive.arg) if block.directive else (None, "")
    if kind == "not run":
        return "not run", arg
    if kind == "copy of":
        return _copy_of(block, arg)
    lang = block.lang
    if lang in ("sh", "bash", "shell", "console"):
        return "ran", (_serve(block, page) if kind == "serves" else _shell(block, page))
    if lang == "python":
        return "ran", _script(block, page, [sys.executable], ".py")
    if lang in ("js", "javascript", "mjs"):
        return "ran", _node(block, page)
    if lang in ("yaml", "yml"):
        return "checked", _config(block, page, kind == "config fragment")
    if lang == "json":
        return "checked", _json(block, page, arg if kind == "sample" else None)
    raise Failed(
        f"no way to run a ```{lang or '(untagged)'} block: mark it <!-- docs: not run: why -->"
    )


def _copy_of(block: Block, name: str) -> tuple[str, str]:
    source = REPO / name
    if not source.is_file():
        raise Failed(f"'copy of {name}': no such file in the repository")
    if block.text.strip("\n") not in source.read_text():
        raise Failed(f"the block is no longer a verbatim part of {name}: copy it again")
    return "checked", f"the same as {name}"


def _run(argv: list[str], page: Page, text: str, seconds: float = RUN_SECONDS) -> str:
    try:
        done = subprocess.run(
            argv,
            cwd=page.scratch,
            env=environment(text, page),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=seconds,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise Failed(f"still running after {seconds:g}s") from None
    output = (done.stdout + done.stderr).decode(errors="replace")
    if done.returncode != 0:
        raise Failed(f"exit {done.returncode}:\n{_tail(output)}")
    return _last_line(output)


def _shell(block: Block, page: Page) -> str:
    script = PREAMBLE + rewrite(block.text, page, page.port, free_port())
    return _run(["bash", "-c", script], page, block.text)


def _script(block: Block, page: Page, argv: list[str], suffix: str) -> str:
    path = page.scratch / f"block-{block.line}{suffix}"
    path.write_text(rewrite(block.text, page, page.port, free_port()))
    return _run([*argv, path.name], page, block.text)


def _node(block: Block, page: Page) -> str:
    module = re.search(r"^(import|export) ", block.text, re.M) or "require(" not in block.text
    suffix = ".mjs" if module else ".cjs"
    return _script(block, page, ["node"], suffix)


def _serve(block: Block, page: Page) -> str:
    """Start the block in the background; it is the page's proxy once /health answers."""
    page.stop()
    port = free_port()
    script = PREAMBLE + rewrite(block.text, page, port, port)
    log = page.scratch / f"block-{block.line}.log"
    env = environment(block.text, page)
    page.servers.append(_serving(["bash", "-c", script], page.scratch, env, port, log))
    page.port = port
    return f"serving on 127.0.0.1:{port}"


def _serving(
    argv: list[str], cwd: Path, env: dict[str, str], port: int, log: Path
) -> subprocess.Popen[bytes]:
    """`argv` started in a session of its own, once `/health` answers on `port`; Failed (the
    log's tail) when it exits first or does not answer within SERVE_SECONDS."""
    with log.open("wb") as out:
        server = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + SERVE_SECONDS
    while not _health(port):
        if server.poll() is not None:
            raise Failed(f"exit {server.returncode} before serving:\n{_tail(log.read_text())}")
        if time.monotonic() > deadline:
            _stop(server)
            raise Failed(f"/health did not answer in {SERVE_SECONDS:g}s:\n{_tail(log.read_text())}")
        time.sleep(0.1)
    return server


def _config(block: Block, page: Page, fragment: bool) -> str:
    first = block.text.split("\n", 1)[0]
    named = re.match(r"#\s*([\w.-]+\.ya?ml)\b", first)
    text = rewrite(block.text, page, page.port, page.port)
    if fragment:
        text = MINIMAL_CONFIG.format(upstream=page.upstream) + text
    path = page.scratch / (named[1] if named else f"block-{block.line}.yaml")
    path.write_text(text)
    if named:  # the blocks that start it need the variables it names
        env = environment(block.text, page)
        page.env.update({n: env[n] for n in _names(block.text) if n not in os.environ})
    said = _run(["poolswitch", "validate", "--config", path.name], page, block.text)
    return f"{path.name}: {said}"


def _json(block: Block, page: Page, sample: str | None) -> str:
    text = block.text.strip()
    try:
        doc = json.loads(text if text.startswith(("{", "[")) else "{" + text + "}")
    except ValueError as exc:
        raise Failed(f"not JSON: {exc}") from None
    if sample is None:
        return "parses"
    method, _, path = sample.partition(" ")
    if method != "GET" or not path.startswith("/"):
        raise Failed(f"'sample {sample}': want 'sample GET /path'")
    live = _get_json(page.port, path)
    missing = sorted(missing_keys(doc, live))
    if missing:
        raise Failed(f"keys in the sample that GET {path} does not have: {', '.join(missing)}")
    return f"every key is in GET {path}"


def missing_keys(sample: Any, live: Any, where: str = "") -> Iterator[str]:
    """Key paths of `sample` absent from `live` (a list compared through its first item)."""
    if isinstance(sample, dict):
        if not isinstance(live, dict):
            yield where or "(top)"
            return
        for key, value in sample.items():
            if key not in live:
                yield f"{where}.{key}" if where else key
            else:
                yield from missing_keys(value, live[key], f"{where}.{key}" if where else key)
    elif isinstance(sample, list) and sample and isinstance(live, list) and live:
        yield from missing_keys(sample[0], live[0], f"{where}[0]")


# --- processes and ports ---


def _health(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def _get_json(port: int, path: str) -> Any:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return json.loads(answer.read())
    except (OSError, ValueError) as exc:
        raise Failed(f"GET {path} on the page's proxy: {exc}") from None


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


def _tail(output: str, lines: int = 25) -> str:
    return "\n".join("    " + line for line in output.rstrip().split("\n")[-lines:])


def _last_line(output: str) -> str:
    stripped = output.strip()
    return stripped.rsplit("\n", 1)[-1][:100] if stripped else ""


@contextmanager
def stand_in() -> Iterator[str]:
    """provider_upstream on a free port, in a thread of its own, for the whole run."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(provider_upstream.app(), access_log=None)
    port = free_port()
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@contextmanager
def demo(scratch: Path) -> Iterator[int]:
    """`poolswitch demo --no-traffic` on a free port: the proxy a page talks to by default."""
    port = free_port()
    argv = ["poolswitch", "demo", "--no-traffic", "--port", str(port)]
    env = environment("", Page(scratch, "", port))
    try:
        server = _serving(argv, scratch, env, port, scratch / "demo.log")
    except Failed as exc:
        raise SystemExit(f"poolswitch demo did not start: {exc}") from None
    try:
        yield port
    finally:
        _stop(server)


def scratch_for(root: Path, page: Path) -> Path:
    """A directory with the repository's top-level entries linked in, and node's packages."""
    scratch = root / str(page.relative_to(REPO)).replace("/", "_")
    scratch.mkdir()
    for entry in REPO.iterdir():
        if entry.name not in (".git", ".nox", "node_modules"):
            (scratch / entry.name).symlink_to(entry)
    modules = scratch / "node_modules"
    modules.mkdir()
    if NODE_SDKS.is_dir():
        for package in NODE_SDKS.iterdir():
            (modules / package.name).symlink_to(package)
    (modules / "poolswitch-node").symlink_to(REPO / "sdk-node")
    return scratch


# --- the run ---


def pages(given: list[str]) -> list[Path]:
    if given:
        return [Path(p).resolve() for p in given]
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def check(paths: list[Path]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="poolswitch-docs-") as tmp:
        root = Path(tmp)
        (root / "redis").mkdir()
        redis = RedisServer(root / "redis")  # $REDIS_URL for the pages' Redis configs
        with redis, stand_in() as upstream, demo(root) as demo_port:
            for path in paths:
                name = str(path.relative_to(REPO))
                try:
                    found = blocks(name, path.read_text())
                except DocError as exc:
                    raise SystemExit(f"cannot read the blocks: {exc}") from None
                page = Page(scratch_for(root, path), upstream, demo_port, {"REDIS_URL": redis.url})
                try:
                    for block in found:
                        outcome = run_block(block, page)
                        print(render(outcome), flush=True)
                        outcomes.append(outcome)
                finally:
                    page.stop()
    return outcomes


def render(outcome: Outcome) -> str:
    block = outcome.block
    head = f"{outcome.status:<8} {block.where} {block.lang or '(untagged)'}"
    if outcome.status == "not run":
        return f"{head}: {outcome.detail}"
    if outcome.status == "FAIL":
        return f"{head}\n{outcome.detail}"
    return f"{head} ({outcome.seconds:.1f}s) {outcome.detail}".rstrip()


def summary(outcomes: list[Outcome]) -> str:
    statuses = ("ran", "checked", "not run", "FAIL")
    counts = {s: sum(o.status == s for o in outcomes) for s in statuses}
    return (
        f"{len(outcomes)} blocks: {counts['ran']} ran, {counts['checked']} checked, "
        f"{counts['not run']} marked not run, {counts['FAIL']} failed"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("pages", nargs="*", help="Markdown pages (default: README.md, docs/)")
    args = parser.parse_args(argv)
    if shutil.which("node") is None:
        print("node is needed for the js blocks", file=sys.stderr)
        return 2
    outcomes = check(pages(args.pages))
    print(summary(outcomes))
    return 1 if any(o.status == "FAIL" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
