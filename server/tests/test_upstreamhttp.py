"""upstreamhttp: the proxy's HTTP/1.1 client against a scripted server on loopback, answer by
answer, byte by byte: lengths, chunks, bodies that end with the connection, HEAD, 204 and 1xx,
keep-alive reuse, flow control, the read timeout, the connection limit, refused headers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from poolswitch.errors import ConnectError, ReadTimeout, TransportError
from poolswitch.upstreamanswer import HIGH_WATER
from poolswitch.upstreamhttp import WHOLE_WRITE, Client, Origin, request_head

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
Run = Callable[[Handler, Callable[[Client, list[bytes]], Awaitable[None]]], None]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            head += await reader.readexactly(int(line.split(b":")[1]))
    return head


@pytest.fixture
def run() -> Run:
    """Serve `handler` on a free port, give `scenario` a Client to it and the connections'
    request heads, close both; every wait bounded."""

    def go(handler: Handler, scenario: Callable[[Client, list[bytes]], Awaitable[None]]) -> None:
        async def main() -> None:
            seen: list[bytes] = []

            async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                seen.append(b"connection")
                try:
                    await handler(reader, writer)
                except (asyncio.IncompleteReadError, ConnectionError):
                    pass
                finally:
                    writer.close()

            server = await asyncio.start_server(serve, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            client = Client(f"http://127.0.0.1:{port}", connect_timeout=5, limit=4)
            try:
                await asyncio.wait_for(scenario(client, seen), 10)
            finally:
                await client.close()
                server.close()
                await server.wait_closed()

        asyncio.run(main())

    return go


def answering(*answers: bytes) -> Handler:
    """A handler that answers each request on a connection with the next of `answers`."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in answers:
            await read_request(reader)
            writer.write(answer)
            await writer.drain()
        await reader.read()  # until the client closes

    return handler


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Note: caf\xc3\xa9\r\n\r\nhello"


def test_a_keep_alive_connection_serves_one_request_after_another(run: Run) -> None:
    async def scenario(client: Client, seen: list[bytes]) -> None:
        for _ in range(3):
            answer = await client.request("GET", "/v1/models", [("x-a", "1")], b"", 5)
            assert answer.status == 200 and answer.content_length == 5
            assert (
                answer.headers["x-note"] == "café"
                and (b"X-Note", b"caf\xc3\xa9") in answer.raw_headers
            )
            assert await answer.read(100) == (b"hello", True)
            answer.release()
        assert seen == [b"connection"]

    run(answering(OK, OK, OK), scenario)


def test_chunks_and_a_body_that_ends_with_the_connection(run: Run) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    until_close = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it"

    async def scenario(client: Client, seen: list[bytes]) -> None:
        answer = await client.request("GET", "/a", [], b"", 5)
        assert [c async for c in answer.chunks()] in ([b"abc", b"de"], [b"abcde"])
        answer.release()
        answer = await client.request("GET", "/b", [], b"", 5)
        assert answer.content_length is None
        assert await answer.read(100) == (b"all of it", True)
        answer.release()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(chunked)
        await read_request(reader)
        writer.write(until_close)
        writer.close()

    run(handler, scenario)


def test_head_204_and_an_early_hint_have_no_body(run: Run) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
    no_content = b"HTTP/1.1 204 No Content\r\n\r\n"
    hinted = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK

    async def scenario(client: Client, seen: list[bytes]) -> None:
        answer = await client.request("HEAD", "/h", [], b"", 5)
        assert answer.status == 200 and await answer.read(10) == (b"", True)
        answer.release()  # closed: nothing says where a HEAD answer's next one starts
        answer = await client.request("GET", "/n", [], b"", 5)
        assert answer.status == 204 and await answer.read(10) == (b"", True)
        answer.release()
        answer = await client.request("GET", "/e", [], b"", 5)
        assert answer.status == 200 and await answer.read(10) == (b"hello", True)
        answer.release()
        assert seen == [b"connection", b"connection"]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(handler.calls) == 0:  # type: ignore[attr-defined]
            handler.calls.append(1)  # type: ignore[attr-defined]
            await read_request(reader)
            writer.write(head)
            await reader.read()
            return
        await answering(no_content, hinted)(reader, writer)

    handler.calls = []  # type: ignore[attr-defined]
    run(handler, scenario)


