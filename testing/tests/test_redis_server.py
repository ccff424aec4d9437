"""Tests of RedisServer against the real Debian `redis-server`, over raw RESP on 127.0.0.1.

A missing redis-server fails these tests (RedisServerNotFound), it never skips them."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from poolswitch_testing.proxy import free_port
from poolswitch_testing.redis_server import (
    NOT_FOUND,
    RedisReplyError,
    RedisServer,
    RedisServerNotFound,
    RedisStartError,
    encode_command,
)

PASSWORD = "pw-redis-Sécret:@/ 1"  # needs quoting in a URL, escaping in redis.conf


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis") as server:
        yield server


def raw(port: int, *args: str, timeout: float = 2.0) -> bytes:
    """One command without AUTH; the first reply line."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(encode_command(*args))
        return sock.recv(4096).split(b"\r\n")[0]


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
    except ConnectionRefusedError:
        return True
    return False


def test_start_answers_ping_and_stop_frees_the_port(redis: RedisServer) -> None:
    assert redis.alive()
    assert redis.ping()
    assert redis.url == f"redis://127.0.0.1:{redis.port}/0"
    assert raw(redis.port, "PING") == b"+PONG"
    redis.stop()
    assert not redis.alive()
    assert redis.exit_code == 0
    assert refused(redis.port)


def test_restart_keeps_the_port(redis: RedisServer) -> None:
    port = redis.port
    redis.restart()
    assert redis.port == port
    assert redis.ping()
    redis.kill()
    assert redis.exit_code == -9
    redis.start()
    assert redis.port == port
    assert redis.ping()


def test_a_given_port_is_used(tmp_path: Path) -> None:
    port = free_port()
    with RedisServer(tmp_path, port=port) as server:
        assert server.port == port
        assert raw(port, "PING") == b"+PONG"


def test_no_persistence_by_default(redis: RedisServer) -> None:
    assert redis.command("SET", "k", "v") == b"OK"
    assert redis.command("CONFIG", "GET", "save") == [b"save", b""]
    redis.restart()
    assert redis.command("GET", "k") is None
    assert not (redis.directory / "dump.rdb").exists()


def test_data_survives_restart_with_appendonly(tmp_path: Path) -> None:
    with RedisServer(tmp_path, appendonly=True) as server:
        server.pipeline([["SET", "k", "v"], ["HSET", "h", "f", "1"], ["PEXPIRE", "h", 600000]])
        server.restart()
        assert server.command("GET", "k") == b"v"
        assert server.command("HGET", "h", "f") == b"1"
        ttl = server.command("PTTL", "h")
        assert isinstance(ttl, int) and 0 < ttl <= 600000
        assert (tmp_path / "appendonlydir").is_dir()


def test_data_survives_kill_with_appendfsync_always(tmp_path: Path) -> None:
    with RedisServer(tmp_path, appendonly=True, appendfsync="always") as server:
        server.command("SET", "k", "v")
        server.kill()
        server.start()
        assert server.command("GET", "k") == b"v"


def test_pause_makes_ping_time_out_and_resume_answers(redis: RedisServer) -> None:
    redis.pause()
    assert redis.paused
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        redis.ping(timeout=0.3)
    assert time.monotonic() - started < 2.0
    redis.resume()
    assert not redis.paused
    assert redis.ping()


def test_stop_of_a_paused_server_is_prompt(redis: RedisServer) -> None:
    redis.pause()
    started = time.monotonic()
    redis.stop()
    assert time.monotonic() - started < 5.0
    assert redis.exit_code == 0


def test_password_is_required(tmp_path: Path) -> None:
    with RedisServer(tmp_path, password=PASSWORD) as server:
        assert server.ping()  # AUTH first, on its own
        assert raw(server.port, "PING").startswith(b"-NOAUTH")
        assert raw(server.port, "AUTH", "wrong").startswith(b"-WRONGPASS")
        assert raw(server.port, "AUTH", PASSWORD) == b"+OK"
        quoted = "pw-redis-S%C3%A9cret%3A%40%2F%201"
        assert server.url == f"redis://:{quoted}@127.0.0.1:{server.port}/0"


def test_password_is_not_in_repr_log_or_command_line(tmp_path: Path) -> None:
    with RedisServer(tmp_path, password=PASSWORD) as server:
        assert PASSWORD not in repr(server)
        assert "<set>" in repr(server)
        cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes()
        assert PASSWORD.encode() not in cmdline
        assert (tmp_path / "redis.conf").stat().st_mode & 0o077 == 0
    assert PASSWORD not in server.log()


def test_error_reply_raises(redis: RedisServer) -> None:
    redis.command("SET", "k", "v")
    with pytest.raises(RedisReplyError, match="WRONGTYPE"):
        redis.command("LPUSH", "k", "x")


def test_flushall_empties_every_database_and_the_script_cache(redis: RedisServer) -> None:
    sha = redis.command("SCRIPT", "LOAD", "return 1")
    assert isinstance(sha, bytes)
    redis.pipeline([["SET", "a", "1"], ["SELECT", 3], ["SET", "b", "2"]])
    redis.flushall()
    assert redis.pipeline([["DBSIZE"], ["SELECT", 3], ["DBSIZE"]]) == [0, b"OK", 0]
    assert redis.command("SCRIPT", "EXISTS", sha.decode()) == [0]


def test_replies_of_every_type(redis: RedisServer) -> None:
    big = b"x" * 300_000  # more than one recv
    redis.command("SET", "big", big)
    assert redis.command("GET", "big") == big
    assert redis.command("INCR", "n") == 1
    assert redis.command("GET", "missing") is None
    redis.command("RPUSH", "l", "a", "b")
    assert redis.command("LRANGE", "l", 0, -1) == [b"a", b"b"]
    assert redis.command("EVAL", "return {1, {'x'}}", 0) == [1, [b"x"]]


def test_a_port_in_use_is_a_start_error_with_the_log(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = RedisServer(tmp_path, port=port)
        started = time.monotonic()
        with pytest.raises(RedisStartError, match=f"127.0.0.1:{port}") as error:
            server.start()
        assert time.monotonic() - started < 11.0
        assert "in use" in str(error.value).lower()
        assert not server.alive()


def test_a_missing_executable_fails_with_the_install_line(tmp_path: Path) -> None:
    with pytest.raises(RedisServerNotFound) as error:
        RedisServer(tmp_path, executable="/nonexistent/redis-server")
    assert str(error.value).startswith(NOT_FOUND)
    assert NOT_FOUND == "redis-server not found: apt-get install redis-server"


def test_port_before_start_is_an_error(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port


def test_a_server_that_never_answers_is_a_bounded_start_error(tmp_path: Path) -> None:
    silent = tmp_path / "silent-redis-server"
    silent.write_text("#!/bin/sh\necho 'starting, never answering'\nexec sleep 30\n")
    silent.chmod(0o755)
    server = RedisServer(tmp_path, executable=str(silent), start_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(RedisStartError, match="did not answer PING") as error:
        server.start()
    assert time.monotonic() - started < 5.0  # one try, then SIGTERM
    assert "never answering" in str(error.value)
    assert not server.alive()
