"""nginx as the upstream (direct and rate-limiting) and, in a process of its own, as the
reference reverse proxy.

Two nginx instances, each a master + 1 worker with its own prefix directory, config, pid file
and logs:

- the upstream (`NginxUpstream`, on the load CPU next to wrk): (a) a fixed 200 JSON answer on
  any path, and (e) the same but 429 for one key;
- the reference proxy (`NginxProxy`, on the proxy CPU, where PoolSwitch runs): a keepalive
  `proxy_pass` to (a) that sets the same `Authorization` header PoolSwitch injects, on two
  ports: (b) with `access_log off`, (bl) with nginx's default access log (`combined` format,
  unbuffered: one write(2) per request) to `access.log` in its prefix directory.

The proxy used to be a third server block of the upstream's single worker, so it shared one
CPU with the upstream it proxied to and ran at about half speed.
"""

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


def pick_ports(n: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(free_port())
    return sorted(ports)


def _common(w: Path) -> str:
    """The main and http-level settings both instances share; every path lives under `w`."""
    return f"""
worker_processes 1;
pid {w}/nginx.pid;
error_log {w}/error.log warn;

events {{
    worker_connections 4096;
}}
"""


def _http_common(w: Path) -> str:
    return f"""
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
"""


@dataclass(frozen=True)
class UpstreamPorts:
    upstream: int  # (a) fixed 200 JSON on any path
    limited: int  # (e) 429 for one key, 200 for the others


@dataclass(frozen=True)
class ProxyPorts:
    quiet: int  # (b) proxy_pass, access_log off
    logged: int  # (bl) proxy_pass, default access log to a file


def render_upstream_config(w: Path, ports: UpstreamPorts) -> str:
    body = _nginx_string(COMPLETION_JSON)
    limited_body = _nginx_string(RATE_LIMIT_JSON)
    return f"""{_common(w)}
http {{{_http_common(w)}
    map $status $bench_is_429 {{
        429 1;
        default 0;
    }}

    # (a) the upstream itself
    server {{
        listen 127.0.0.1:{ports.upstream} backlog=4096;
        location / {{
            return 200 {body};
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


def render_proxy_config(w: Path, ports: ProxyPorts, upstream_port: int) -> str:
    location = """
        location / {
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Bearer sk-bench-nginx";
        }"""
    return f"""{_common(w)}
http {{{_http_common(w)}
    upstream bench_upstream {{
        server 127.0.0.1:{upstream_port};
        keepalive 64;
        keepalive_requests 10000000;
    }}

    # (b) nginx as a reverse proxy, no access log: the practical ceiling for any proxy
    server {{
        listen 127.0.0.1:{ports.quiet} backlog=4096;{location}
    }}

    # (bl) the same with nginx's default access log (combined, unbuffered) to a file
    server {{
        listen 127.0.0.1:{ports.logged} backlog=4096;
        access_log {w}/access.log combined;{location}
    }}
}}
"""


def version() -> str:
    exe = which("nginx")
    if exe is None:
        return "missing"
    out = subprocess.run([exe, "-v"], capture_output=True, text=True, timeout=10)
    return (out.stderr or out.stdout).strip().removeprefix("nginx version: ")


def url(port: int, path: str = "/") -> str:
    return f"http://127.0.0.1:{port}{path}"


class _Instance:
    """One nginx (master + 1 worker) from a generated config in its own prefix `workdir`."""

    def __init__(self, procs: Processes, name: str, workdir: Path, cpu: int | None) -> None:
        self.procs = procs
        self.name = name
        self.workdir = workdir
        self.cpu = cpu
        self.pid: int | None = None

    def _start(self, config: str, ports: tuple[int, ...]) -> None:
        exe = which("nginx")
        if exe is None:
            raise BenchError("nginx not found")
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "nginx.conf"
        conf.write_text(config)
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
            raise BenchError(f"{self.name} config test failed:\n{check.stderr}")
        proc = self.procs.start(self.name, [*base, "-g", "daemon off;"], self.cpu)
        self.pid = proc.pid
        try:
            for port in ports:
                wait_http_ok(url(port), timeout=10.0, proc=proc)
        except BenchError as exc:
            raise BenchError(f"{exc}\n{self.procs.log_tail(self.name)}") from exc

    def stop(self) -> None:
        self.procs.stop(self.name)
        self.pid = None


class NginxUpstream(_Instance):
    """(a) and (e): the upstream every proxy under test forwards to."""

    def __init__(self, procs: Processes, workdir: Path, cpu: int | None) -> None:
        super().__init__(procs, "nginx-upstream", workdir, cpu)
        a, e = pick_ports(2)
        self.ports = UpstreamPorts(upstream=a, limited=e)
        self.limited_log = workdir / "limited_429.log"

    def start(self) -> None:
        config = render_upstream_config(self.workdir, self.ports)
        self._start(config, (self.ports.upstream, self.ports.limited))

    def count_429(self) -> int:
        """How many 429s the limited server has sent so far."""
        if not self.limited_log.exists():
            return 0
        with self.limited_log.open("rb") as fh:
            return sum(1 for _ in fh)


class NginxProxy(_Instance):
    """(b) and (bl): nginx as a keepalive reverse proxy to the upstream's (a)."""

    def __init__(
        self, procs: Processes, workdir: Path, cpu: int | None, upstream_port: int
    ) -> None:
        super().__init__(procs, "nginx-proxy", workdir, cpu)
        b, bl = pick_ports(2)
        self.ports = ProxyPorts(quiet=b, logged=bl)
        self.upstream_port = upstream_port
        self.access_log = workdir / "access.log"

    def start(self) -> None:
        config = render_proxy_config(self.workdir, self.ports, self.upstream_port)
        self._start(config, (self.ports.quiet, self.ports.logged))

    def access_log_lines(self) -> int:
        if not self.access_log.exists():
            return 0
        with self.access_log.open("rb") as fh:
            return sum(1 for _ in fh)
