"""Fuzz: raw, malformed and hostile requests against a live `poolswitch start` (a subprocess in
front of the fake upstream). Per input, the proxy answers or closes the connection within a
bound, never logs a traceback or an ERROR, never answers `internal_error`, and no response byte
carries a key value. Seeded (see fuzzing.py) and bounded in count and time; the invariants do
not pin statuses, so limits, host checks and caller auth can change the answers.

Inputs are generated request by request from the seed: structured requests (methods, targets
with `..`, `%2e`, absolute-form, CRLF/NUL injections, huge ones; duplicate, folded, invalid,
huge and many headers; Content-Length mismatches, chunked garbage, pipelining) and byte-level
mutations of valid requests. An input is "complete" when the proxy has everything it needs to
answer; an incomplete one (a body shorter than declared, a chunked body without its last chunk,
a mutation) may be left waiting, and is closed by the fuzzer after a short wait.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from poolswitch_testing.fake_upstream import FakeUpstream

from fuzzing import REPLAY, SEED, SOCKET_INPUTS

pytestmark = pytest.mark.fuzz

KEYS = {
    "sk-fuzz-alpha-0001-SECRET": "a",
    "sk-fuzz-bravo-0002-SECRET": "b",
    "sk-fuzz-charlie-0003-SECRET": "c",
}
ANSWER_BOUND = 5.0  # seconds: a complete request gets an answer or a close by then
WAIT_INCOMPLETE = 0.3  # seconds an incomplete request is left waiting before the fuzzer closes
START_TIMEOUT = 20.0
RUN_BUDGET = 600.0 if SOCKET_INPUTS > 1000 else 90.0  # stop generating after this long


@dataclass
class Case:
    data: bytes
    complete: bool
    what: str


# -- generation ---------------------------------------------------------------------------------

# CONNECT: refused with a JSON 400 and a close (protocol.py); it once left its connection open.
METHODS = [b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"HEAD", b"OPTIONS", b"TRACE", b"CONNECT"]
ODD_METHODS = [b"get", b"G ET", b"", b"PRI", b"\x00POST", b"POST\x00", b"M" * 5000, b"\xffGET"]
TARGETS = [
    b"/v1/chat/completions",
    b"/v1/models",
    b"/v1/models?limit=1&after=x",
    b"/health",
    b"/status",
    b"/metrics",
    b"/poolswitch/admin/keys",
    b"/poolswitch/admin/keys/a/disable",
    b"/../etc/passwd",
    b"/v1/../../admin",
    b"/%2e%2e/%2e%2e/etc/passwd",
    b"/v1/%2E%2E/%2e%2E/x",
    b"/v1/%252e%252e/x",
    b"/v1/..%2f..%2fx",
    b"/v1/.%2e/x",
    b"http://evil.example/v1/models",
    b"https://evil.example:443/v1/models",
    b"//evil.example/v1/models",
    b"*",
    b"evil.example:443",
    b"/v1/x?key=%00&a=%0d%0aX-Injected:%201",
    b"/v1/\x00x",
    b"/v1/x\r\nX-Injected: 1",
    b"/v1/x\rX",
    b"/v1/x\nX-Injected: 1",
    b"/v1/\xff\xfe",
    b"/v1/caf\xc3\xa9",
    b"/v1/x#frag",
    b"/v1/x?" + b"a=b&" * 2000,
    b"",
]
VERSIONS = (
    [b"HTTP/1.1"] * 24
    + [b"HTTP/1.0"] * 2
    + [
        b"HTTP/1.0",
        b"HTTP/2.0",
        b"HTTP/1.1x",
        b"HTTP/9.9",
        b"",
        b"http/1.1",
    ]
)
HOSTS = [b"127.0.0.1", b"localhost", b"evil.example", b"", b"127.0.0.1:1", b"[::1]", b"a\x00b"]
ODD_HEADERS = [
    (b"Transfer-Encoding", b"chunked, identity"),
    (b"Transfer-Encoding", b" chunked"),
    (b"Transfer-Encoding", b"identity"),
    (b"Content-Length", b"-1"),
    (b"Content-Length", b"+5"),
    (b"Content-Length", b"1,1"),
    (b"Content-Length", b"99999999999999999999999"),
    (b"Content-Length", b"0x10"),
    (b"Connection", b"x-api-key, authorization"),
    (b"Connection", b"close"),
    (b"Connection", b"keep-alive, upgrade"),
    (b"Upgrade", b"websocket"),
    (b"Upgrade", b"h2c"),
    (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
    (b"Sec-WebSocket-Version", b"13"),
    (b"Expect", b"100-continue"),
    (b"Authorization", b"Bearer caller-token"),
    (b"x-api-key", b"caller-key"),
    (b"x-goog-api-key", b"caller-key"),
    (b"x-poolswitch-token", b"wrong"),
    (b"Origin", b"https://evil.example"),
    (b"Accept-Encoding", b"gzip, br, deflate"),
    (b"Content-Encoding", b"gzip"),
    (b"X-Folded", b"first\r\n continued"),
    (b"X-Folded", b"first\r\n\tcontinued"),
    (b"Bad Name", b"x"),
    (b"Bad:Name", b"x"),
    (b"", b"empty name"),
    (b"X-Nul", b"a\x00b"),
    (b"X-Ctl", b"a\x01\x7fb"),
    (b"X-Utf8", "café €".encode()),
    (b"X-Latin1", b"caf\xe9"),
    (b"\xff\xfe", b"x"),
    (b"X-Forwarded-For", b"1.2.3.4"),
    (b"Cookie", b"a=b"),
]


def _head(rng: random.Random) -> tuple[bytes, list[tuple[bytes, bytes]], bytes]:
    method = rng.choice(METHODS) if rng.random() < 0.9 else rng.choice(ODD_METHODS)
    target = rng.choice(TARGETS) if rng.random() < 0.6 else rng.choice(TARGETS[:3])
    if rng.random() < 0.03:
        target = b"/v1/" + b"a" * rng.choice([8000, 70_000])
    version = rng.choice(VERSIONS)
    line = b" ".join(p for p in (method, target, version) if p or rng.random() < 0.5)
    headers: list[tuple[bytes, bytes]] = []
    if rng.random() < 0.9:
        headers.append((b"Host", rng.choice(HOSTS)))
    if rng.random() < 0.1:
        headers.append((b"Host", rng.choice(HOSTS)))  # duplicate Host
    for _ in range(rng.choice([0, 0, 0, 1, 1, 2, 3, 5])):
        headers.append(rng.choice(ODD_HEADERS))
    roll = rng.random()
    if roll < 0.04:
        headers += [(f"X-Many-{i}".encode(), b"v") for i in range(rng.choice([150, 1000, 3000]))]
    elif roll < 0.08:
        headers.append((b"X-Huge", b"v" * rng.choice([8000, 70_000, 200_000])))
    elif roll < 0.10:
        headers += [(b"X-Dup", b"v")] * 200
    return line, headers, method


def _body(
    rng: random.Random, headers: list[tuple[bytes, bytes]], method: bytes
) -> tuple[bytes, bool, str]:
    """(body bytes, complete, what) — adds the framing headers it needs."""
    payload = rng.choice(
        [b"", b'{"model":"m","messages":[]}', b"x" * rng.randint(1, 3000), os.urandom(64)]
    )
    mode = rng.choice(["none", "exact", "exact", "short", "long", "double", "chunked", "garbage"])
    if mode == "none" or (mode == "exact" and method in (b"GET", b"HEAD") and rng.random() < 0.5):
        return b"", True, "no body"
    if mode == "exact":
        headers.append((b"Content-Length", str(len(payload)).encode()))
        return payload, True, "body"
    if mode == "short":  # declared longer than sent: the proxy may wait for the rest
        headers.append((b"Content-Length", str(len(payload) + rng.randint(1, 100_000)).encode()))
        return payload, False, "short body"
    if mode == "long":  # the extra bytes are a second (garbage) request on the connection
        headers.append((b"Content-Length", str(max(len(payload) - 5, 0)).encode()))
        return payload + b"\r\n\r\n", False, "long body"
    if mode == "double":
        headers.append((b"Content-Length", str(len(payload)).encode()))
        headers.append((b"Content-Length", str(len(payload) + 1).encode()))
        return payload, False, "two content-lengths"
    headers.append((b"Transfer-Encoding", b"chunked"))
    if mode == "chunked":
        chunks = b"".join(
            b"%x\r\n%s\r\n" % (len(payload[i : i + 100]), payload[i : i + 100])
            for i in range(0, len(payload), 100)
        )
        if rng.random() < 0.3:
            headers.append((b"Content-Length", str(len(payload)).encode()))  # smuggling shape
            return chunks + b"0\r\n\r\n", False, "chunked + content-length"
        return chunks + b"0\r\n\r\n", True, "chunked"
    garbage = rng.choice(
        [
            b"zz\r\nhello\r\n0\r\n\r\n",
            b"ffffffffffffffffff\r\nx\r\n",
            b"5\r\nhello",
            b"5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n",
            b"-1\r\nx\r\n0\r\n\r\n",
            b"3\r\nhello\r\n0\r\n\r\n",
            b"\r\n\r\n",
            b"0\r\n",
        ]
    )
    return garbage, False, "chunked garbage"


def _structured(rng: random.Random) -> Case:
    line, headers, method = _head(rng)
    body, complete, what = _body(rng, headers, method)
    eol = b"\r\n" if rng.random() < 0.9 else rng.choice([b"\n", b"\r", b"\r\r\n"])
    head = line + eol + b"".join(n + b": " + v + eol for n, v in headers) + eol
    if eol != b"\r\n" or b"Expect" in head:
        complete = False
    framing = [n for n, _ in headers if n.lower() in (b"transfer-encoding", b"content-length")]
    if len(framing) > (0 if what == "no body" else 1):
        complete = False  # an odd framing header beside (or instead of) the body's own
    if any(b in line for b in (b"\r", b"\n")) or any(b"\r\n" in v for _, v in headers):
        complete = False  # an injected line break ends the head early or splits a header
    return Case(head + body, complete, f"structured ({what})")


VALID = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b'Content-Length: 27\r\n\r\n{"model":"m","messages":[]}'
)


def _mutated(rng: random.Random) -> Case:
    data = bytearray(VALID if rng.random() < 0.7 else _structured(rng).data)
    for _ in range(rng.randint(1, 8)):
        op = rng.random()
        at = rng.randrange(len(data) + 1)
        if op < 0.4 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif op < 0.7:
            data[at:at] = rng.choice([b"\r\n", b"\x00", b":", b" ", b"\r", b"\n", os.urandom(3)])
        else:
            del data[at : at + rng.randint(1, 10)]
    return Case(bytes(data), False, "mutation")


def _pipelined(rng: random.Random) -> Case:
    first, second = _structured(rng), _structured(rng)
    return Case(first.data + second.data, False, "pipelined")


def cases(seed: int, count: int) -> Iterator[Case]:
    rng = random.Random(seed)
    for _ in range(count):
        roll = rng.random()
        if roll < 0.6:
            yield _structured(rng)
        elif roll < 0.9:
            yield _mutated(rng)
        else:
            yield _pipelined(rng)


# -- the proxy under test -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _health(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


@dataclass
class Proxy:
    url: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text("utf-8", "replace")

    def open_fds(self) -> int | None:
        try:
            return len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        except OSError:  # not Linux
            return None

    def stop(self) -> float:
        """SIGTERM and wait; the seconds it took to exit."""
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=35)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return time.monotonic() - started


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Proxy]:
    with FakeUpstream(KEYS) as upstream:
        c_value = next(v for v, i in KEYS.items() if i == "c")
        # key c answers 400 (relayed as it is) with its own value in the body: the relay must
        # redact it; key b is rate limited once
        upstream.script("c", {"kind": "text", "status": 400, "body": f"bad key {c_value} here"})
        upstream.script("b", {"kind": "rate_limit"}, {"kind": "ok"})
        config = tmp_path / "poolswitch.yaml"
        config.write_text(
            f"upstream_base_url: {upstream.url}\nkeys:\n"
            + "".join(f"  - {{id: {i}, value: {v}}}\n" for v, i in KEYS.items())
        )
        port = _free_port()
        log = tmp_path / "proxy.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "poolswitch", "start", "--config", str(config)),
                    *("--host", "127.0.0.1", "--port", str(port), "--log-level", "info"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not _health(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"proxy did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.05)
            yield Proxy(url, port, proc, log)
        finally:
            Proxy(url, port, proc, log).stop()


# -- one exchange -------------------------------------------------------------------------------


def _response_done(data: bytes, head_request: bool) -> bool:
    """True when `data` holds at least one whole response (by its framing)."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return False
    head = data[:end].lower()
    status = head[9:12]
    if status.startswith(b"1") and status != b"101":
        rest = data[end + 4 :]
        return _response_done(rest, head_request) if rest else False
    if head_request or status in (b"204", b"304", b"101"):
        return True
    body = data[end + 4 :]
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip() == b"content-length":
            try:
                return len(body) >= int(value.strip())
            except ValueError:
                return False
        if name.strip() == b"transfer-encoding" and b"chunked" in value:
            return body.endswith(b"0\r\n\r\n")
    return False  # read until close


