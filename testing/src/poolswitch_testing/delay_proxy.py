"""A TCP proxy on 127.0.0.1 for tests that need a slow or flaky link (a slow Redis): it relays
bytes both ways and, on command, adds latency, cuts every connection or stops taking new ones.
It runs its own asyncio loop in a background thread; every call from the test's thread and the
shutdown are bounded in time.

    with DelayProxy("127.0.0.1", redis.port) as link:
        url = link.url_for("redis", password=..., path="/0")
        link.delay = 0.2       # every chunk, each way, is forwarded 0.2 s after it arrived
        link.cut()             # reset every open connection (both sides); returns how many
        link.block()           # new connections refused (the port stops listening) ...
        link.block("hold")     # ... or accepted and held, unanswered, until unblock() or cut()
        link.unblock()

The delay is latency, not a bandwidth limit: each chunk is due `delay` seconds (the value when
it arrived) after it was read, so a request/response round trip gains about 2 x delay however
many chunks it has, and order is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Literal, TypeVar
from urllib.parse import quote

__all__ = ["DelayProxy", "DelayProxyError"]

START_TIMEOUT = 5.0
CALL_TIMEOUT = 5.0
STOP_TIMEOUT = 5.0
CONNECT_TIMEOUT = 5.0
CHUNK = 65536
ACCEPT_BATCH = 64
HOST = "127.0.0.1"
LINGER_RESET = struct.pack("ii", 1, 0)

T = TypeVar("T")
BlockMode = Literal["refuse", "hold"]


class DelayProxyError(RuntimeError):
    """The proxy could not start, or a call into its loop did not finish in time."""


class _Link:
    """One client connection (a raw socket until it is relayed) and its upstream connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.client: asyncio.StreamWriter | None = None
        self.upstream: asyncio.StreamWriter | None = None
        self.tasks: set[asyncio.Task[Any]] = set()  # its handler and its two pipes

    def abort(self) -> None:
        """Reset both sides (linger 0: RST, not FIN) and cancel the link's tasks but the
        calling one."""
        for writer in (self.client, self.upstream):
            if writer is not None:
                _linger_reset(writer.get_extra_info("socket"))
                writer.transport.abort()
        if self.client is None:  # not wrapped in a transport yet (held, or connecting)
            _linger_reset(self.sock)
            self.sock.close()
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()

    def close(self) -> None:
        """Close both sides after what is buffered has been sent (FIN)."""
        for writer in (self.client, self.upstream):
            if writer is not None:
                writer.close()


