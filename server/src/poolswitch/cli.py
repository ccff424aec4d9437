"""The `poolswitch` command: start | validate | status | metrics | keys | reload | schema | demo.

    poolswitch start --config FILE [--host H] [--port P] [--log-level L] [--log-format F]
                     [--workers N]
    poolswitch validate --config FILE
    poolswitch status [--url URL | --config FILE] [--json] [--token T]
    poolswitch metrics [--url URL | --config FILE] [--token T]
    poolswitch keys list|enable|disable|reset|test|drain [ID] [--json] ...   (keyscli.py)
    poolswitch reload [--url URL | --config FILE] [--token T]    (reloadcli.py; or SIGHUP)
    poolswitch schema                     print the config's JSON Schema
    poolswitch demo [--port P] [--no-traffic] [--json] [--exit-after-summary]   (democli.py)

`--workers N` (default $POOLSWITCH_WORKERS, else 1) serves the one port from N processes, run
by a supervisor (workers.py); it needs a shared store (sqlite or redis). With 1, the proxy is one
process, as it always was.

Exit codes: 0 fine, 1 runtime failure (port taken, proxy unreachable, workers that keep failing
at start), 2 bad usage or config (including a storage.sqlite_path that cannot be used: one line
naming it).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any

import uvicorn

from poolswitch import __version__, democli, keyscli, logsink, reloadcli
from poolswitch.app import PoolSwitchApp
from poolswitch.config import LOG_FORMATS, Config
from poolswitch.origins import is_loopback
from poolswitch.protocol import effective_max_connections, protocol_class, raise_fd_limit
from poolswitch.proxy import STREAM_CUT
from poolswitch.proxyclient import URL_HELP, base_url, fetch, load_or_say
from poolswitch.storage import check_store
from poolswitch.workers import Supervisor, follow_supervisor

log = logging.getLogger("poolswitch.cli")

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
DRAIN_SECONDS = 30
GC_THRESHOLD = 50_000
BACKLOG = 4096


UNCOMPLETED = "ASGI callable returned without completing response."
"""What uvicorn logs (ERROR) when an app returns mid-response; a contract test checks it."""


def _not_a_cut_stream(record: logging.LogRecord) -> bool:
    """Drop uvicorn's error for a response the proxy ended abruptly on purpose (its upstream
    died mid-stream): the proxy logged that once, as a warning, and the access log marks the
    request `incomplete`. The flag lives in the request's own task (a context variable)."""
    return not (record.msg == UNCOMPLETED and STREAM_CUT.get())


class _Server(uvicorn.Server):
    """uvicorn's server, except that a SIGINT/SIGTERM shutdown exits 0 rather than re-raising
    the signal once drained: a signal is how the proxy is asked to stop."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def build_server(
    app: PoolSwitchApp, host: str, port: int, log_level: str = "info"
) -> uvicorn.Server:
    """The uvicorn server as `poolswitch start` runs it (tests use this too)."""
    logging.getLogger("uvicorn.error").addFilter(_not_a_cut_stream)  # once: same object
    config = app.config
    raised = raise_fd_limit()
    if raised is not None:
        log.info("open-file limit raised from %d to %d (the hard limit)", *raised)
    max_connections, fd_limit = effective_max_connections(
        config.max_connections, app.upstream_connections
    )
    if max_connections < config.max_connections:
        log.warning(
            "max_connections %d lowered to %d: the file-descriptor limit is %d",
            config.max_connections,
            max_connections,
            fd_limit,
        )
    else:
        log.info(
            "at most %d open connections (file-descriptor limit %d)", max_connections, fd_limit
        )
    return _Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            loop="uvloop",
            http=protocol_class(config, max_connections),
            lifespan="on",
            access_log=False,
            server_header=False,
            proxy_headers=False,  # X-Forwarded-* go upstream as sent; they are not ours to apply
            date_header=False,
            log_config=None,
            log_level=log_level,
            timeout_graceful_shutdown=DRAIN_SECONDS,
            # typed int, used as a float (call_later)
            timeout_keep_alive=config.keepalive_timeout_seconds,  # type: ignore[arg-type]
            backlog=BACKLOG,
        )
    )


def setup_logging(level: str, fmt: str = "text") -> None:
    """Log to stderr, in batches (logsink.py), as text or JSON (`fmt`). `poolswitch start`
    then installs a `logmask.LogMask` on the handler, so that no credential header, auth query
    parameter or key value reaches a line."""
    logsink.setup(level, fmt=fmt)


def _tune_gc() -> None:
    """Keep full garbage collections short: everything alive at start (modules, config, keys)
    moves to the permanent generation, and the young generation is collected less often.
    Measured with `nox -s bench`: this is what keeps p99 near p50 under load."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 20, 100)


