"""The supervisor of `poolswitch start --workers N`: N worker processes serving one socket.

`poolswitch start` binds the listening socket first (a port in use is still one line), then
hands it to `Supervisor`, which starts each worker as a fresh interpreter (spawned, not forked:
none of the parent's state reaches a worker) with the socket passed as an inherited file
descriptor. Each worker builds its own app and runs the single-process server on that socket;
the kernel gives each new connection to whichever worker accepts it first.

    a worker exits while serving   restarted, at once if it had run STABLE_SECONDS, else after
                                   a backoff doubling from BACKOFF_FIRST up to BACKOFF_MAX; one
                                   line names the worker and its exit status
    FAILED_STARTS exits in a row of one worker, each within STABLE_SECONDS of its start
                                   every worker is stopped; exit 1
    SIGHUP                         forwarded to every worker: each reloads its config
                                   (reload.py)
    SIGTERM or SIGINT              the socket is closed and SIGTERM goes to every worker (each
                                   drains its in-flight requests); exit 0 once all exited 0 (or
                                   were ended by SIGTERM itself, still starting up). A
                                   second signal sends SIGINT (a worker then stops at once); a
                                   worker still running `drain_seconds` + STOP_MARGIN later is
                                   killed; exit 1

A worker asks the kernel for SIGTERM when the supervisor dies (`follow_supervisor`, Linux), so a
supervisor killed with SIGKILL leaves no worker serving the port on its own: each drains and
exits.

Counters and histograms are shared through prometheus_client's multiprocess mode: the
supervisor makes a private directory, names it to every worker in PROMETHEUS_MULTIPROC_DIR and
removes it on exit; whichever worker answers a scrape sums every worker's files (metrics.py).
The supervisor itself imports neither the server nor prometheus_client.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType

log = logging.getLogger("poolswitch.workers")

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
STABLE_SECONDS = 5.0
FAILED_STARTS = 5
BACKOFF_FIRST = 0.25
BACKOFF_MAX = 4.0
STOP_MARGIN = 5.0
TICK = 0.05
PR_SET_PDEATHSIG = 1  # <sys/prctl.h>
SUPERVISOR_PID = "_POOLSWITCH_SUPERVISOR_PID"  # in each worker's environment

Clock = Callable[[], float]


def exit_status(code: int) -> str:
    """`returncode` in words: `exited with code 2`, `killed by SIGKILL`."""
    if code >= 0:
        return f"exited with code {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


def follow_supervisor() -> bool:
    """In a worker: be sent SIGTERM when the supervisor dies (Linux only; elsewhere nothing
    changes). False when it is already gone: the worker should exit rather than serve."""
    if sys.platform.startswith("linux"):
        import ctypes  # here: a single-process start does not pay for it

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):
            log.warning("the worker will outlive a killed supervisor: prctl is not available")
    # it may have died before prctl: then this process has another parent already
    return os.environ.get(SUPERVISOR_PID) == str(os.getppid())


def supervisor_pid() -> int | None:
    """In a worker of `--workers N`: the supervisor's pid (a reload signals it, so that every
    worker reloads); else None."""
    pid = os.environ.get(SUPERVISOR_PID)
    return os.getppid() if pid is not None and pid == str(os.getppid()) else None


@dataclass
class _Worker:
    number: int
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failed_starts: int = 0
    restart_at: float | None = None


class Supervisor:
    """Runs `count` copies of `command` (which serves the socket whose descriptor it names)
    until a signal; see the module docstring."""

    def __init__(
        self,
        sock: socket.socket,
        count: int,
        command: Sequence[str],
        *,
        drain_seconds: float,
        env: Mapping[str, str] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.sock = sock
        self.command = list(command)
        self.drain_seconds = drain_seconds
        self.env = dict(os.environ if env is None else env)
        self.clock = clock
        self.workers = [_Worker(number) for number in range(1, count + 1)]
        self._signals: list[int] = []
        self._hangups = 0  # SIGHUPs received, to forward to every worker (each reloads)

    def run(self) -> int:
        """Start the workers, watch them until a signal, drain them; the exit code."""
        metrics_dir = tempfile.mkdtemp(prefix="poolswitch-metrics-")
        self.env[MULTIPROCESS_DIR] = metrics_dir
        self.env[SUPERVISOR_PID] = str(os.getpid())
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._on_hangup)
        try:
            return self._watch()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._kill_all()
            shutil.rmtree(metrics_dir, ignore_errors=True)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)

    def _on_hangup(self, signum: int, frame: FrameType | None) -> None:
        self._hangups += 1

    def _watch(self) -> int:
        for worker in self.workers:
            if not self._spawn(worker):
                return self._stop(failed=True)
        while not self._signals:
            if self._hangups:
                self._hangups = 0
                log.info("SIGHUP: every worker reloads its config")
                self._send(signal.SIGHUP)
            now = self.clock()
            if not all(self._tend(worker, now) for worker in self.workers):
                return self._stop(failed=True)
            time.sleep(TICK)
        return self._stop(failed=False)

    def _tend(self, worker: _Worker, now: float) -> bool:
        """Note a worker's exit, restart it when due; False when the supervisor must stop."""
        process = worker.process
        if process is not None and process.poll() is not None:
            return self._exited(worker, process, now)
        if process is None and worker.restart_at is not None and now >= worker.restart_at:
            return self._spawn(worker)
        return True

    def _spawn(self, worker: _Worker) -> bool:
        try:
            worker.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                pass_fds=(self.sock.fileno(),),
                env=self.env,
            )
        except OSError as exc:
            log.error("cannot start worker %d: %s", worker.number, exc.strerror or exc)
            return False
        worker.started_at = self.clock()
        worker.restart_at = None
        log.info("worker %d started (pid %d)", worker.number, worker.process.pid)
        return True

    def _exited(self, worker: _Worker, process: subprocess.Popen[bytes], now: float) -> bool:
        """Schedule the restart of a worker that exited; False once it keeps failing at start."""
        worker.process = None
        status = exit_status(process.returncode)
        if now - worker.started_at < STABLE_SECONDS:
            worker.failed_starts += 1
        else:
            worker.failed_starts = 0
        if worker.failed_starts >= FAILED_STARTS:
            log.error(
                "worker %d (pid %d) %s within %.0f s of starting, %d times in a row: "
                "stopping every worker",
                worker.number,
                process.pid,
                status,
                STABLE_SECONDS,
                worker.failed_starts,
            )
            return False
        delay = 0.0
        if worker.failed_starts:
            delay = min(BACKOFF_FIRST * 2 ** (worker.failed_starts - 1), BACKOFF_MAX)
        log.warning(
            "worker %d (pid %d) %s; restarting it%s",
            worker.number,
            process.pid,
            status,
            f" in {delay:.2f} s" if delay else "",
        )
        worker.restart_at = now + delay
        return True

    def _running(self) -> list[tuple[_Worker, subprocess.Popen[bytes]]]:
        return [(w, w.process) for w in self.workers if w.process and w.process.poll() is None]

    def _send(self, sig: int) -> None:
        for _, process in self._running():
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)

    def _stop(self, *, failed: bool) -> int:
        """Stop accepting, SIGTERM every worker, wait for them (bounded); the exit code."""
        self.sock.close()  # new connections are refused, not queued for workers that are going
        running = self._running()
        if not failed:
            log.info("stopping: draining %d workers", len(running))
        self._send(signal.SIGTERM)
        seen = len(self._signals)
        deadline = self.clock() + self.drain_seconds + STOP_MARGIN
        while self._running() and self.clock() < deadline:
            if len(self._signals) > seen:  # asked again: stop now
                seen = len(self._signals)
                self._send(signal.SIGINT)
            time.sleep(TICK)
        late = self._running()
        for worker, process in late:
            log.error(
                "worker %d (pid %d) still running %.0f s after SIGTERM: killing it",
                worker.number,
                process.pid,
                self.drain_seconds + STOP_MARGIN,
            )
        self._kill_all()
        failed = failed or bool(late)
        for worker, process in running:
            # SIGTERM's default action: the worker was still starting (it serves only once
            # its handler is in place), so nothing was lost
            clean = process.returncode in (0, -signal.SIGTERM)
            if not clean and all(process is not p for _, p in late):
                log.error(
                    "worker %d (pid %d) %s while stopping",
                    worker.number,
                    process.pid,
                    exit_status(process.returncode),
                )
                failed = True
        return 1 if failed else 0

    def _kill_all(self) -> None:
        for _, process in self._running():
            process.kill()
        for worker in self.workers:
            if worker.process is not None:
                try:
                    worker.process.wait(STOP_MARGIN)
                except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL not honoured
                    log.error("worker %d (pid %d) did not die", worker.number, worker.process.pid)
