"""The runner's command line: load the cases, pick the client, run, report.

    python conformance/run_cases.py --sdk go [--run 'failover/*'] [--skip PATTERN] [--parallel 2]
                              [--known-failing FILE] [--python PY] [--server-src DIR] [-v]
    python -m poolswitch_testing.conformance --home conformance --sdk raw ...

`--home` is the suite's directory (`cases/`, `clients/`, `known-failing/`); run_cases.py passes
its own, `-m` defaults to `./conformance`.

Prints `FAILED: <case>` with its reasons for every failing case, then `Total cases: N` and, last,
`X passed, Y failed`. Exit status: 0 when nothing failed, 1 when something did, 2 when the run
could not start (invalid cases, patterns or known-failing list; a client that does not build; no
redis-server for cases with `storage: {backend: redis}`: the run starts one on a free loopback
port for all of them, each case in its own namespace, and stops it at the end).
"""

from __future__ import annotations

import argparse
import os
import queue
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TextIO

from poolswitch_testing.conformance import leaks
from poolswitch_testing.conformance.client import ClientProcess
from poolswitch_testing.conformance.execute import CaseResult, Environment, run_case
from poolswitch_testing.conformance.patterns import (
    KnownFailing,
    PatternError,
    known_for,
    parse_known_failing,
    select,
)
from poolswitch_testing.conformance.patterns import unused as unused_entries
from poolswitch_testing.conformance.schema import Case, CaseError, load_cases
from poolswitch_testing.redis_server import RedisServer, RedisServerError

__all__ = ["SDKS", "main"]

SDKS = ("raw", "python", "node", "go", "embedded-node", "embedded-python")
EMBEDDED = frozenset({"embedded-node", "embedded-python"})
"""Clients that hold the pool themselves: no proxy is started; cases tagged `proxy` are not run."""
NODE_SDK = Path("sdk-node", "dist", "esm", "index.js")  # from the repository's root
GO_BUILD_TIMEOUT = 300


class SetupError(RuntimeError):
    """The run cannot start."""


def client_command(sdk: str, build_dir: Path, home: Path) -> list[str]:
    """The command line of the client program for `sdk` (building it first for Go); `home` is
    the suite's directory (its parent the repository)."""
    clients = home / "clients"
    node_sdk = home.parent / NODE_SDK
    if sdk == "raw":
        return [sys.executable, str(clients / "raw" / "raw_client.py")]
    if sdk in ("python", "embedded-python"):  # one program: a line with `embedded` is for it
        return [sys.executable, str(clients / "python" / "python_client.py")]
    if sdk in ("node", "embedded-node"):
        if not node_sdk.is_file():
            raise SetupError(f"{node_sdk} is missing: run `npm ci && npm run build` in sdk-node")
        node = shutil.which("node")
        if node is None:
            raise SetupError("node is not on PATH")
        return [node, str(clients / "node" / "client.mjs")]
    if sdk == "go":
        binary = build_dir / "go-client"
        try:
            subprocess.run(
                ["go", "build", "-o", str(binary), "."],
                cwd=clients / "go",
                check=True,
                capture_output=True,
                text=True,
                timeout=GO_BUILD_TIMEOUT,
            )
        except FileNotFoundError:
            raise SetupError("go is not on PATH") from None
        except subprocess.CalledProcessError as exc:
            raise SetupError(f"go build failed:\n{exc.stderr}") from None
        except subprocess.TimeoutExpired:
            raise SetupError(f"go build took over {GO_BUILD_TIMEOUT}s") from None
        return [str(binary)]
    raise SetupError(f"unknown SDK {sdk!r} (one of {', '.join(SDKS)}, or give --client)")


def _redis(cases: Sequence[Case], workdir: Path) -> RedisServer | None:
    """The run's one redis-server, started when a case needs it (never skipped without it)."""
    needing = [case.id for case in cases if case.uses_redis]
    if not needing:
        return None
    more = f" and {len(needing) - 1} more" if len(needing) > 1 else ""
    try:
        return RedisServer(workdir / "redis").start()
    except RedisServerError as exc:
        raise SetupError(f"{exc} (storage redis in {needing[0]}{more})") from None


def _parser(home: Path | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="conformance/run_cases.py",
        description="Run the PoolSwitch conformance cases against the real proxy with one client.",
    )
    parser.add_argument("--sdk", required=True, help=f"{', '.join(SDKS)}, or a name for --client")
    parser.add_argument("--client", help="the client program's command line (for a new SDK)")
    parser.add_argument("--run", action="append", default=[], metavar="PATTERN")
    parser.add_argument("--skip", action="append", default=[], metavar="PATTERN")
    parser.add_argument("--known-failing", type=Path, metavar="FILE")
    parser.add_argument(
        "--home",
        type=Path,
        default=home or Path("conformance"),
        metavar="DIR",
        help="the suite's directory: cases/, clients/, known-failing/ (default ./conformance)",
    )
    parser.add_argument("--cases", type=Path, metavar="DIR", help="default HOME/cases")
    parser.add_argument("--parallel", type=int, default=2, metavar="N", help="cases at a time")
    parser.add_argument(
        "--python", default=sys.executable, help="the interpreter that runs the proxy"
    )
    parser.add_argument(
        "--server-src",
        type=Path,
        default=os.environ.get("CONFORMANCE_SERVER_SRC") or None,
        metavar="DIR",
        help="run the proxy from this copy of server/src (default $CONFORMANCE_SERVER_SRC)",
    )
    parser.add_argument("--list", action="store_true", help="list the selected cases and stop")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def _known_failing(path: Path, home: Path) -> list[KnownFailing]:
    if not path.exists():
        return []
    try:
        source = str(path.relative_to(home))
    except ValueError:
        source = str(path)
    return parse_known_failing(path.read_text(encoding="utf-8"), source)


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


