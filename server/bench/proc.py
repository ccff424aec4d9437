"""Process helpers for the benchmark: free ports, CPU pinning, bounded waits, cleanup."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

# Extra places where Debian/Ubuntu put nginx; searched after $PATH.
_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")

Cpus = int | tuple[int, ...] | None
"""Where a process may run: one CPU, a set of CPUs, or None (the harness's own CPU set)."""


class BenchError(RuntimeError):
    """A measurement could not be made."""


def which(name: str) -> str | None:
    """Find an executable on $PATH, falling back to the usual sbin directories."""
    found = shutil.which(name)
    if found:
        return found
    return shutil.which(name, path=os.pathsep.join(_SBIN_DIRS))


def ensure_tools(names: Sequence[str]) -> list[str]:
    """Install missing tools with apt-get (we may be root on a fresh machine).

    Returns the list of packages installed (empty when everything was present).
    """
    missing = [n for n in names if which(n) is None]
    if not missing:
        return []
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise BenchError(f"missing tools {missing} and cannot apt-get install them")
    print(f"installing missing tools with apt-get: {' '.join(missing)}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([apt, "update"], check=True, env=env, timeout=600)
    subprocess.run([apt, "install", "-y", *missing], check=True, env=env, timeout=900)
    still = [n for n in names if which(n) is None]
    if still:
        raise BenchError(f"tools still missing after apt-get install: {still}")
    return missing


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def usable_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


class Pinning:
    """Which CPU each side of the benchmark runs on (None: not pinned)."""

    def __init__(self) -> None:
        cpus = usable_cpus()
        if len(cpus) >= 2:
            self.proxy_cpu: int | None = cpus[0]
            self.load_cpu: int | None = cpus[1]
            # every usable CPU, for processes that share the machine (--workers N)
            self.all_cpus: tuple[int, ...] | None = tuple(cpus)
        else:
            self.proxy_cpu = None
            self.load_cpu = None
            self.all_cpus = None
        self.taskset = shutil.which("taskset")

    def describe(self) -> str:
        if self.proxy_cpu is None:
            return "not pinned (fewer than 2 CPUs)"
        how = "taskset" if self.taskset else "sched_setaffinity"
        return (
            f"PoolSwitch and the nginx proxy (b, bl) on CPU {self.proxy_cpu}; the nginx "
            f"upstream, wrk, redis-server, SSE server and client on CPU {self.load_cpu} ({how})"
        )

    def command(self, cmd: Sequence[str], cpu: Cpus) -> tuple[list[str], Callable[[], None] | None]:
        """The command to run `cmd` pinned to `cpu` (one or several), plus a preexec_fn when
        taskset is missing."""
        if cpu is None:
            return list(cmd), None
        allowed = {cpu} if isinstance(cpu, int) else set(cpu)
        if self.taskset:
            return [self.taskset, "-c", ",".join(map(str, sorted(allowed))), *cmd], None

        def _pin() -> None:
            os.sched_setaffinity(0, allowed)

        return list(cmd), _pin

    def pin_self(self) -> None:
        """Run the harness itself (and the SSE client in it) on the load CPU."""
        if self.load_cpu is not None:
            os.sched_setaffinity(0, {self.load_cpu})


class Processes:
    """Starts background processes and guarantees they are stopped."""

    def __init__(self, logdir: Path, pinning: Pinning) -> None:
        self.logdir = logdir
        self.pinning = pinning
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, Path] = {}
        self._files: dict[str, IO[bytes]] = {}

    def start(
        self, name: str, cmd: Sequence[str], cpu: Cpus, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        if name in self._procs:
            raise BenchError(f"process {name!r} already running")
        full, preexec = self.pinning.command(cmd, cpu)
        log = self.logdir / f"{name}.log"
        fh = log.open("wb")
        proc = subprocess.Popen(
            full,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            preexec_fn=preexec,
            # Own session: Ctrl-C reaches only the harness, which then stops
            # the children in order.
            start_new_session=True,
        )
        self._procs[name] = proc
        self._logs[name] = log
        self._files[name] = fh
        return proc

    def log_text(self, name: str) -> str:
        log = self._logs.get(name)
        if log is None or not log.exists():
            return ""
        return log.read_text(errors="replace")

    def log_tail(self, name: str, lines: int = 20) -> str:
        return "\n".join(self.log_text(name).splitlines()[-lines:])

    def stop(self, name: str, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait up to `timeout`, then SIGKILL. Returns the exit code."""
        proc = self._procs.pop(name, None)
        if proc is None:
            return None
        code: int | None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
                code = None  # did not stop on SIGTERM
        else:
            code = proc.returncode
        fh = self._files.pop(name, None)
        if fh is not None:
            fh.close()
        return code

    def stop_all(self) -> None:
        for name in reversed(list(self._procs)):
            try:
                self.stop(name, timeout=5.0)
            except Exception as exc:  # keep cleaning up the others
                print(f"warning: could not stop {name}: {exc}", flush=True)


def wait_http_ok(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> float:
    """Poll `url` until it answers 200; returns seconds waited. Bounded by `timeout`."""
    start = time.monotonic()
    deadline = start + timeout
    last_err = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"process exited with code {proc.returncode} before {url} was ready")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as resp:
                if resp.status == 200:
                    return time.monotonic() - start
                last_err = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            last_err = f"HTTP {exc.code}"
        except OSError as exc:
            last_err = str(exc)
        time.sleep(0.05)
    raise BenchError(f"{url} not ready after {timeout:.0f} s ({last_err})")


def http_post(url: str, body: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
    """One POST with a JSON body; returns (status, body) also for error statuses."""
    req = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def rss_kib(pid: int) -> int | None:
    """VmRSS of a process in KiB (None if it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def child_pids(pid: int) -> list[int]:
    """All descendants of `pid` (via /proc/PID/task/*/children)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = (task / "children").read_text().split()
            except OSError:
                continue
            for k in kids:
                out.append(int(k))
                todo.append(int(k))
    return out


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"
