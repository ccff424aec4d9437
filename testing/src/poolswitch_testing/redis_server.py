"""A real Redis for tests: Debian's `redis-server` on a free 127.0.0.1 port, in a child process,
waited on until PING answers, stopped with SIGTERM (then SIGKILL). Every wait is bounded.

    redis = RedisServer(tmp_path, password="s3cret", appendonly=True)
    redis.start()          # raises RedisStartError after START_TIMEOUT, with the log's tail
    ...                    # redis.url ("redis://:s3cret@127.0.0.1:<port>/0"), redis.port
    redis.kill()           # SIGKILL;  redis.pause() / redis.resume(): SIGSTOP / SIGCONT
    redis.restart()        # stop, then start again on the same port with the same data dir
    redis.stop()

The settings are written to `<directory>/redis.conf` (so a password is not on the command line);
the data (`dump.rdb`, `appendonlydir/`) stays in `<directory>`, the log goes to
`<directory>/redis.log`. By default nothing is persisted (`save ""`, no AOF): a stop or kill
loses the data. `appendonly=True` keeps it across a `stop()`/`restart()` (and across a `kill()`
up to the last fsync, per `appendfsync`).

It talks to the server with a minimal RESP2 client of its own (`command()`, `ping()`,
`flushall()`), so this package needs no Redis client library.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Literal, Union
from urllib.parse import quote

from poolswitch_testing.proxy import free_port

__all__ = [
    "RedisReplyError",
    "RedisServer",
    "RedisServerError",
    "RedisServerNotFound",
    "RedisStartError",
    "RespValue",
    "find_redis_server",
]

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
COMMAND_TIMEOUT = 2.0
POLL_INTERVAL = 0.02
TAIL_LINES = 25
PORT_TRIES = 3
MAX_REPLY_BYTES = 64 * 1024 * 1024
NOT_FOUND = "redis-server not found: apt-get install redis-server"

RespValue = Union[bytes, int, None, "list[RespValue]"]


class RedisServerError(RuntimeError):
    """Base of this module's errors.

    RedisServerError
     ├── RedisServerNotFound   the executable is not installed
     ├── RedisStartError       it did not answer PING in time (message has the log's tail)
     └── RedisReplyError       the server answered a command with an error reply
    """


class RedisServerNotFound(RedisServerError):
    """The `redis-server` executable is not installed."""


class RedisStartError(RedisServerError):
    """The server did not start (no PONG within the start timeout)."""


class RedisReplyError(RedisServerError):
    """An error reply (`-ERR ...`, `-WRONGPASS ...`, `-LOADING ...`)."""


def find_redis_server(executable: str = "redis-server") -> str:
    """The path of `executable` (a name on PATH or a path); RedisServerNotFound if absent."""
    found = shutil.which(executable)
    if found is None:
        looked = "" if executable == "redis-server" else f" (looked for {executable!r})"
        raise RedisServerNotFound(NOT_FOUND + looked)
    return found


def encode_command(*args: str | bytes | int) -> bytes:
    """One command as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class _Reader:
    """Reads RESP2 replies from a socket (every read bounded by the socket's timeout)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("redis-server closed the connection")
        self.buffer += chunk
        if len(self.buffer) > MAX_REPLY_BYTES:
            raise RedisServerError("reply too large")

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._fill()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def _exactly(self, size: int) -> bytes:
        while len(self.buffer) < size + 2:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size + 2 :]
        return data

    def reply(self, depth: int = 0) -> RespValue:
        if depth > 32:
            raise RedisServerError("reply nested too deep")
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            raise RedisReplyError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self._exactly(size)
        if kind == b"*":
            count = int(rest)
            if count < 0:
                return None
            return [self.reply(depth + 1) for _ in range(count)]
        raise RedisServerError(f"unexpected reply type {kind!r}")


class RedisServer:
    """One `redis-server` process; see the module docstring."""

    def __init__(
        self,
        directory: Path,
        *,
        port: int | None = None,
        password: str | None = None,
        executable: str = "redis-server",
        appendonly: bool = False,
        appendfsync: Literal["always", "everysec", "no"] = "everysec",
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.executable = find_redis_server(executable)
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.config_path = directory / "redis.conf"
        self.log_path = directory / "redis.log"
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.start_timeout = start_timeout
        self.exit_code: int | None = None
        self._password = password
        self._port = port
        self._fixed_port = port is not None
        self._paused = False
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # -- what tests read ------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RedisServerError("not started yet: the port is chosen by start()")
        return self._port

    @property
    def url(self) -> str:
        """`redis://127.0.0.1:<port>/0`, with `:<password>@` when a password is set."""
        auth = "" if self._password is None else f":{quote(self._password, safe='')}@"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def paused(self) -> bool:
        return self._paused

    def __repr__(self) -> str:  # never the password
        auth = "" if self._password is None else ", password=<set>"
        return f"RedisServer(port={self._port}{auth}, alive={self.alive()})"

    # -- life cycle -----------------------------------------------------------------------

    def start(self) -> RedisServer:
        """Start and wait until PING answers PONG; raise RedisStartError (with the log's tail)
        if it exits first or does not answer within `start_timeout`. The first start picks a
        free port (another if redis-server exits, as when it was taken meanwhile) unless one
        was given; later starts reuse it."""
        if self.alive():
            raise RedisServerError("already running")
        tries = 1 if self._fixed_port else PORT_TRIES
        for _ in range(tries):
            if not self._fixed_port:
                self._port = free_port()
            if self._launch():
                self._fixed_port = True  # restarts keep this port
                return self
        raise RedisStartError(
            f"redis-server exited (code {self.exit_code}) before answering PING on "
            f"127.0.0.1:{self._port}; last lines of {self.log_path.name}:\n{self.tail()}"
        )

    def _write_config(self) -> None:
        lines = [
            "bind 127.0.0.1",
            f"port {self.port}",
            # loopback only; protected mode only refuses non-loopback clients, so it stays on
            "protected-mode yes",
            "daemonize no",
            "supervised no",
            f'dir "{_conf_escape(str(self.directory))}"',
            'logfile ""',  # stdout, which goes to redis.log (so do start-up errors)
            "loglevel notice",
            "databases 16",
            'save ""',
            "dbfilename dump.rdb",
            f"appendonly {'yes' if self.appendonly else 'no'}",
            f"appendfsync {self.appendfsync}",
        ]
        if self._password is not None:
            lines.append(f'requirepass "{_conf_escape(self._password)}"')
        self.config_path.write_text("\n".join(lines) + "\n")
        self.config_path.chmod(0o600)

    def _launch(self) -> bool:
        self._write_config()
        self._log = self.log_path.open("ab")
        self._paused = False
        self._process = subprocess.Popen(
            [self.executable, str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
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
            if self._answers_ping():
                return True
            time.sleep(POLL_INTERVAL)
        self.stop()
        raise RedisStartError(  # hung, not a taken port: no retry, the wait stays bounded
            f"redis-server did not answer PING on 127.0.0.1:{self._port} within "
            f"{self.start_timeout:g} s; last lines of {self.log_path.name}:\n{self.tail()}"
        )

    def _answers_ping(self) -> bool:
        try:
            return self.ping(timeout=0.5)
        except RedisReplyError as error:
            if str(error).startswith(("WRONGPASS", "NOAUTH")):
                raise RedisStartError(f"redis-server refused the password: {error}") from None
            return False  # LOADING ...
        except OSError:
            return False

    def alive(self) -> bool:
        if self._process is None:
            return False
        if self._process.poll() is None:
            return True
        self.exit_code = self._process.returncode
        return False

    def stop(self) -> None:
        """SIGTERM (and SIGCONT, should it be paused), then SIGKILL if it has not exited within
        STOP_TIMEOUT."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last save."""
        self._end(signal.SIGKILL)

    def _end(self, how: signal.Signals) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.send_signal(how)
                if self._paused:
                    process.send_signal(signal.SIGCONT)
                try:
                    process.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(STOP_TIMEOUT)
            self.exit_code = process.returncode
        self._paused = False
        self._close_log()

    def restart(self) -> RedisServer:
        """stop(), then start() again: same port, same data directory."""
        self.stop()
        return self.start()

    def pause(self) -> None:
        """SIGSTOP: connections are still accepted by the kernel, nothing answers."""
        self._signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """SIGCONT after pause()."""
        self._signal(signal.SIGCONT)
        self._paused = False

    def _signal(self, how: signal.Signals) -> None:
        if self._process is None or self._process.poll() is not None:
            raise RedisServerError("not running")
        self._process.send_signal(how)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    # -- talking to it --------------------------------------------------------------------

    def command(self, *args: str | bytes | int, timeout: float = COMMAND_TIMEOUT) -> RespValue:
        """Send one command on a fresh connection (AUTH first when a password is set) and
        return its reply: bytes, int, None or a list. An error reply raises RedisReplyError; no
        answer within `timeout` raises TimeoutError."""
        return self.pipeline([list(args)], timeout=timeout)[-1]

    def pipeline(
        self, commands: list[list[str | bytes | int]], *, timeout: float = COMMAND_TIMEOUT
    ) -> list[RespValue]:
        """Several commands on one connection, in order; the replies, in order (the first
        error reply raises)."""
        if self._port is None:
            raise RedisServerError("not started yet")
        if self._password is not None:
            commands = [["AUTH", self._password], *commands]
        deadline = time.monotonic() + timeout
        with socket.create_connection(("127.0.0.1", self._port), timeout=timeout) as sock:
            sock.sendall(b"".join(encode_command(*c) for c in commands))
            reader = _Reader(sock)
            replies = []
            for _ in commands:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                replies.append(reader.reply())
        return replies[1:] if self._password is not None else replies

    def ping(self, *, timeout: float = COMMAND_TIMEOUT) -> bool:
        """True when the server answers PONG within `timeout` (TimeoutError otherwise)."""
        return self.command("PING", timeout=timeout) == b"PONG"

    def flushall(self, *, timeout: float = COMMAND_TIMEOUT) -> None:
        """Delete every key in every database and forget loaded Lua scripts, so that the next
        test starts on an empty server."""
        self.pipeline([["FLUSHALL", "SYNC"], ["SCRIPT", "FLUSH", "SYNC"]], timeout=timeout)

    # -- logs -----------------------------------------------------------------------------

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = TAIL_LINES) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _conf_escape(value: str) -> str:
    """A value for a double-quoted redis.conf argument."""
    for raw, escaped in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r")):
        value = value.replace(raw, escaped)
    return value
