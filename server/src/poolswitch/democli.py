"""`poolswitch demo`: the command line of the demo (demo.py).

    poolswitch demo [--port N] [--no-traffic] [--json] [--exit-after-summary] [--requests N]

Starts, in this process and offline, a scripted OpenAI-style upstream with four keys (one out of
quota, one rate limited that comes back, one healthy, one invalid) and the proxy in front of it
on 127.0.0.1 (a free port, or --port), sends a short burst through it with a live view, prints a
summary, then serves until Ctrl-C. `--no-traffic` only serves; `--json` prints the summary as one
JSON object on stdout (no live view); `--exit-after-summary` stops after it. Exit 0 when the demo
ran, Ctrl-C included; 1 when the proxy could not start (the port is taken, say).

demo.py (and with it rich) is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

REQUESTS = 40
"""The burst's default size (demo_burst.py, with aiohttp, loads only when the command runs)."""


def add_command(sub: Any) -> None:
    """The `demo` subcommand, on cli.parser()'s subparsers."""
    cmd = sub.add_parser(
        "demo", help="see failover work: a scripted upstream, the proxy and a burst, offline"
    )
    cmd.add_argument("--port", type=_port, default=0, help="the proxy's port (default: a free one)")
    cmd.add_argument("--no-traffic", action="store_true", help="only serve; send no burst")
    cmd.add_argument("--json", action="store_true", help="print the summary as JSON, no live view")
    cmd.add_argument("--exit-after-summary", action="store_true", help="stop after the summary")
    cmd.add_argument(
        "--requests",
        type=_count,
        default=REQUESTS,
        help=f"requests in the burst (default {REQUESTS})",
    )
    cmd.set_defaults(run=cmd_demo)


def _port(text: str) -> int:
    port = _number(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0-65535, not {port}")
    return port


def _count(text: str) -> int:
    count = _number(text)
    if not 1 <= count <= 10_000:
        raise argparse.ArgumentTypeError(f"must be 1-10000, not {count}")
    return count


def _number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def cmd_demo(args: argparse.Namespace) -> int:
    from poolswitch import demo

    options = demo.Options(
        port=args.port,
        traffic=not args.no_traffic,
        json=args.json,
        exit_after_summary=args.exit_after_summary,
        requests=args.requests,
    )
    try:
        return asyncio.run(demo.run(options))
    except KeyboardInterrupt:  # before the proxy took over SIGINT, or after it let go
        return 0
