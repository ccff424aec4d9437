"""Contract tests for the private uvicorn internals protocol.py and cli.py rely on: if uvicorn
changes them underneath, these fail loudly (pyproject.toml also bounds uvicorn's version)."""

from __future__ import annotations

import inspect

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from poolswitch.cli import _Server
from poolswitch.protocol import HOOKS, LimitedProtocol


def parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def test_the_hooked_methods_exist_with_the_signatures_we_override() -> None:
    for name in HOOKS:
        assert callable(getattr(HttpToolsProtocol, name, None)), name
    assert parameters(HttpToolsProtocol.__init__) == [
        "self",
        "config",
        "server_state",
        "app_state",
        "_loop",
    ]
    assert parameters(HttpToolsProtocol.on_header) == ["self", "name", "value"]
    assert parameters(HttpToolsProtocol.on_headers_complete) == ["self"]
    assert parameters(HttpToolsProtocol.on_message_complete) == ["self"]
    assert parameters(HttpToolsProtocol.data_received) == ["self", "data"]
    assert parameters(HttpToolsProtocol.connection_lost) == ["self", "exc"]
    assert parameters(HttpToolsProtocol._start_asgi_task) == ["self", "cycle", "app"]


def test_the_inlined_methods_still_do_what_we_inlined() -> None:
    """on_header and _start_asgi_task are re-implemented in LimitedProtocol; their uvicorn
    originals must still be the few lines we copied."""
    header = inspect.getsource(HttpToolsProtocol.on_header)
    for line in (
        "name = name.lower()",
        'if name == b"expect" and value.lower() == b"100-continue":',
        "self.expect_100_continue = True",
        "self.headers.append((name, value))",
    ):
        assert line in header
    assert len([s for s in header.splitlines() if s.strip()]) == 5
    task = inspect.getsource(HttpToolsProtocol._start_asgi_task)
    assert "self.loop.create_task(cycle.run_asgi(app))" in task
    assert "task.add_done_callback(self.tasks.discard)" in task
    assert "self.tasks.add(task)" in task
    feed = inspect.getsource(HttpToolsProtocol.data_received)
    assert "self._unset_keepalive_if_required()" in feed
    assert "self.parser.feed_data(data)" in feed
    assert feed.count("except httptools.") == 2


def test_the_attributes_we_read_exist() -> None:
    cycle = inspect.getsource(RequestResponseCycle.__init__)
    for attribute in ("self.response_complete", "self.disconnected", "self.scope"):
        assert attribute in cycle
    state = ServerState()
    assert isinstance(state.connections, set) and isinstance(state.tasks, set)
    init = inspect.getsource(HttpToolsProtocol.__init__)
    for attribute in ("self.connections", "self.tasks", "self.loop", "self.flow", "self.url"):
        assert attribute in init or attribute in inspect.getsource(HttpToolsProtocol)
    assert issubclass(LimitedProtocol, HttpToolsProtocol)


def test_server_captured_signals_is_the_list_handle_exit_fills() -> None:
    server = _Server(uvicorn.Config(app="poolswitch.app:PoolSwitchApp"))
    assert server._captured_signals == []
    server.handle_exit(15, None)
    assert server.should_exit
    assert server._captured_signals == []  # cleared: a signal stop exits 0
    base = uvicorn.Server(uvicorn.Config(app="poolswitch.app:PoolSwitchApp"))
    base.handle_exit(15, None)
    assert base._captured_signals == [15]
    assert "self._captured_signals" in inspect.getsource(uvicorn.Server.capture_signals)
