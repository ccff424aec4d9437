"""The client program under test: one long-lived process spoken to over JSON Lines.

The runner writes one request per line on the program's stdin and reads exactly one line back
per request on its stdout, `{"id", "result"}` or `{"id", "harness_error"}` (conformance/README.md
has the fields). stderr goes to a log file. A program that dies, stalls past the call's bound or
answers out of turn is a harness error; it is restarted for the next call.
"""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = ["ClientProcess", "HarnessError"]

STOP_TIMEOUT = 5.0
TAIL_LINES = 15


class HarnessError(RuntimeError):
    """The client program did not produce a result for a call."""


class ClientProcess:
    def __init__(
        self,
        argv: Sequence[str],
        log_path: Path,
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.cwd = cwd
        self.env = None if env is None else dict(env)
        self._process: subprocess.Popen[bytes] | None = None
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self._lines = queue.Queue()
        process = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=self.cwd,
            env=self.env,
        )
        self._process = process
        reader = threading.Thread(
            target=self._read, args=(process, self._lines), name="client-stdout", daemon=True
        )
        reader.start()

    @staticmethod
    def _read(process: subprocess.Popen[bytes], lines: queue.Queue[bytes | None]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    def call(self, request: Mapping[str, Any], timeout: float) -> tuple[str, dict[str, Any]]:
        """Send one request; return its answer line and its `result`. Raises HarnessError."""
        if self._process is None or self._process.poll() is not None:
            self.close()
            self.start()
        process = self._process
        assert process is not None and process.stdin is not None
        try:
            process.stdin.write(json.dumps(request).encode() + b"\n")
            process.stdin.flush()
        except OSError:
            raise self._died("the client program stopped reading its stdin") from None
        try:
            raw = self._lines.get(timeout=timeout)
        except queue.Empty:
            process.kill()
            self.close()
            raise HarnessError(f"the client program gave no answer within {timeout:g}s") from None
        if raw is None:
            raise self._died("the client program exited")
        line = raw.decode("utf-8", "replace").strip()
        try:
            answer = json.loads(line)
        except ValueError:
            self.close()
            raise HarnessError(
                f"the client program answered a line that is not JSON: {line[:200]}"
            ) from None
        if not isinstance(answer, dict) or answer.get("id") != request["id"]:
            self.close()
            raise HarnessError(f"the client program answered out of turn: {line[:200]}")
        if "harness_error" in answer:
            raise HarnessError(f"the client program reports: {answer['harness_error']}")
        result = answer.get("result")
        if not isinstance(result, dict):
            raise HarnessError(f"the client program's answer has no result object: {line[:200]}")
        return line, result

    def _died(self, what: str) -> HarnessError:
        process = self._process
        code = None
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = process.wait(STOP_TIMEOUT)
        self.close()
        return HarnessError(f"{what} (exit code {code}); its stderr ends with:\n{self.tail()}")

    def close(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.close()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT)
            if process.stdout is not None:
                process.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def tail(self, lines: int = TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
