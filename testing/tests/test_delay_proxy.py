"""Tests of DelayProxy in front of a real redis-server, over raw sockets on 127.0.0.1."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import pytest

from poolswitch_testing.delay_proxy import DelayProxy
from poolswitch_testing.proxy import free_port
from poolswitch_testing.redis_server import RedisServer, encode_command

PING = encode_command("PING")


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def link(redis: RedisServer) -> Iterator[DelayProxy]:
    with DelayProxy("127.0.0.1", redis.port) as proxy:
        yield proxy


def connect(proxy: DelayProxy, timeout: float = 2.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout)


def round_trip(sock: socket.socket, request: bytes = PING, expect: bytes = b"+PONG\r\n") -> float:
    """Seconds from sending `request` to having read `expect` in full."""
    started = time.monotonic()
    sock.sendall(request)
    received = b""
    while len(received) < len(expect):
        chunk = sock.recv(65536)
        assert chunk, f"closed after {received!r}"
        received += chunk
    assert received == expect
    return time.monotonic() - started


def closed_by_peer(sock: socket.socket) -> bool:
    """True when the next read sees EOF or a reset (within the socket's timeout)."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def wait_until(condition: Callable[[], bool], timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_relays_both_ways(link: DelayProxy, redis: RedisServer) -> None:
    assert link.url_for() == f"redis://127.0.0.1:{link.port}"
    assert link.url_for("rediss", password="p@ss", path="/0") == (
        f"rediss://:p%40ss@127.0.0.1:{link.port}/0"
    )
    value = bytes(range(256)) * 4096  # 1 MiB, every byte value
    with connect(link, timeout=5.0) as sock:
        round_trip(sock, encode_command("SET", "relayed", value), b"+OK\r\n")
        expect = b"$%d\r\n%s\r\n" % (len(value), value)
        round_trip(sock, encode_command("GET", "relayed"), expect)
    assert redis.command("STRLEN", "relayed") == len(value)
    assert link.accepted == 1


def test_delay_adds_about_its_delay_each_way(link: DelayProxy) -> None:
    with connect(link) as sock:
        baseline = min(round_trip(sock) for _ in range(3))
        link.delay = 0.15  # at runtime, on an open connection
        delayed = [round_trip(sock) for _ in range(3)]
        link.delay = 0.0
        after = round_trip(sock)
    assert all(0.29 <= d <= 0.3 + baseline + 0.5 for d in delayed), delayed
    assert after < 0.2


def test_delay_is_latency_not_a_queue(link: DelayProxy) -> None:
    """Chunks sent back to back each wait `delay` from their own arrival, not one after
    another: five pipelined PINGs come back after about 2 x delay, not 10 x."""
    link.delay = 0.1
    with connect(link) as sock:
        started = time.monotonic()
        for _ in range(5):
            sock.sendall(PING)
            time.sleep(0.005)
        received = b""
        while received.count(b"+PONG\r\n") < 5:
            chunk = sock.recv(4096)
            assert chunk
            received += chunk
        elapsed = time.monotonic() - started
    assert 0.19 <= elapsed < 0.6, elapsed


def test_cut_drops_every_open_connection(link: DelayProxy) -> None:
    socks = [connect(link) for _ in range(3)]
    try:
        for sock in socks:
            round_trip(sock)
        assert wait_until(lambda: link.connections == 3)
        assert link.cut() == 3
        for sock in socks:
            assert closed_by_peer(sock)
        assert wait_until(lambda: link.connections == 0)
    finally:
        for sock in socks:
            sock.close()
    with connect(link) as sock:  # new connections still go through
        round_trip(sock)


def test_cut_during_a_delayed_reply(link: DelayProxy) -> None:
    link.delay = 1.0
    with connect(link) as sock:
        sock.sendall(PING)
        time.sleep(0.1)
        started = time.monotonic()
        assert link.cut() == 1
        assert closed_by_peer(sock)
        assert time.monotonic() - started < 0.5


def test_block_refuses_and_unblock_takes_connections_again(link: DelayProxy) -> None:
    with connect(link) as open_before:
        assert wait_until(lambda: link.connections == 1)  # taken by the proxy
        link.block()
        with pytest.raises(ConnectionRefusedError):
            connect(link)
        round_trip(open_before)  # open connections are left alone
        link.unblock()
        with connect(link) as sock:
            round_trip(sock)


def test_block_hold_accepts_without_answering_until_unblock(link: DelayProxy) -> None:
    link.block("hold")
    with connect(link, timeout=0.3) as held:
        held.sendall(PING)
        with pytest.raises(TimeoutError):
            held.recv(100)
        assert wait_until(lambda: link.connections == 1)
        link.unblock()
        held.settimeout(2.0)
        assert held.recv(100) == b"+PONG\r\n"


def test_a_held_connection_can_be_cut(link: DelayProxy) -> None:
    link.block("hold")
    with connect(link) as held:
        assert wait_until(lambda: link.connections == 1)
        assert link.cut() == 1
        assert closed_by_peer(held)


def test_block_mode_is_checked(link: DelayProxy) -> None:
    with pytest.raises(ValueError, match="block mode"):
        link.block("drop")  # type: ignore[arg-type]


def test_an_unreachable_target_closes_the_client() -> None:
    with DelayProxy("127.0.0.1", free_port()) as proxy, connect(proxy) as sock:
        assert closed_by_peer(sock)
        assert wait_until(lambda: proxy.connections == 0)


def test_client_eof_is_passed_on(link: DelayProxy) -> None:
    with connect(link) as sock:
        sock.sendall(PING)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        for _ in range(10):
            chunk = sock.recv(100)
            if not chunk:
                break
            received += chunk
        assert received == b"+PONG\r\n"  # then redis-server closes, and so does the proxy
    assert wait_until(lambda: link.connections == 0)


def test_stop_is_bounded_with_open_and_held_connections(redis: RedisServer) -> None:
    proxy = DelayProxy("127.0.0.1", redis.port, delay=5.0).start()
    port = proxy.port
    with connect(proxy) as busy:
        busy.sendall(PING)  # its answer is 10 s away
        proxy.block("hold")
        with connect(proxy) as held:
            assert wait_until(lambda: proxy.connections == 2)
            started = time.monotonic()
            proxy.stop()
            assert time.monotonic() - started < 3.0
            assert closed_by_peer(busy)
            assert closed_by_peer(held)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1.0)