def _store_usable(config: Config, *, prepare: bool) -> bool:
    problem = check_store(config.storage, prepare=prepare)
    if problem is not None:
        print(f"storage error: {problem}", file=sys.stderr)
    return problem is None


def cmd_start(args: argparse.Namespace) -> int:
    workers = _workers(args)
    if workers is None:
        return 2
    config = load_or_say(args.config)
    if config is None:
        return 2
    host, port = args.host or config.listen_host, args.port or config.listen_port
    problem = exposed(config, host)
    if problem:
        print(f"config error: {problem}", file=sys.stderr)
        return 2
    if workers > 1 and config.storage.backend == "memory":
        print(
            "config error: storage.backend: memory keeps key state in each process; "
            f"--workers {workers} needs sqlite or redis",
            file=sys.stderr,
        )
        return 2
    if args.worker_fd is not None:  # one of a supervisor's workers: the socket is bound
        if not follow_supervisor():
            print("error: the supervisor of this worker has exited", file=sys.stderr)
            return 1
        setup_logging(args.log_level, args.log_format or config.log_format)
        return _serve(config, args, host, port, socket.socket(fileno=args.worker_fd))
    # Opened (created or upgraded) here, before the server: a bad file is one line and exit 2,
    # not a failure inside the server's start-up.
    if not _store_usable(config, prepare=True):
        return 2
    try:
        sock = listen(host, port)
    except OSError as exc:
        gai = isinstance(exc, socket.gaierror)
        reason = exc.strerror if gai or not exc.errno else os.strerror(exc.errno)
        print(f"error: cannot listen on {host}:{port}: {reason}", file=sys.stderr)
        return 1
    log_format = args.log_format or config.log_format
    setup_logging(args.log_level, log_format)
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    if workers > 1:
        log.info("%d workers on %s", workers, url)
        command = [sys.executable, "-m", "poolswitch", "start", "--config", args.config]
        command += ["--host", host, "--port", str(port), "--log-level", args.log_level]
        command += ["--log-format", log_format]
        command += ["--workers", str(workers), "--worker-fd", str(sock.fileno())]
        with sock:
            return Supervisor(sock, workers, command, drain_seconds=DRAIN_SECONDS).run()
    log.info("listening on %s", url)
    return _serve(config, args, host, port, sock)


