"""Running wrk with a POST body and reading its results from a Lua done() hook."""

from __future__ import annotations

import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from payloads import CHAT_REQUEST_JSON
from proc import BenchError, Pinning, which

_MARK = "BENCH_RESULT"

_LUA = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "{mark} requests=%d duration_us=%d bytes=%d p50_us=%d p90_us=%d p99_us=%d " ..
    "max_us=%d mean_us=%.1f non2xx=%d connect=%d read=%d write=%d timeout=%d\\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, e.status, e.connect, e.read, e.write, e.timeout))
end
"""

_FIELD = re.compile(r"(\w+)=([0-9.]+)")


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_script(path: Path) -> Path:
    path.write_text(_LUA.format(body=_lua_string(CHAT_REQUEST_JSON), mark=_MARK))
    return path


@dataclass
class WrkResult:
    connections: int
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    non2xx: int
    socket_errors: dict[str, int]

    @property
    def errors_total(self) -> int:
        return sum(self.socket_errors.values())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def parse(output: str, connections: int) -> WrkResult:
    line = next((ln for ln in output.splitlines() if ln.startswith(_MARK)), None)
    if line is None:
        raise BenchError(f"wrk printed no {_MARK} line:\n{output[-2000:]}")
    f = {k: float(v) for k, v in _FIELD.findall(line)}
    duration_s = f["duration_us"] / 1e6
    requests = int(f["requests"])
    return WrkResult(
        connections=connections,
        requests=requests,
        duration_s=duration_s,
        rps=requests / duration_s if duration_s > 0 else 0.0,
        p50_ms=f["p50_us"] / 1000,
        p90_ms=f["p90_us"] / 1000,
        p99_ms=f["p99_us"] / 1000,
        max_ms=f["max_us"] / 1000,
        mean_ms=f["mean_us"] / 1000,
        non2xx=int(f["non2xx"]),
        socket_errors={k: int(f[k]) for k in ("connect", "read", "write", "timeout")},
    )


class Wrk:
    def __init__(self, script: Path, pinning: Pinning) -> None:
        exe = which("wrk")
        if exe is None:
            raise BenchError("wrk not found")
        self.exe = exe
        self.script = script
        self.pinning = pinning

    @staticmethod
    def version() -> str:
        exe = which("wrk")
        if exe is None:
            return "missing"
        out = subprocess.run([exe, "-v"], capture_output=True, text=True, timeout=10)
        first = (out.stdout or out.stderr).splitlines()
        return first[0].split(" Copyright")[0].removeprefix("wrk ") if first else "?"

    def run(self, url: str, connections: int, duration_s: float) -> WrkResult:
        cmd = [
            self.exe,
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(duration_s))}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(self.script),
            url,
        ]
        full, preexec = self.pinning.command(cmd, self.pinning.load_cpu)
        try:
            out = subprocess.run(
                full,
                capture_output=True,
                text=True,
                timeout=duration_s + 30,
                preexec_fn=preexec,
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"wrk did not finish within {duration_s + 30:.0f} s") from exc
        if out.returncode != 0:
            raise BenchError(f"wrk exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
        return parse(out.stdout, connections)
