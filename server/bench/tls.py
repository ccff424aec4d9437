"""The HTTPS upstream section (`--only tls`): (t) PoolSwitch forwarding to an nginx upstream
over TLS against (tp) the same PoolSwitch to the plain-HTTP nginx upstream, paired.

A CA and a certificate for 127.0.0.1 are made for the run with trustme; nginx serves the same
fixed answer as (a) on a TLS port (its own instance on the load CPU) and PoolSwitch trusts it
through `upstream_ca_file`. Connection reuse is proven from nginx's access log, which writes
`$connection $ssl_session_reused` per request: each distinct `$connection` is one TCP
connection and so one TLS handshake (`r`: a resumed session). The report gives handshakes per
10,000 requests over every (t) run of the section, warm-ups included.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import harness

import nginx
from nginx import _common, _http_common, _Instance, _nginx_string, pick_ports
from paired import paired
from payloads import CHAT_PATH, COMPLETION_JSON
from poolswitch_proc import PoolSwitch
from proc import BenchError, Processes
from report_checks import Check, check, info
from wrk import WrkResult

TLS_CONCURRENCY = (1, 16, 64)
TLS_ROUNDS = 3
HANDSHAKES_PER_10K = 100.0  # without reuse it would be 10,000
TARGETS = {
    "tp": "PoolSwitch to nginx, plain",
    "t": "PoolSwitch to nginx over TLS",
}


def progress(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


@dataclass
class Handshakes:
    requests: int
    connections: int
    resumed: int

    @property
    def per_10k(self) -> float:
        return self.connections / self.requests * 10_000 if self.requests else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "per_10k": self.per_10k}


def count_handshakes(lines: list[str]) -> Handshakes:
    """From `$connection $ssl_session_reused` lines: requests, distinct connections, and the
    connections whose handshake resumed a session."""
    first: dict[str, str] = {}
    for line in lines:
        parts = line.split()
        if len(parts) == 2:
            first.setdefault(parts[0], parts[1])
    return Handshakes(
        requests=sum(1 for line in lines if len(line.split()) == 2),
        connections=len(first),
        resumed=sum(1 for reused in first.values() if reused == "r"),
    )


class Certificates:
    """A CA and a server certificate for 127.0.0.1, as PEM files in `directory`."""

    def __init__(self, directory: Path) -> None:
        try:
            import trustme
        except ImportError:
            raise BenchError("trustme is not installed (pip install trustme)") from None
        directory.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        self.ca_file = directory / "ca.pem"
        self.cert_file = directory / "server.pem"
        self.key_file = directory / "server.key"
        ca.cert_pem.write_to_path(str(self.ca_file))
        cert.private_key_pem.write_to_path(str(self.key_file))
        with self.cert_file.open("wb") as fh:
            for blob in cert.cert_chain_pems:
                fh.write(blob.bytes())


def render_tls_config(w: Path, port: int, probe: int, certs: Certificates) -> str:
    body = _nginx_string(COMPLETION_JSON)
    return f"""{_common(w)}
http {{{_http_common(w)}
    log_format bench_tls '$connection $ssl_session_reused';

    # (t) the upstream of (a), over TLS; one log line per request to count connections
    server {{
        listen 127.0.0.1:{port} ssl backlog=4096;
        ssl_certificate {certs.cert_file};
        ssl_certificate_key {certs.key_file};
        ssl_protocols TLSv1.2 TLSv1.3;
        access_log {w}/tls.log bench_tls buffer=256k;
        location / {{
            return 200 {body};
        }}
    }}

    # plain HTTP on the side: a readiness probe for the harness (it does not speak TLS)
    server {{
        listen 127.0.0.1:{probe} backlog=16;
        location / {{
            return 200 ok;
        }}
    }}
}}
"""


class NginxTls(_Instance):
    """nginx answering as (a) does, over TLS (its own instance, on the load CPU)."""

    def __init__(self, procs: Processes, workdir: Path, cpu: int | None) -> None:
        super().__init__(procs, "nginx-tls", workdir, cpu)
        self.port, self.probe = pick_ports(2)
        self.log = workdir / "tls.log"

    def start_with(self, certs: Certificates) -> None:
        self._start(render_tls_config(self.workdir, self.port, self.probe, certs), (self.probe,))

    def handshakes(self) -> Handshakes:
        """Read after stop(): nginx flushes the buffered log when it exits."""
        if not self.log.exists():
            return Handshakes(0, 0, 0)
        return count_handshakes(self.log.read_text().splitlines())


class Harness(harness.Harness, Protocol):
    """What this section uses of run.py's Bench."""

    def load(self, target: str, url: str, conc: int) -> WrkResult: ...