def _serve(
    config: Config, args: argparse.Namespace, host: str, port: int, sock: socket.socket
) -> int:
    """The proxy in this process on the bound `sock`, until SIGINT/SIGTERM."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the lifespan reloads on it
    _tune_gc()
    app = PoolSwitchApp(config, config_path=args.config)
    reloadcli.serve_reloads(app)  # masks every record from here on; SIGHUP reloads
    server = build_server(app, host, port, args.log_level)
    with sock:
        server.run(sockets=[sock])
    return 0 if server.started else 1


def _workers(args: argparse.Namespace) -> int | None:
    """--workers, else $POOLSWITCH_WORKERS, else 1; None (said why) when the variable is bad."""
    if args.workers is not None:
        count: int = args.workers
        return count
    text = os.environ.get("POOLSWITCH_WORKERS")
    if text is None:
        return 1
    try:
        return _worker_count(text)
    except argparse.ArgumentTypeError as exc:
        print(f"error: POOLSWITCH_WORKERS: {exc}", file=sys.stderr)
        return None


def _worker_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {count}")
    return count


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything starts, so a port in use is one line."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)  # as uvicorn does
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def exposed(config: Config, host: str) -> str | None:
    """Why the proxy must not start on `host`, or None: secure by default, a non-loopback
    address needs callers (or an explicit allow_unauthenticated: true)."""
    if is_loopback(host) or config.callers or config.allow_unauthenticated:
        return None
    return (
        f"listen address {host} is reachable from other machines and no callers are "
        "configured: add `callers` (tokens), or set `allow_unauthenticated: true` to serve "
        "anyone who reaches the port"
    )


def cmd_validate(args: argparse.Namespace) -> int:
    config = load_or_say(args.config)
    if config is None or not _store_usable(config, prepare=False):
        return 2
    problem = exposed(config, config.listen_host)
    if problem:
        print(f"config error: {problem}", file=sys.stderr)
        return 2
    if config.keys:  # the single-pool form
        print(
            f"ok: {len(config.keys)} keys, strategy {config.strategy}, storage "
            f"{config.storage.backend}, upstream {config.upstream_base_url}"
        )
        return 0
    print(f"ok: {len(config.pools)} pools, storage {config.storage.backend}")
    for pool in config.pools:
        print(
            f"  {pool.name} at {pool.route}: {len(pool.keys)} keys, strategy {pool.strategy}, "
            f"upstream {pool.upstream_base_url}"
        )
    return 0


def _reader_token(args: argparse.Namespace, setting: str) -> str | None:
    """--token, else $POOLSWITCH_TOKEN, else `setting` (admin_token, metrics_token) from
    --config; None sends no token, as before callers existed."""
    token: str | None = args.token or os.environ.get("POOLSWITCH_TOKEN")
    if not token and args.config:
        config = load_or_say(args.config)
        token = getattr(config, setting, None) if config else None
    return token or None


def cmd_status(args: argparse.Namespace) -> int:
    base = base_url(args)
    if base is None:
        return 2
    data = fetch(base + "/status", token=_reader_token(args, "admin_token"))
    if data is None:
        return 1
    doc = json.loads(data)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(format_status(doc, time.time()))
    return 0


def format_status(doc: dict[str, Any], now: float) -> str:
    """A readable table of `/status`: one per pool (and the store's trouble, if any, first)."""
    health = doc.get("storage_health") or {}
    trouble = (
        f"STORAGE DEGRADED: {health.get('reason')} (serving on this process's own key state)\n"
        if health.get("status") == "degraded"
        else ""
    )
    pools = doc.get("pools")
    if pools is not None and len(pools) > 1:
        parts = [f"{trouble}storage {doc['storage']}, {len(pools)} pools"]
        for pool in pools:
            parts.append(f"\npool {pool['name']} at {pool['route']}: " + _pool_table(pool, now))
        return "\n".join(parts)
    return trouble + _pool_table(doc, now)


def _pool_table(doc: dict[str, Any], now: float) -> str:
    lines = []
    if "strategy" in doc:
        lines += [
            f"strategy {doc['strategy']}"
            + (f", storage {doc['storage']}" if "storage" in doc else "")
            + f", upstream {doc['upstream_base_url']}"
            + (f" — DEGRADED: {doc['outage']['kind']} outage" if doc.get("outage") else ""),
            "",
        ]
    rows = [("KEY", "STATE", "RETURNS IN", "REASON", "REQUESTS", "ERRORS", "FAILOVERS")]
    # (the admin list names each key's pool; /status has it in the pool's table)
    for key in doc["keys"]:
        until = key.get("cooldown_until")
        rows.append(
            (
                key["id"],
                key["state"],
                f"{max(until - now, 0):.0f}s" if until else "-",
                key.get("reason") or "-",
                str(key["total_requests"]),
                str(key["errors"]),
                str(key["failovers"]),
            )
        )
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    lines += [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return "\n".join(lines)


def cmd_metrics(args: argparse.Namespace) -> int:
    base = base_url(args)
    if base is None:
        return 2
    data = fetch(base + "/metrics", token=_reader_token(args, "metrics_token"))
    if data is None:
        return 1
    sys.stdout.write(data.decode())
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from poolswitch.schemadoc import schema_text

    sys.stdout.write(schema_text())
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="poolswitch", description="API key pool proxy.")
    p.add_argument("--version", action="version", version=f"poolswitch {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    start = sub.add_parser("start", help="run the proxy until SIGINT/SIGTERM")
    start.add_argument("--config", required=True, help="YAML configuration file")
    start.add_argument("--host", help="listen address (default: listen_host)")
    start.add_argument("--port", type=int, help="listen port (default: listen_port)")
    start.add_argument("--log-level", default="info", choices=LOG_LEVELS)
    start.add_argument(
        "--log-format", choices=LOG_FORMATS, help="text or json (default: log_format)"
    )
    start.add_argument(
        "--workers",
        type=_worker_count,
        help="worker processes serving the port (default: $POOLSWITCH_WORKERS, else 1); "
        "more than 1 needs storage sqlite or redis",
    )
    start.add_argument("--worker-fd", type=int, help=argparse.SUPPRESS)  # set by the supervisor
    start.set_defaults(run=cmd_start)

    validate = sub.add_parser("validate", help="check a configuration file")
    validate.add_argument("--config", required=True)
    validate.set_defaults(run=cmd_validate)

    for name, run, text in (
        ("status", cmd_status, "show the key pool of a running proxy"),
        ("metrics", cmd_metrics, "print a running proxy's metrics"),
    ):
        cmd = sub.add_parser(name, help=text)
        where = cmd.add_mutually_exclusive_group()
        where.add_argument("--url", help=URL_HELP)
        where.add_argument("--config", help="find the proxy from this configuration file")
        if name == "status":
            cmd.add_argument("--json", action="store_true", help="print the raw JSON")
        cmd.add_argument(
            "--token",
            help="a caller, admin or metrics token, sent as Authorization: Bearer "
            "(default: $POOLSWITCH_TOKEN)",
        )
        cmd.set_defaults(run=run)

    keyscli.add_parser(sub)

    reloadcli.add_command(sub)

    democli.add_command(sub)

    schema = sub.add_parser(
        "schema", help="print the config's JSON Schema (docs/poolswitch.schema.json)"
    )
    schema.set_defaults(run=cmd_schema)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