def exchange(port: int, case: Case) -> tuple[bytes, str]:
    """Send `case`, read what comes back. Returns (response bytes, how it ended)."""
    bound = ANSWER_BOUND if case.complete else WAIT_INCOMPLETE
    # HEAD: no body; CONNECT: a 2xx turns the connection into a tunnel, no framing either
    head_request = case.data.startswith((b"HEAD ", b"CONNECT "))
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_BOUND) as sock:
        with contextlib.suppress(OSError):  # the proxy refused early (a limit) and closed
            sock.sendall(case.data)
        deadline = time.monotonic() + bound
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return received, "waiting"
            readable, _, _ = select.select([sock], [], [], left)
            if not readable:
                continue
            try:
                chunk = sock.recv(65536)
            except OSError:
                return received, "reset"
            if not chunk:
                return received, "closed"
            received += chunk
            if _response_done(received, head_request):
                deadline = min(deadline, time.monotonic() + 0.05)  # and anything right after


def _secrets() -> list[bytes]:
    forms: set[bytes] = set()
    for value in KEYS:
        forms.update({value.encode(), quote(value, safe="").encode()})
    return sorted(forms)


def _new_lines(log: Path, offset: int) -> tuple[str, int]:
    with log.open("rb") as fh:
        fh.seek(offset)
        data = fh.read()
    return data.decode("utf-8", "replace"), offset + len(data)


