"""Three PoolSwitch replicas behind nginx share one pool's key state through Redis.

    python examples/multi-replica/multi_replica.py [--requests N] [--concurrency C] [--keep-running]

It starts, on free 127.0.0.1 ports and in a temporary directory: a fake OpenAI-like upstream (a
thread of this script: key k1 answers 429 `insufficient_quota`, k2 and k3 answer 200),
redis-server, three `poolswitch start` replicas of one config (three keys, round_robin, storage
redis) and nginx as a round-robin load balancer in front of them. It sends N requests through
nginx, reads each replica's /metrics and /status, and checks that:

- the caller saw no error (every answer is a 200: the request that met k1 failed over);
- no request sent after k1's first failure carried k1, once PROPAGATION_BOUND had passed
  (requests already in flight may: their replica picked k1 before anyone knew);
- each replica's /metrics counts exactly the k1 attempts the upstream saw from it;
- each replica's /status shows k1 cooling_down (the state is shared).

Exit 0 when all hold, 1 with the reasons otherwise. Everything it started is stopped on exit,
Ctrl-C or SIGTERM. It needs the server (`pip install ./server`) and the Debian packages
redis-server and nginx, nothing else: the upstream is built in, so that the script does not
depend on the test-support package.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import http.client
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

KEYS = {"sk-example-k1": "k1", "sk-example-k2": "k2", "sk-example-k3": "k3"}
FAILING = "k1"
REPLICAS = ("A", "B", "C")
PROPAGATION_BOUND = 0.1
"""Seconds for a transition to reach every replica's key selection (the Redis store's bound)."""
START_TIMEOUT = 30.0
STOP_TIMEOUT = 40.0  # a replica drains for up to 30 s on SIGTERM
REQUEST_TIMEOUT = 10.0
SEQ = "x-example-request"  # numbers each request; PoolSwitch forwards it upstream

QUOTA = (
    b'{"error": {"message": "You exceeded your current quota, please check your plan and'
    b' billing details.", "type": "insufficient_quota", "param": null,'
    b' "code": "insufficient_quota"}}'
)
COMPLETION = (
    b'{"id": "chatcmpl-example", "object": "chat.completion", "model": "gpt-4o-mini",'
    b' "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello."},'
    b' "finish_reason": "stop"}], "usage": {"prompt_tokens": 5, "completion_tokens": 2,'
    b' "total_tokens": 7}}'
)


class Failed(Exception):
    """The example could not run; the message says why."""


def free_ports(n: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.add(int(s.getsockname()[1]))
    return list(ports)


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# -- the fake upstream -----------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """One request as the upstream saw it."""

    seq: int
    key_id: str
    answered: float  # time.monotonic() once the answer was written


class Upstream:
    """An OpenAI-like API on a thread: k1 is out of quota, the other keys answer 200."""

    def __init__(self) -> None:
        self.attempts: list[Attempt] = []
        self.lock = threading.Lock()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as PoolSwitch's client expects

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                auth = self.headers.get("authorization", "")
                key_id = KEYS.get(auth.removeprefix("Bearer "), "?")
                status, body = (429, QUOTA) if key_id == FAILING else (200, COMPLETION)
                if key_id == "?":
                    status, body = 401, b'{"error": {"code": "invalid_api_key"}}'
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                seq = int(self.headers.get(SEQ) or -1)
                with upstream.lock:
                    upstream.attempts.append(Attempt(seq, key_id, time.monotonic()))

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


# -- the processes ---------------------------------------------------------------------------


class Process:
    """A child process, its output in a log file; stop() is bounded and idempotent."""

    def __init__(self, name: str, args: list[str], log: Path) -> None:
        self.name = name
        self.log = log
        with log.open("wb") as out:
            # a session of its own: Ctrl-C reaches this script alone, which stops it in order
            self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, ready: Callable[[], bool], timeout: float = START_TIMEOUT) -> None:
        """Poll `ready()` every 50 ms; fail when the process exits or time is up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = None if self.proc is None else self.proc.poll()
            if code is not None:
                raise Failed(f"{self.name} exited with {code} at start:\n{self.tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if ready():
                    return
            time.sleep(0.05)
        raise Failed(f"{self.name} not ready after {timeout:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            text = self.log.read_text(errors="replace").splitlines()
            return "\n".join(f"    {line}" for line in text[-lines:])
        return "    (no output)"

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def need(command: str) -> str:
    found = shutil.which(command) or shutil.which(command, path="/usr/sbin:/usr/bin")
    if found is None:
        raise Failed(f"{command} not found: install it (Debian: apt-get install {command})")
    return found


def redis_answers(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
        s.sendall(b"PING\r\n")
        return s.recv(16).startswith(b"+PONG")


def healthy(port: int) -> bool:
    return http_get(port, "/health")[0] == 200


def poolswitch_yaml(upstream_port: int, redis_port: int) -> str:
    keys = "".join(f"  - {{id: {kid}, value: {value}}}\n" for value, kid in KEYS.items())
    return f"""\
listen_host: 127.0.0.1
upstream_base_url: http://127.0.0.1:{upstream_port}
provider: openai
strategy: round_robin
verify_path: null
storage:
  backend: redis
  redis_url: redis://127.0.0.1:{redis_port}/0
  namespace: multi-replica-example
keys:
{keys}"""


def nginx_conf(prefix: Path, port: int, replicas: list[int]) -> str:
    servers = "".join(f"        server 127.0.0.1:{p};\n" for p in replicas)
    temp = "".join(
        f"    {kind}_temp_path {prefix}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""\
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
{temp}    upstream poolswitch {{
{servers}        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://poolswitch;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_next_upstream off;
            add_header X-Replica $upstream_addr always;
        }}
    }}
}}
"""


# -- the traffic -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    seq: int
    sent: float  # time.monotonic() before the request was written: a lower bound of its picks
    replica_port: int | None  # from nginx's X-Replica header
    error: str | None


def send(lb_port: int, seqs: list[int]) -> list[Answer]:
    """Send requests `seqs` one after another on one keep-alive connection."""
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    conn = http.client.HTTPConnection("127.0.0.1", lb_port, timeout=REQUEST_TIMEOUT)
    answers = []
    for seq in seqs:
        sent = time.monotonic()
        try:
            headers = {"content-type": "application/json", SEQ: str(seq)}
            conn.request("POST", "/v1/chat/completions", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as exc:
            answers.append(Answer(seq, sent, None, f"{type(exc).__name__}: {exc}"))
            conn.close()
            continue
        port = response.getheader("x-replica", "").rpartition(":")[2]
        error = None if response.status == 200 else f"status {response.status}"
        answers.append(Answer(seq, sent, int(port) if port.isdigit() else None, error))
    conn.close()
    return answers


def traffic(lb_port: int, requests: int, concurrency: int) -> list[Answer]:
    lanes = [list(range(i, requests, concurrency)) for i in range(concurrency)]
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        return [a for lane in pool.map(lambda s: send(lb_port, s), lanes) for a in lane]


# -- the checks ------------------------------------------------------------------------------

ATTEMPTS = re.compile(r'^poolswitch_upstream_attempts_total\{.*key_id="(\S+?)".*\} (\S+)$')
PROPAGATION = re.compile(r"^poolswitch_state_propagation_seconds_(sum|count) (\S+)$")


def scrape(port: int) -> tuple[int, str, str]:
    """A replica's k1 attempts (its own /metrics), k1's state and the storage health (its
    /status), and the transitions it applied from the others (count x mean delay)."""
    attempts, found = 0.0, {"sum": 0.0, "count": 0.0}
    for line in http_get(port, "/metrics")[1].decode().splitlines():
        if (m := ATTEMPTS.match(line)) and m[1] == FAILING:
            attempts += float(m[2])
        elif m := PROPAGATION.match(line):
            found[m[1]] = float(m[2])
    status = json.loads(http_get(port, "/status")[1])
    key: dict[str, Any] = next((k for k in status["keys"] if k["id"] == FAILING), {})
    state = f"{key.get('state', 'missing')} ({key.get('reason') or '-'})"
    state += f", storage {status['storage_health']['status']}"
    n = int(found["count"])
    applied = f"{n} x {found['sum'] / n * 1000:.1f} ms" if n else "-"
    return int(attempts), state, applied


def check(answers: list[Answer], attempts: list[Attempt], ports: dict[str, int]) -> list[str]:
    """Print the table, the k1 timeline and the summary line; return what failed."""
    problems = []
    names = {port: name for name, port in ports.items()}
    via = {a.seq: names.get(a.replica_port or 0, "?") for a in answers}
    errors = [a for a in answers if a.error is not None]
    if errors:
        shown = ", ".join(f"#{a.seq}: {a.error}" for a in errors[:5])
        problems.append(f"the caller saw {len(errors)} error(s): {shown}")
    failing = sorted((a for a in attempts if a.key_id == FAILING), key=lambda a: a.answered)
    seen = {name: sum(1 for a in failing if via.get(a.seq) == name) for name in ports}

    head = ("replica", "served", f"{FAILING} sent (/metrics)", f"{FAILING} seen (upstream)")
    rows = [(*head, f"{FAILING} in /status", "applied from others")]
    cooling = 0
    for name, port in ports.items():
        sent, state, applied = scrape(port)
        served = sum(1 for s in via.values() if s == name)
        rows.append((f"{name} :{port}", str(served), str(sent), str(seen[name]), state, applied))
        cooling += state.startswith("cooling_down")
        if not state.startswith("cooling_down"):
            problems.append(f"replica {name}: /status shows {FAILING} {state}")
        if sent != seen[name]:
            problems.append(
                f"replica {name}: /metrics counts {sent} {FAILING} attempts, the "
                f"upstream saw {seen[name]}"
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) + 2)]
    print()
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())

    if not failing:
        problems.append(f"the upstream never saw {FAILING}")
        return problems
    # A request sent before the first failure was answered may carry k1 (its replica picked k1
    # before anyone knew); one sent more than PROPAGATION_BOUND after it must not.
    first, sent_at = failing[0], {a.seq: a.sent for a in answers}
    after = sum(1 for a in answers if a.sent > first.answered)
    before = window = 0
    print(f"\n{FAILING} attempts, by when their request was sent:")
    for a in failing:
        offset = (sent_at.get(a.seq, 0.0) - first.answered) * 1000
        if a is first:
            print(f"  #{a.seq} via {via.get(a.seq)}: the first failure")
            continue
        when = "before" if offset <= 0 else "after"
        print(f"  #{a.seq} via {via.get(a.seq)}: sent {abs(offset):.1f} ms {when} it was answered")
        if offset <= 0:
            before += 1
        elif offset <= PROPAGATION_BOUND * 1000:
            window += 1
        else:
            problems.append(
                f"#{a.seq} via {via.get(a.seq)} sent {FAILING} {offset:.0f} ms "
                f"after its failure was answered"
            )
    late = len(failing) - 1 - before - window
    print(
        f"  = the first failure + {before} already in flight + {window} sent within "
        f"{PROPAGATION_BOUND * 1000:.0f} ms after it + {late} later"
    )
    per = ", ".join(f"{name} {seen[name]}" for name in ports)
    print(
        f"\nsummary: {'FAILED' if problems else 'ok'}: {len(answers)} requests, {len(errors)} "
        f"errors; {FAILING} sent upstream {len(failing)} time(s) ({per}), by {window + late} of "
        f"the {after} requests sent after its first failure; {FAILING} cooling_down on "
        f"{cooling} of {len(ports)} replicas"
    )
    return problems


# -- the run ---------------------------------------------------------------------------------


def run(args: argparse.Namespace, work: Path, stack: contextlib.ExitStack) -> list[str]:
    redis_exe, nginx_exe = need("redis-server"), need("nginx")
    redis_port, lb_port, *replica_ports = free_ports(2 + len(REPLICAS))
    ports = dict(zip(REPLICAS, replica_ports, strict=True))

    upstream = Upstream()
    stack.callback(upstream.stop)
    print(f"upstream      127.0.0.1:{upstream.port}  (k1: 429 insufficient_quota; k2, k3: 200)")

    redis_args = ["--bind", "127.0.0.1", "--port", str(redis_port), "--save", ""]
    redis_args += ["--appendonly", "no", "--dir", str(work)]
    redis = Process("redis-server", [redis_exe, *redis_args], work / "redis.log")
    stack.callback(redis.stop)
    redis.wait_ready(lambda: redis_answers(redis_port))
    print(f"redis-server  127.0.0.1:{redis_port}")

    config = work / "poolswitch.yaml"
    config.write_text(poolswitch_yaml(upstream.port, redis_port))
    replicas = []
    for name, port in ports.items():
        start = ["start", "--config", str(config), "--port", str(port), "--log-level", "warning"]
        replica = Process(
            f"replica {name}", [sys.executable, "-m", "poolswitch", *start], work / f"{name}.log"
        )
        stack.callback(replica.stop)
        replicas.append((replica, port))
    for replica, port in replicas:
        replica.wait_ready(lambda port=port: healthy(port))  # type: ignore[misc]
        print(f"{replica.name}     127.0.0.1:{port}  (poolswitch start, storage redis)")

    prefix = work / "nginx"
    prefix.mkdir()
    (prefix / "nginx.conf").write_text(nginx_conf(prefix, lb_port, replica_ports))
    nginx_args = ["-p", str(prefix), "-e", str(prefix / "error.log")]
    nginx_args += ["-c", str(prefix / "nginx.conf"), "-g", "daemon off;"]
    nginx = Process("nginx", [nginx_exe, *nginx_args], prefix / "out.log")
    stack.callback(nginx.stop)
    nginx.wait_ready(lambda: healthy(lb_port))
    print(f"nginx         127.0.0.1:{lb_port}  (round robin over the three replicas)")

    print(f"\nsending {args.requests} requests, {args.concurrency} at a time, through nginx")
    answers = traffic(lb_port, args.requests, args.concurrency)
    with upstream.lock:
        attempts = list(upstream.attempts)
    try:
        problems = check(answers, attempts, ports)
    except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
        raise Failed(f"reading a replica's /metrics or /status: {exc!r}") from None
    if args.keep_running:
        print(f"\nstill running: curl 127.0.0.1:{lb_port}/status   (Ctrl-C stops everything)")
        while True:
            time.sleep(3600)
    return problems


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=150, help="requests to send (150)")
    parser.add_argument("--concurrency", type=int, default=1, help="requests at once (1)")
    parser.add_argument("--keep-running", action="store_true", help="then run until Ctrl-C")
    args = parser.parse_args()
    if args.requests < 1 or not 1 <= args.concurrency <= 64:
        parser.error("--requests must be at least 1 and --concurrency 1-64")
    signal.signal(signal.SIGINT, _interrupt)  # even where SIGINT came in ignored (`cmd &`)
    signal.signal(signal.SIGTERM, _interrupt)
    work = Path(tempfile.mkdtemp(prefix="poolswitch-multi-replica-"))
    stack = contextlib.ExitStack()
    problems: list[str] = []
    try:
        problems = run(args, work, stack)
    except Failed as exc:
        problems = [str(exc)]
    except KeyboardInterrupt:
        problems = ["interrupted"]
    finally:
        # a second Ctrl-C must not leave a process behind: every stop is bounded anyway
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.close()
        shutil.rmtree(work, ignore_errors=True)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
