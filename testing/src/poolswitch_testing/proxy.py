"""A real proxy for tests: `<python> -m poolswitch start` on a free 127.0.0.1 port, in a child
process, waited on until `/health` answers, stopped with SIGTERM (then SIGKILL). Every wait is
bounded.

    proxy = ProxyProcess(sys.executable, tmp_path, {"upstream_base_url": fake.url, "keys": [...]})
    proxy.start()          # raises ProxyStartError after START_TIMEOUT, with the log's tail
    ...                    # proxy.url, proxy.port
    proxy.stop()           # proxy.exit_code: 0 on a clean SIGTERM

The settings are written as YAML to `<directory>/poolswitch.yaml`; the log (stdout and stderr)
goes to `<directory>/proxy.log`. `server_src` puts another copy of the server's `src/` first on
PYTHONPATH: that is how a patched server is tried without touching the real one. POOLSWITCH_*
variables of the caller's environment are not passed on (they would change the settings behind
the test's back); `env` adds variables; `args` adds arguments to `poolswitch start` (say
`["--workers", "2"]`); `pid` is the running process's id.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import yaml

__all__ = ["ProxyProcess", "ProxyStartError", "free_port", "proxy_environment"]

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
POLL_INTERVAL = 0.05
TAIL_LINES = 25
PORT_TRIES = 3


class ProxyStartError(RuntimeError):
    """The proxy could not be started."""


def free_port() -> int:
    """A 127.0.0.1 port that was free a moment ago (someone may take it before you bind it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def proxy_environment(
    server_src: Path | None = None, env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """This process's environment without POOLSWITCH_* variables, plus `server_src` first on
    PYTHONPATH, plus `env`."""
    found = {k: v for k, v in os.environ.items() if not k.startswith("POOLSWITCH_")}
    if server_src is not None:
        parts = [str(server_src), found.get("PYTHONPATH", "")]
        found["PYTHONPATH"] = os.pathsep.join(p for p in parts if p)
    found.update(env or {})
    return found


class ProxyProcess:
    """One `poolswitch start` process; see the module docstring."""

    def __init__(
        self,
        python: str,
        directory: Path,
        settings: Mapping[str, Any],
        *,
        server_src: Path | None = None,
        log_level: str = "info",
        env: Mapping[str, str] | None = None,
        start_timeout: float = START_TIMEOUT,
        args: Sequence[str] = (),
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.python = python
        self.directory = directory
        self.config_path = directory / "poolswitch.yaml"
        self.config_path.write_text(yaml.safe_dump(dict(settings), sort_keys=False))
        self.log_path = directory / "proxy.log"
        self.log_level = log_level
        self.env = proxy_environment(server_src, env)
        self.start_timeout = start_timeout
        self.args = list(args)
        self.port = 0
        self.url = ""
        self.exit_code: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> ProxyProcess:
        """Start on a free port and wait until /health answers 200; raise ProxyStartError if
        it does not within `start_timeout` (a port taken meanwhile is retried on another)."""
        for _ in range(PORT_TRIES):
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            if self._launch():
                return self
        raise ProxyStartError("the proxy did not start (no /health answer)")

    def _launch(self) -> bool:
        self._log = self.log_path.open("ab")
        command = [self.python, "-m", "poolswitch", "start", "--config", str(self.config_path)]
        command += ["--port", str(self.port), "--log-level", self.log_level, *self.args]
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            env=self.env,
            cwd=self.directory,
        )
        self.exit_code = None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self.exit_code = self._process.returncode
                self._process = None
                self._close_log()
                return False
            if self._healthy():
                return True
            time.sleep(POLL_INTERVAL)
        self.stop()
        return False

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1.0) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def alive(self) -> bool:
        if self._process is None:
            return False
        if self._process.poll() is None:
            return True
        self.exit_code = self._process.returncode
        return False

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within STOP_TIMEOUT."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(STOP_TIMEOUT)
            self.exit_code = process.returncode
        self._close_log()

    def kill(self) -> None:
        """SIGKILL: no drain, no last write (what a crash or an OOM kill does)."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait(STOP_TIMEOUT)
            self.exit_code = process.returncode
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = TAIL_LINES) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def __enter__(self) -> ProxyProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
