"""Starting and stopping PoolSwitch instances under test."""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

from proc import BenchError, Cpus, Processes, child_pids, free_port, rss_kib, wait_http_ok

HEALTH_TIMEOUT_S = 20.0
_READY = re.compile(r"Application startup complete")  # uvicorn's line, once per serving process
DEFAULT_LOG_LEVEL = "info"  # `poolswitch start`'s default: one access-log line per request
QUIET_LOG_LEVEL = "warning"


def write_config(
    path: Path,
    upstream_url: str,
    n_keys: int,
    pools: tuple[str, ...] = (),
    storage: dict[str, str] | None = None,
    admin_token: str | None = None,
    settings: Mapping[str, object] | None = None,
) -> Path:
    """A minimal config: round robin over keys k1..kN with values sk-bench-1..N; with `pools`,
    one pool per name at route /<name>, each with its own N keys, all to the same upstream.
    `storage` (say `{backend: redis, redis_url: ..., namespace: ...}`), `admin_token` and
    other top-level `settings` (`upstream_ca_file`, limits) are written as given."""
    lines = [f"upstream_base_url: {upstream_url}", "strategy: round_robin"]
    lines += [f"{name}: {json.dumps(value)}" for name, value in (settings or {}).items()]
    if storage:
        lines.append("storage:")
        lines += [f"  {name}: {json.dumps(value)}" for name, value in storage.items()]
    if admin_token is not None:
        lines.append(f"admin_token: {json.dumps(admin_token)}")
    if not pools:
        lines += [
            "keys:",
            *(f"  - {{id: k{i}, value: sk-bench-{i}}}" for i in range(1, n_keys + 1)),
        ]
    else:
        lines.append("pools:")
        for name in pools:
            lines += [f"  - name: {name}", f"    route: /{name}", "    keys:"]
            lines += [
                f"      - {{id: k{i}, value: sk-bench-{name}-{i}}}" for i in range(1, n_keys + 1)
            ]
    path.write_text("\n".join(lines) + "\n")
    return path


def version() -> str:
    try:
        return metadata.version("poolswitch")
    except metadata.PackageNotFoundError:
        return "not installed"


def base_command() -> list[str]:
    """The command that runs the `poolswitch` console script in *this* interpreter.

    Running the entry point with `python -c` (instead of the generated wrapper script)
    makes the process we start the Python process that serves, so its PID is the one
    whose RSS we read.
    """
    eps = metadata.entry_points(group="console_scripts", name="poolswitch")
    for ep in eps:
        code = (
            "import importlib, sys\n"
            f"f = importlib.import_module({ep.module!r})\n"
            f"for a in {ep.attr!r}.split('.'):\n"
            "    f = getattr(f, a)\n"
            "sys.argv[0] = 'poolswitch'\n"
            "sys.exit(f())\n"
        )
        return [sys.executable, "-c", code]
    exe = shutil.which("poolswitch")
    if exe is not None:
        return [exe]
    raise BenchError("poolswitch is not installed (pip install -e ./server)")


class PoolSwitch:
    def __init__(
        self,
        procs: Processes,
        workdir: Path,
        name: str,
        upstream_url: str,
        n_keys: int,
        cpu: Cpus,
        log_level: str = DEFAULT_LOG_LEVEL,
        pools: tuple[str, ...] = (),
        *,
        storage: dict[str, str] | None = None,
        admin_token: str | None = None,
        workers: int = 1,
        settings: Mapping[str, object] | None = None,
    ) -> None:
        self.procs = procs
        self.name = name
        self.cpu = cpu
        self.log_level = log_level
        self.workers = workers
        self.port = free_port()
        self.config = write_config(
            workdir / f"{name}.yaml", upstream_url, n_keys, pools, storage, admin_token, settings
        )
        # with several pools, load goes to the route matched last (the longest is tried first)
        self.prefix = f"/{sorted(pools, key=len, reverse=True)[-1]}" if pools else ""
        self.pid: int | None = None
        self.startup_s: float | None = None

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def proxied(self, path: str) -> str:
        """The URL of a proxied `path` (through the loaded pool's route, if any)."""
        return self.url(self.prefix + path)

    def start(self) -> None:
        cmd = [
            *base_command(),
            "start",
            "--config",
            str(self.config),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            self.log_level,
        ]
        if self.workers != 1:
            cmd += ["--workers", str(self.workers)]
        proc = self.procs.start(self.name, cmd, self.cpu)
        self.pid = proc.pid
        try:
            self.startup_s = wait_http_ok(self.url("/health"), HEALTH_TIMEOUT_S, proc)
            if self.workers > 1:  # /health answered by one worker: wait for every one
                self._wait_workers(time.monotonic() + HEALTH_TIMEOUT_S - self.startup_s)
        except BenchError as exc:
            tail = self.procs.log_tail(self.name)
            self.procs.stop(self.name)
            raise BenchError(f"PoolSwitch {self.name} did not start: {exc}\n{tail}") from exc

    def _wait_workers(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if len(_READY.findall(self.procs.log_text(self.name))) >= self.workers:
                return
            time.sleep(0.05)
        raise BenchError(f"not all {self.workers} workers were ready in time")

    def serving_pids(self) -> list[int]:
        """The processes that serve requests: the one started, or a supervisor's workers."""
        if self.pid is None:
            return []
        return [self.pid] if self.workers == 1 else child_pids(self.pid)

    def rss(self) -> tuple[int, int]:
        """(VmRSS of the started process, VmRSS summed over it and its children) in KiB."""
        if self.pid is None:
            raise BenchError(f"PoolSwitch {self.name} is not running")
        main = rss_kib(self.pid)
        if main is None:
            raise BenchError(f"PoolSwitch {self.name} (pid {self.pid}) is gone")
        tree = main + sum(rss_kib(p) or 0 for p in child_pids(self.pid))
        return main, tree

    def children(self) -> list[int]:
        return child_pids(self.pid) if self.pid is not None else []

    def log_tail(self) -> str:
        return self.procs.log_tail(self.name)

    def stop(self) -> int | None:
        """SIGTERM; returns the exit code (None if it had to be killed)."""
        code = self.procs.stop(self.name, timeout=10.0)
        self.pid = None
        return code