def test_raw_requests_never_break_the_proxy(proxy: Proxy) -> None:
    print(f"socket fuzz: {SOCKET_INPUTS} inputs, {REPLAY}")
    secrets = _secrets()
    failures: list[str] = []
    exchange(proxy.port, Case(VALID, True, "warm-up"))  # the upstream connection is open
    fds_before = proxy.open_fds()
    offset = 0
    started = time.monotonic()
    sent = 0
    for n, case in enumerate(cases(SEED, SOCKET_INPUTS)):
        if time.monotonic() - started > RUN_BUDGET:
            break
        sent += 1
        response, ended = exchange(proxy.port, case)
        problems = []
        if case.complete and ended == "waiting" and not response:
            problems.append(f"no answer and no close within {ANSWER_BOUND:g} s")
        if b"internal_error" in response:
            problems.append("answered internal_error")
        problems += [f"key value in the response ({s[:12]!r}...)" for s in secrets if s in response]
        text, offset = _new_lines(proxy.log, offset)
        if "Traceback" in text or " ERROR " in text:
            problems.append(f"proxy logged: {text[-1500:]!r}")
        if proxy.proc.poll() is not None:
            problems.append(f"proxy exited with {proxy.proc.returncode}")
        if problems:
            failures.append(
                f"input #{n} ({case.what}, {REPLAY}): {'; '.join(problems)}\n"
                f"  sent {case.data[:400]!r}{'...' if len(case.data) > 400 else ''}\n"
                f"  got  {response[:300]!r}"
            )
            if proxy.proc.poll() is not None or len(failures) >= 10:
                break
    assert _health(proxy.url), f"proxy unhealthy after the fuzz ({REPLAY})"
    time.sleep(0.5)  # let the proxy see the last connections close
    fds_after = proxy.open_fds()
    if fds_before is not None and fds_after is not None:
        assert fds_after <= fds_before + 16, (
            f"open file descriptors {fds_before} -> {fds_after} after {sent} inputs ({REPLAY})"
        )
    took = proxy.stop()
    assert took < 10, f"SIGTERM took {took:.1f} s with no caller connected ({REPLAY})"
    log = proxy.log_text()
    assert "Traceback" not in log, f"traceback while stopping: {log[-1500:]} ({REPLAY})"
    leaked = [s for s in secrets if s.decode() in log]
    assert not leaked, f"key value in the proxy's log ({REPLAY})"
    assert not failures, f"{len(failures)} of {sent} inputs failed:\n" + "\n".join(failures)
    assert sent >= min(SOCKET_INPUTS, 50), f"only {sent} inputs within {RUN_BUDGET:g} s"