def _rps(run: WrkResult) -> float:
    return run.rps


def run_section(
    bench: Harness, plain_upstream_port: int
) -> tuple[dict[str, dict[int, WrkResult]], Handshakes]:
    """(t) and (tp), paired: the median run of each per concurrency, and (t)'s handshakes."""
    certs = Certificates(bench.tmp / "tls")
    server = NginxTls(bench.procs, bench.tmp / "nginx-tls", bench.pinning.load_cpu)
    server.start_with(certs)
    plain: PoolSwitch | None = None
    secure: PoolSwitch | None = None
    try:
        plain = bench.start_poolswitch("poolswitch-tp", nginx.url(plain_upstream_port), 2)
        secure = bench.start_poolswitch(
            "poolswitch-t",
            f"https://127.0.0.1:{server.port}",
            2,
            settings={"upstream_ca_file": str(certs.ca_file)},
        )
        bench.check_forwarding(plain)
        bench.check_forwarding(secure)
        sides: list[tuple[str, Callable[[int], WrkResult]]] = [
            ("tp", functools.partial(bench.load, "tp", plain.url(CHAT_PATH))),
            ("t", functools.partial(bench.load, "t", secure.url(CHAT_PATH))),
        ]
        runs = paired(sides, TLS_CONCURRENCY, TLS_ROUNDS, _rps)
    finally:
        for started in (secure, plain):
            if started is not None:
                bench.stop_poolswitch(started)
        server.stop()
    counted = server.handshakes()
    progress(
        f"(t) nginx TLS log: {counted.requests:,} requests on {counted.connections} "
        f"connections ({counted.resumed} resumed): {counted.per_10k:.2f} handshakes per 10,000"
    )
    if counted.requests == 0:
        raise BenchError("the TLS upstream's access log is empty")
    return runs, counted


def checks(runs: dict[str, dict[int, WrkResult]], handshakes: Handshakes | None) -> list[Check]:
    def run(target: str, conc: int) -> WrkResult | None:
        return runs.get(target, {}).get(conc)

    out: list[Check] = []
    for conc in (16, 64):
        t, tp = run("t", conc), run("tp", conc)
        ratio = t.rps / tp.rps if t and tp and tp.rps > 0 else None
        out.append(info(f"t/tp req/s, c={conc} (HTTPS vs plain upstream)", ratio, "{:.3f}"))
    for conc, what in ((1, "p50"), (64, "p99")):
        t, tp = run("t", conc), run("tp", conc)
        added = None
        if t and tp:
            added = (t.p50_ms - tp.p50_ms) if what == "p50" else (t.p99_ms - tp.p99_ms)
        out.append(info(f"added {what} at c={conc} (t - tp, HTTPS upstream)", added, "{:+.3f} ms"))
    out.append(
        check(
            "TLS handshakes per 10,000 requests (t)",
            handshakes.per_10k if handshakes and handshakes.requests else None,
            "{:.2f}",
            f"<= {HANDSHAKES_PER_10K:g}",
            lambda v: v <= HANDSHAKES_PER_10K,
        )
    )
    return out


def render(handshakes: Handshakes | None) -> list[str]:
    if handshakes is None:
        return []
    return [
        "",
        "HTTPS upstream (t): connection reuse, from nginx's access log ($connection per request)",
        f"  requests {handshakes.requests:,}, connections (TLS handshakes) "
        f"{handshakes.connections} of which {handshakes.resumed} resumed a session: "
        f"{handshakes.per_10k:.2f} handshakes per 10,000 requests",
    ]
