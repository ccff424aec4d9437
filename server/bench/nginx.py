"""nginx as the upstream (direct), as a reference proxy, and as a rate-limiting upstream."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from payloads import COMPLETION_JSON, LIMITED_KEY_VALUE, RATE_LIMIT_JSON
from proc import BenchError, Processes, free_port, wait_http_ok, which


def _nginx_string(text: str) -> str:
    """Quote `text` for an nginx config (single quotes, no variables inside)."""
    if "'" in text or "$" in text or "\\" in text:
        raise ValueError("payload must not contain ', $ or \\")
    return f"'{text}'"


@dataclass(frozen=True)
class NginxPorts:
    upstream: int  # (a) fixed 200 JSON on any path
    proxy: int  # (b) proxy_pass to `upstream` with keepalive
    limited: int  # (e) 429 for one key, 200 for the others

    @classmethod
    def pick(cls) -> NginxPorts:
        ports: set[int] = set()
        while len(ports) < 3:
            ports.add(free_port())
        a, b, c = sorted(ports)
        return cls(upstream=a, proxy=b, limited=c)


def render_config(workdir: Path, ports: NginxPorts) -> str:
    """One nginx, one worker, three servers; every path lives under `workdir`."""
    body = _nginx_string(COMPLETION_JSON)
    limited_body = _nginx_string(RATE_LIMIT_JSON)
    w = workdir
    return f"""
worker_processes 1;
pid {w}/nginx.pid;
error_log {w}/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    default_type application/json;
    client_body_temp_path {w}/client_body;
    proxy_temp_path {w}/proxy;
    fastcgi_temp_path {w}/fastcgi;
    uwsgi_temp_path {w}/uwsgi;
    scgi_temp_path {w}/scgi;
    keepalive_timeout 75s;
    keepalive_requests 10000000;
    server_tokens off;

    map $status $bench_is_429 {{
        429 1;
        default 0;
    }}

    upstream bench_upstream {{
        server 127.0.0.1:{ports.upstream};
        keepalive 64;
        keepalive_requests 10000000;
    }}

    # (a) the upstream itself
    server {{
        listen 127.0.0.1:{ports.upstream} backlog=4096;
        location / {{
            return 200 {body};
        }}
    }}

    # (b) nginx as a reverse proxy: the practical ceiling for any proxy
    server {{
        listen 127.0.0.1:{ports.proxy} backlog=4096;
        location / {{
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Bearer sk-bench-nginx";
        }}
    }}

    # (e) upstream that rate-limits one key (every 429 is logged, to count them)
    server {{
        listen 127.0.0.1:{ports.limited} backlog=4096;
        access_log {w}/limited_429.log combined if=$bench_is_429;
        location / {{
            if ($http_authorization = "Bearer {LIMITED_KEY_VALUE}") {{
                add_header Retry-After 1 always;
                return 429 {limited_body};
            }}
            return 200 {body};
        }}
    }}
}}
"""


class Nginx:
    """An nginx master + 1 worker running from a generated config in `workdir`."""

    NAME = "nginx"

    def __init__(self, procs: Processes, workdir: Path, cpu: int | None) -> None:
        self.procs = procs
        self.workdir = workdir
        self.cpu = cpu
        self.ports = NginxPorts.pick()
        self.limited_log = workdir / "limited_429.log"

    @staticmethod
    def version() -> str:
        exe = which("nginx")
        if exe is None:
            return "missing"
        out = subprocess.run([exe, "-v"], capture_output=True, text=True, timeout=10)
        return (out.stderr or out.stdout).strip().removeprefix("nginx version: ")

    def url(self, port: int, path: str = "/") -> str:
        return f"http://127.0.0.1:{port}{path}"

    def start(self) -> None:
        exe = which("nginx")
        if exe is None:
            raise BenchError("nginx not found")
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "nginx.conf"
        conf.write_text(render_config(self.workdir, self.ports))
        base = [
            exe,
            "-p",
            str(self.workdir),
            "-e",
            str(self.workdir / "error.log"),
            "-c",
            str(conf),
        ]
        check = subprocess.run([*base, "-t"], capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise BenchError(f"nginx config test failed:\n{check.stderr}")
        proc = self.procs.start(self.NAME, [*base, "-g", "daemon off;"], self.cpu)
        try:
            for port in (self.ports.upstream, self.ports.proxy, self.ports.limited):
                wait_http_ok(self.url(port), timeout=10.0, proc=proc)
        except BenchError as exc:
            raise BenchError(f"{exc}\n{self.procs.log_tail(self.NAME)}") from exc

    def count_429(self) -> int:
        """How many 429s the limited server has sent so far."""
        if not self.limited_log.exists():
            return 0
        with self.limited_log.open("rb") as fh:
            return sum(1 for _ in fh)

    def stop(self) -> None:
        self.procs.stop(self.NAME)