class _Report:
    def __init__(self, out: TextIO, known: Sequence[KnownFailing], verbose: bool) -> None:
        self.out = out
        self.known = known
        self.verbose = verbose
        self.passed = 0
        self.failed = 0
        self.known_failures = 0

    def add(self, result: CaseResult) -> None:
        entry = known_for(self.known, result.case_id)
        clean = leaks.redact
        if result.passed and entry is not None:
            self.failed += 1
            print(f"FAILED: {result.case_id}", file=self.out)
            print(
                f"    listed in {entry.where} ({entry.reason}) but passed: take it off the list",
                file=self.out,
            )
        elif result.passed:
            self.passed += 1
            if self.verbose:
                print(f"passed: {result.case_id} ({result.seconds:.1f}s)", file=self.out)
        elif entry is not None:
            self.passed += 1
            self.known_failures += 1
            print(f"known failing: {result.case_id} ({entry.where}: {entry.reason})", file=self.out)
            if self.verbose:
                print(_indent(clean("\n".join(result.reasons), result.secrets)), file=self.out)
        else:
            self.failed += 1
            print(f"FAILED: {result.case_id} ({result.seconds:.1f}s)", file=self.out)
            print(_indent(clean("\n".join(result.reasons), result.secrets)), file=self.out)
            if result.log_tail:
                print("    the proxy's log ends with:", file=self.out)
                print(_indent(clean(result.log_tail, result.secrets), " " * 8), file=self.out)
        self.out.flush()


def _run_all(
    cases: Sequence[Case],
    argv: Sequence[str],
    env: Environment,
    parallel: int,
    report: Callable[[CaseResult], None],
    home: Path,
) -> None:
    clients: queue.Queue[ClientProcess] = queue.Queue()
    started: list[ClientProcess] = []
    for i in range(parallel):
        client = ClientProcess(argv, env.workdir / f"client-{i}.log", cwd=home)
        client.start()
        started.append(client)
        clients.put(client)

    def work(number: int, case: Case) -> CaseResult:
        client = clients.get()
        begun = time.monotonic()
        try:
            return run_case(case, client, env, number)
        except Exception:
            reason = f"runner error:\n{traceback.format_exc()}"
            return CaseResult(case.id, (reason,), time.monotonic() - begun, {})
        finally:
            clients.put(client)

    try:
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            futures = [pool.submit(work, n, case) for n, case in enumerate(cases, start=1)]
            for future in futures:
                report(future.result())
    finally:
        for client in started:
            client.close()


def main(
    argv: Sequence[str] | None = None, out: TextIO = sys.stdout, home: Path | None = None
) -> int:
    args = _parser(home).parse_args(argv)
    home = args.home.resolve()
    if not (home / "cases").is_dir() and args.cases is None:
        print(f"{home}: not the conformance suite's directory (give --home)", file=sys.stderr)
        return 2
    if args.parallel < 1:
        print("--parallel must be at least 1", file=sys.stderr)
        return 2
    known_path = args.known_failing or home / "known-failing" / f"{args.sdk}.txt"
    try:
        cases = load_cases(args.cases or home / "cases")
        ids = [case.id for case in cases]
        chosen = set(select(ids, args.run, args.skip))
        known = _known_failing(known_path, home)
        idle = unused_entries(known, ids)
        if idle:
            raise PatternError([f"{e.where}: {e.pattern!r} matches no case" for e in idle])
    except (CaseError, PatternError) as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 2
    selected = [case for case in cases if case.id in chosen]
    embedded = args.sdk in EMBEDDED
    sdk_only = [case.id for case in selected if case.sdk_only and (args.sdk == "raw" or embedded)]
    proxy_only = [case.id for case in selected if embedded and "proxy" in case.tags]
    left_out = set(sdk_only) | set(proxy_only)
    selected = [case for case in selected if case.id not in left_out]
    if args.list:
        print("\n".join(case.id for case in selected), file=out)
        return 0
    workdir = Path(tempfile.mkdtemp(prefix=f"poolswitch-conformance-{args.sdk}-"))
    started = time.monotonic()
    redis: RedisServer | None = None
    try:
        command = (
            shlex.split(args.client) if args.client else client_command(args.sdk, workdir, home)
        )
        server = args.server_src.resolve() if args.server_src else None
        redis = _redis(selected, workdir)
        env = Environment(
            python=args.python,
            workdir=workdir,
            server_src=server,
            redis_url=None if redis is None else redis.url,
            embedded=embedded,
        )
        where = f", proxy from {server}" if server else ""
        skipped = f" ({len(sdk_only)} about SDK behaviour skipped)" if sdk_only else ""
        if proxy_only:
            skipped += f" ({len(proxy_only)} tagged proxy skipped)"
        print(
            f"conformance: {args.sdk} client, {len(selected)} case(s){skipped}, "
            f"{args.parallel} at a time{where}",
            file=out,
        )
        report = _Report(out, known, args.verbose)
        _run_all(selected, command, env, args.parallel, report.add, home)
    except SetupError as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return 2
    finally:
        if redis is not None:
            redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    if report.known_failures:
        print(f"Known failing (accepted): {report.known_failures}", file=out)
    print(f"Time: {time.monotonic() - started:.1f}s", file=out)
    print(f"Total cases: {len(selected)}", file=out)
    print(f"{report.passed} passed, {report.failed} failed", file=out)
    return 1 if report.failed else 0