class DelayProxy:
    """See the module docstring."""

    def __init__(self, target_host: str, target_port: int, *, delay: float = 0.0) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.delay = delay  # read by the loop at each chunk; a float store is atomic
        self.accepted = 0  # connections accepted, in all
        self._port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._listener: socket.socket | None = None
        self._links: set[_Link] = set()
        self._block: BlockMode | None = None
        self._unblocked: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None

    @property
    def port(self) -> int:
        if not self._port:
            raise DelayProxyError("not started yet: the port is chosen by start()")
        return self._port

    def url_for(self, scheme: str = "redis", *, password: str | None = None, path: str = "") -> str:
        """`<scheme>://127.0.0.1:<port><path>`, with `:<password>@` when given."""
        auth = "" if password is None else f":{quote(password, safe='')}@"
        return f"{scheme}://{auth}{HOST}:{self.port}{path}"

    @property
    def connections(self) -> int:
        """Connections open now (held ones included)."""
        return len(self._links)

    def __repr__(self) -> str:
        return (
            f"DelayProxy({HOST}:{self._port} -> {self.target_host}:{self.target_port}, "
            f"delay={self.delay:g}, connections={len(self._links)}, block={self._block})"
        )

    # -- life cycle -----------------------------------------------------------------------

    def start(self) -> DelayProxy:
        if self._thread is not None:
            raise DelayProxyError("already started")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._main(ready))
            except BaseException as error:  # reported to start()
                failure.append(error)
                ready.set()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="delay-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(START_TIMEOUT) or failure:
            self.stop()
            raise DelayProxyError(f"the delay proxy did not start: {failure[:1]}")
        return self

    async def _main(self, ready: threading.Event) -> None:
        self._stopping = asyncio.Event()
        self._unblocked = asyncio.Event()
        self._unblocked.set()
        self._listen()
        ready.set()
        await self._stopping.wait()
        self._stop_listening()
        links = list(self._links)
        tasks = [task for link in links for task in link.tasks]
        for link in links:
            link.abort()
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_TIMEOUT)
        for _ in range(3):  # an aborted transport closes its socket in a callback
            await asyncio.sleep(0)

    def _listen(self) -> None:
        """Listen on the port (a free one the first time). Connections are accepted in a
        reader callback, without an await, so that every accepted socket is a link at once
        and cut() and stop() see every connection the proxy has taken (an accept awaited in
        a task, or asyncio.Server, can lose one accepted just before a close)."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((HOST, self._port))
            listener.listen(128)
            listener.setblocking(False)
        except OSError:
            listener.close()
            raise
        self._listener = listener
        self._port = listener.getsockname()[1]
        asyncio.get_running_loop().add_reader(listener.fileno(), self._accept, listener)

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, _ = listener.accept()
            except OSError:  # nothing more to accept (or out of descriptors: next time)
                return
            sock.setblocking(False)
            self.accepted += 1
            link = _Link(sock)
            self._links.add(link)
            handler = asyncio.ensure_future(self._handle(link))
            handler.add_done_callback(_retrieve)
            link.tasks.add(handler)

    def _stop_listening(self) -> None:
        """Close the port: a new connect is refused, and connections the kernel has completed
        but the proxy has not accepted yet are reset."""
        listener, self._listener = self._listener, None
        if listener is not None:
            asyncio.get_running_loop().remove_reader(listener.fileno())
            listener.close()

    def stop(self) -> None:
        """Close the listening socket and every connection; join the thread (bounded)."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            stopping = self._stopping
            if stopping is not None:
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(stopping.set)
            thread.join(STOP_TIMEOUT + 1.0)
        self._thread = None
        self._loop = None

    def __enter__(self) -> DelayProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- faults ---------------------------------------------------------------------------

    def cut(self) -> int:
        """Reset every open connection, client and upstream side; return how many."""
        return self._call(self._cut())

    async def _cut(self) -> int:
        links = list(self._links)
        for link in links:
            link.abort()
        return len(links)

    def block(self, mode: BlockMode = "refuse") -> None:
        """New connections are refused ("refuse": the port stops listening, so a connect gets
        ECONNREFUSED) or accepted and held without an answer ("hold": like a host that went
        silent) until unblock(). Open connections are left alone (cut() them if need be)."""
        if mode not in ("refuse", "hold"):
            raise ValueError(f"block mode: {mode!r} (refuse or hold)")
        self._call(self._set_block(mode))

    def unblock(self) -> None:
        """Take new connections again (on the same port); held ones go through now."""
        self._call(self._set_block(None))

    async def _set_block(self, mode: BlockMode | None) -> None:
        assert self._unblocked is not None
        if mode == "refuse":
            self._stop_listening()
        elif self._listener is None:
            self._listen()
        self._block = mode
        if mode is None:
            self._unblocked.set()
        else:
            self._unblocked.clear()

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        loop = self._loop
        if loop is None or self._thread is None:
            coroutine.close()
            raise DelayProxyError("not started")
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        try:
            return future.result(CALL_TIMEOUT)
        except TimeoutError:
            future.cancel()
            raise DelayProxyError("the delay proxy's loop did not answer in time") from None

    # -- relaying -------------------------------------------------------------------------

    async def _handle(self, link: _Link) -> None:
        try:
            clean = await self._relay(link)
        except (OSError, asyncio.CancelledError):
            clean = False  # cut() or stop(), or a failed socket: the link ends here
        finally:
            self._links.discard(link)
        if clean:
            link.close()
        else:  # a reset on one side (or no upstream) is passed on as a reset to the other
            link.abort()

    async def _relay(self, link: _Link) -> bool:
        """Once unblocked, connect upstream and relay both ways until both sides have sent
        EOF (True) or one side fails (False)."""
        assert self._unblocked is not None
        await self._unblocked.wait()
        reader, client = await asyncio.open_connection(sock=link.sock)
        link.client = client
        try:
            up_reader, upstream = await asyncio.wait_for(
                asyncio.open_connection(self.target_host, self.target_port), CONNECT_TIMEOUT
            )
        except (OSError, asyncio.TimeoutError):
            return False
        link.upstream = upstream
        _no_delay(client)
        _no_delay(upstream)
        pipes = {
            asyncio.ensure_future(self._pipe(reader, upstream)),
            asyncio.ensure_future(self._pipe(up_reader, client)),
        }
        for pipe in pipes:
            pipe.add_done_callback(_retrieve)
        link.tasks |= pipes
        done, _ = await asyncio.wait(pipes, return_when=asyncio.FIRST_EXCEPTION)
        return len(done) == len(pipes) and not any(
            t.cancelled() or t.exception() is not None for t in done
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Relay one direction, each chunk forwarded `delay` seconds after it arrived; EOF is
        passed on as a half close once the chunks before it are out. A reset on either side
        raises, which ends the link."""
        queue: asyncio.Queue[tuple[float, bytes | BaseException]] = asyncio.Queue()

        async def read() -> None:
            while True:
                try:
                    chunk: bytes | BaseException = await reader.read(CHUNK)
                except OSError as error:
                    chunk = error
                queue.put_nowait((time.monotonic() + max(self.delay, 0.0), chunk))
                if not isinstance(chunk, bytes) or not chunk:
                    return

        reading = asyncio.ensure_future(read())
        try:
            while True:
                due, chunk = await queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if isinstance(chunk, BaseException):
                    raise chunk
                if not chunk:
                    if writer.can_write_eof() and not writer.is_closing():
                        writer.write_eof()
                    return
                writer.write(chunk)
                await writer.drain()
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await reading


def _linger_reset(sock: socket.socket | None) -> None:
    """Make the next close of `sock` send RST."""
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)


def _retrieve(task: asyncio.Future[None]) -> None:
    """Mark a task's exception as seen: a reset ends its link, there is nothing to report."""
    if not task.cancelled():
        task.exception()


def _no_delay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
