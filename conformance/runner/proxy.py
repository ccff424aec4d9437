"""One `poolswitch start` process per case: settings file, start, /health, stop, log tail.

The proxy is the real command line (`<python> -m poolswitch start --config FILE --port P
--log-level info`), with stderr to a log file. `server_src` puts another copy of the server's
`src/` first on PYTHONPATH: that is how a patched server is tried without touching the real one.
Every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import yaml

__all__ = ["ProxyProcess", "ProxyStartError", "free_port"]

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
POLL_INTERVAL = 0.05
TAIL_LINES = 25


class ProxyStartError(RuntimeError):
    """The proxy could not be started."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _environment(server_src: Path | None) -> dict[str, str]:
    """The runner's environment without POOLSWITCH_* overrides (they would change the
    proxy's settings behind the case's back), plus `server_src` first on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POOLSWITCH_")}
    if server_src is not None:
        parts = [str(server_src), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in parts if p)
    return env


class ProxyProcess:
    def __init__(
        self,
        python: str,
        directory: Path,
        settings: Mapping[str, Any],
        *,
        server_src: Path | None = None,
    ) -> None:
        self.python = python
        self.directory = directory
        self.config_path = directory / "poolswitch.yaml"
        self.config_path.write_text(yaml.safe_dump(dict(settings), sort_keys=False))
        self.log_path = directory / "proxy.log"
        self.env = _environment(server_src)
        self.url = ""
        self.exit_code: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        """Start on a free port and wait until /health answers; raise ProxyStartError if not."""
        for _ in range(3):  # a free port can be taken by someone else before the proxy binds it
            port = free_port()
            self.url = f"http://127.0.0.1:{port}"
            if self._launch(port):
                return
        raise ProxyStartError("the proxy did not start (no /health answer)")

    def _launch(self, port: int) -> bool:
        self._log = self.log_path.open("ab")
        command = [self.python, "-m", "poolswitch", "start", "--config", str(self.config_path)]
        command += ["--port", str(port), "--log-level", "info"]
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            env=self.env,
            cwd=self.directory,
        )
        self.exit_code = None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self.exit_code = self._process.returncode
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