def test_a_large_body_goes_out_whole_and_a_large_answer_is_paced(run: Run) -> None:
    body = bytes(range(256)) * (WHOLE_WRITE // 128)
    size = 4 * HIGH_WATER

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got = await read_request(reader)
        assert got.endswith(body) and f"Content-Length: {len(body)}".encode() in got
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        writer.write(b"x" * size)
        await writer.drain()
        await reader.read()

    async def scenario(client: Client, seen: list[bytes]) -> None:
        answer = await client.request("POST", "/upload", [], body, 5)
        await asyncio.sleep(0.2)  # the server has written it all; the client reads no more
        assert answer._size <= HIGH_WATER + 256 * 1024  # paused, not all buffered
        data, complete = await answer.read(size + 1)
        assert len(data) == size and complete
        answer.release()

    run(handler, scenario)


def test_the_read_timeout_counts_silence_not_a_slow_reader(run: Run) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfive!")
        await asyncio.sleep(1.0)  # then silence: the rest never comes
        await reader.read()

    async def scenario(client: Client, seen: list[bytes]) -> None:
        answer = await client.request("GET", "/slow", [], b"", 0.3)
        assert await answer.read(5) == (b"five!", False)
        with pytest.raises(ReadTimeout):
            await answer.read(5)
        answer.release()

    run(handler, scenario)


def test_no_answer_at_all_is_a_read_timeout_and_a_closed_one_a_transport_error(run: Run) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        target = (await read_request(reader)).split(b" ")[1]
        if target == b"/close":
            return  # closed without a word
        await reader.read()

    async def scenario(client: Client, seen: list[bytes]) -> None:
        with pytest.raises(ReadTimeout):
            await client.request("GET", "/silent", [], b"", 0.2)
        with pytest.raises(TransportError, match="closed before an answer"):
            await client.request("GET", "/close", [], b"", 5)

    run(handler, scenario)


def test_not_http_is_a_transport_error(run: Run) -> None:
    async def scenario(client: Client, seen: list[bytes]) -> None:
        with pytest.raises(TransportError, match="not a valid HTTP answer"):
            await client.request("GET", "/", [], b"", 5)

    run(answering(b"SSH-2.0-OpenSSH\r\n\r\n"), scenario)


def test_requests_beyond_the_limit_wait_for_a_connection(run: Run) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            await asyncio.sleep(0.05)
            writer.write(OK)

    async def scenario(client: Client, seen: list[bytes]) -> None:
        async def one() -> bytes:
            answer = await client.request("GET", "/", [], b"", 5)
            data, _ = await answer.read(10)
            answer.release()
            return data

        assert await asyncio.gather(*(one() for _ in range(12))) == [b"hello"] * 12
        assert len(seen) == 4  # the limit

    run(handler, scenario)


def test_an_unreachable_upstream_is_a_connect_error() -> None:
    async def main() -> None:
        client = Client("http://127.0.0.1:9", connect_timeout=2, limit=1)
        with pytest.raises(ConnectError, match="cannot connect to upstream: ConnectionRefused"):
            await client.request("GET", "/", [], b"", 5)
        await client.close()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("base", "host", "port", "header", "tls"),
    [
        ("http://127.0.0.1:8080", "127.0.0.1", 8080, "127.0.0.1:8080", False),
        ("https://api.openai.com", "api.openai.com", 443, "api.openai.com", True),
        ("http://example.com:80/base", "example.com", 80, "example.com", False),
        ("https://[::1]:8443", "::1", 8443, "[::1]:8443", True),
    ],
)
def test_origin(base: str, host: str, port: int, header: str, tls: bool) -> None:
    origin = Origin(base)
    assert (origin.host, origin.port, origin.host_header, origin.tls) == (host, port, header, tls)


def test_the_request_head() -> None:
    head = request_head("POST", "/v1/x?a=%20", "h:1", [("Authorization", "Bearer k")], b"{}")
    assert head == (
        b"POST /v1/x?a=%20 HTTP/1.1\r\nHost: h:1\r\nAuthorization: Bearer k\r\n"
        b"Content-Length: 2\r\n\r\n"
    )
    assert b"Content-Length" not in request_head("GET", "/", "h", [], b"")
    assert b"Content-Length: 0" in request_head("POST", "/", "h", [], b"")
    with pytest.raises(ConnectError, match="line break"):
        request_head("GET", "/", "h", [("x-a", "1\r\nx-b: 2")], b"")
