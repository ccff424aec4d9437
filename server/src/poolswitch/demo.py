"""`poolswitch demo`: the proxy's main job, seen in a minute, offline and with no API key.

In one process and one event loop: the scripted upstream (demo_upstream.py: one key out of
quota, one rate limited that comes back, one healthy, one invalid), the real proxy in front of
it (PoolSwitchApp served by `cli.build_server`, as `poolswitch start` serves it, with a config
built here), and a burst of traffic through the proxy (demo_burst.py). While the burst runs, a
live view shows each key as the proxy's own `/status` has it (state, reason, countdown), the
failovers as the answers report them, and a progress bar; then a summary, and the two lines to
try it yourself. The proxy keeps serving until Ctrl-C (or `--exit-after-summary`).

This module is the only one that imports rich; democli.py imports it when the command runs,
so `poolswitch start` never loads it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from rich.console import Console, Group
from rich.live import Live
from rich.logging import RichHandler
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from poolswitch.app import PoolSwitchApp
from poolswitch.cli import build_server, listen
from poolswitch.config import Config, parse_config
from poolswitch.demo_burst import REQUESTS, Tally, burst, summary
from poolswitch.demo_upstream import KEYS, DemoUpstream
from poolswitch.logmask import for_config

HOST = "127.0.0.1"
START_SECONDS = 10.0
VIEW_SECONDS = 0.2
"""How often the live view reads `/status`."""
STATE_STYLES = {
    "available": "green",
    "cooling_down": "yellow",
    "disabled": "red",
    "draining": "cyan",
    "drained": "cyan",
}
CAUSE_WORDS = {
    "quota_exhausted": "out of quota",
    "rate_limited": "rate limited",
    "key_invalid": "invalid key",
}


@dataclass(frozen=True)
class Options:
    port: int = 0
    """0: a free port."""
    traffic: bool = True
    json: bool = False
    exit_after_summary: bool = False
    requests: int = REQUESTS


def demo_config(upstream_url: str, port: int) -> Config:
    """The proxy's config: memory storage, the OpenAI profile, the four demo keys, round
    robin (so every key is tried early), and as many attempts as keys, so that a request
    that meets the three bad keys first still reaches the healthy one."""
    raw = {
        "listen_host": HOST,
        "listen_port": port or 8080,
        "upstream_base_url": upstream_url,
        "provider": "openai",
        "strategy": "round_robin",
        "retry_attempts": len(KEYS),
        "storage": {"backend": "memory"},
        "keys": [{"id": key.id, "value": key.value} for key in KEYS],
    }
    return parse_config(raw, env={})


def try_lines(url: str) -> dict[str, str]:
    """The two things to try by hand: a curl and the official OpenAI SDK (Python)."""
    body = '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}'
    curl = (
        f"curl -i {url}/v1/chat/completions -H 'x-poolswitch-trace: 1' "
        f"-H 'content-type: application/json' -d '{body}'"
    )
    python = (
        "from openai import OpenAI\n"
        f'client = OpenAI(base_url="{url}/v1", api_key="unused")\n'
        'print(client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", '
        '"content": "Hello"}]).choices[0].message.content)'
    )
    return {"curl": curl, "python": python}


def _setup_logging(config: Config, console: Console | None) -> None:
    """The proxy's warnings (a key parked, disabled), masked as `poolswitch start` masks them:
    above the live view, or on stderr with --json."""
    handler: logging.Handler
    if console is not None:
        handler = RichHandler(console=console, show_path=False, show_time=False)
    else:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(for_config(config, None))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)


async def _status(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(url + "/status", timeout=aiohttp.ClientTimeout(total=5)) as resp:
        doc: dict[str, Any] = await resp.json()
        return doc


def key_table(status: dict[str, Any], now: float) -> Table:
    """Each key as `/status` shows it, beside what the demo upstream does with it."""
    scripts = {key.id: key.script for key in KEYS}
    table = Table(title="keys (the proxy's /status)", title_justify="left", expand=False)
    for name in ("KEY", "STATE", "REASON", "RETURNS IN", "REQUESTS", "OK", "UPSTREAM DOES"):
        table.add_column(name, no_wrap=name != "UPSTREAM DOES")
    for key in status.get("keys", []):
        until = key.get("cooldown_until")
        wait = "-" if until is None else _duration(max(until - now, 0.0))
        table.add_row(
            key["id"],
            Text(key["state"], style=STATE_STYLES.get(key["state"], "")),
            key.get("reason") or "-",
            wait,
            str(key["total_requests"]),
            str(key["successes"]),
            scripts.get(key["id"], ""),
        )
    return table


def _duration(seconds: float) -> str:
    if seconds >= 90:
        return f"{seconds / 60:.0f}m"
    return f"{seconds:.0f}s"


def failover_panel(tally: Tally) -> Panel:
    lines = Text()
    for event in tally.recent:
        lines.append(f"{event.at:5.2f}s  request {event.request:>3}  ")
        lines.append(event.key_id, style="bold")
        lines.append(f" {CAUSE_WORDS.get(event.cause, event.cause)}", style="yellow")
        lines.append(" -> next key ")
        lines.append(f"{event.to}\n", style="bold")
    counts = ", ".join(f"{CAUSE_WORDS.get(c, c)} {n}" for c, n in sorted(tally.by_cause.items()))
    title = f"failovers: {tally.failovers}" + (f" ({counts})" if counts else "")
    caller = f"errors seen by the caller: {len(tally.errors)}"
    return Panel(lines or Text("none yet"), title=title, subtitle=caller, title_align="left")


def _view(status: dict[str, Any], tally: Tally, progress: Progress) -> Group:
    return Group(key_table(status, time.time()), failover_panel(tally), progress)


async def _watch(
    url: str, tally: Tally, sending: asyncio.Task[Tally], console: Console
) -> dict[str, Any]:
    """The live view until the burst is sent; the last `/status`."""
    progress = Progress(TextColumn("burst"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    task = progress.add_task("burst", total=tally.total)
    status: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        with Live(console=console, auto_refresh=False, transient=False) as live:
            while True:
                status = await _status(session, url)
                progress.update(task, completed=tally.done)
                live.update(_view(status, tally, progress), refresh=True)
                if sending.done():
                    break
                await asyncio.wait([sending], timeout=VIEW_SECONDS)
    return status


def print_summary(console: Console, doc: dict[str, Any]) -> None:
    causes = ", ".join(f"{CAUSE_WORDS.get(c, c)} {n}" for c, n in doc["failovers_by_cause"].items())
    first = doc["first_failover_seconds"]
    console.print()
    console.rule("summary")
    console.print(
        f"{doc['requests']} requests ({doc['streamed']} streamed) in {doc['seconds']:.1f}s: "
        f"{doc['succeeded']} succeeded, [bold]{doc['caller_errors']} errors seen by the "
        f"caller[/bold]"
    )
    console.print(
        f"{doc['failovers']} failovers ({causes})"
        + (f", the first {first:.2f}s into the burst" if first is not None else "")
    )
    for error in doc["errors"]:
        console.print(f"  [red]{error}[/red]")
    table = Table(title="where each key stands, and why", title_justify="left", box=None)
    for name in ("KEY", "STATE", "WHY", "SERVED"):
        table.add_column(name, no_wrap=name != "WHY")
    for key in doc["keys"]:
        table.add_row(
            key["id"],
            Text(key["state"], style=STATE_STYLES.get(key["state"], "")),
            why(key),
            f"{key['successes']}/{key['requests']}",
        )
    console.print(table)


def why(key: dict[str, Any]) -> str:
    """Why a key of the summary stands where it does, in words."""
    cause = CAUSE_WORDS.get(key["reason"] or "", key["reason"])
    if key["state"] == "cooling_down":
        return f"{cause}: parked, back in {_duration(key['returns_in_seconds'] or 0)}"
    if key["state"] == "disabled":
        return f"{cause}: disabled until an operator enables it"
    if key["failovers"]:
        return f"failed over {key['failovers']}x, cooled as told, back in service"
    return "serving"


def print_try(console: Console, url: str) -> None:
    lines = try_lines(url)
    console.print()
    console.print(f"The proxy serves on [bold]{url}[/bold] until Ctrl-C. Try it yourself:")
    console.print(lines["curl"], markup=False, highlight=False, soft_wrap=True)
    console.print(lines["python"], markup=False, highlight=False, soft_wrap=True)


async def run(options: Options, console: Console | None = None) -> int:
    """The demo: 0 when it ran (and was stopped), 1 when the proxy could not start."""
    console = console or Console()
    upstream = DemoUpstream()
    upstream_url = await upstream.start(HOST)
    try:
        sock = listen(HOST, options.port)
    except OSError as exc:
        await upstream.stop()
        console.print(f"error: cannot listen on {HOST}:{options.port}: {exc.strerror}")
        return 1
    port = sock.getsockname()[1]
    url = f"http://{HOST}:{port}"
    config = demo_config(upstream_url, port)
    _setup_logging(config, None if options.json else console)
    app = PoolSwitchApp(config)
    server = build_server(app, HOST, port, "warning")
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        deadline = time.monotonic() + START_SECONDS
        while not server.started and not serving.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if not server.started:
            server.should_exit = True
            return 1
        doc: dict[str, Any] = {"proxy_url": url}
        if options.traffic:
            tally = Tally(total=options.requests)
            sending = asyncio.ensure_future(burst(url, tally))
            stopping = asyncio.ensure_future(_stopped(server))
            if options.json:
                await asyncio.wait([sending, stopping], return_when=asyncio.FIRST_COMPLETED)
            else:
                watching = asyncio.ensure_future(_watch(url, tally, sending, console))
                await asyncio.wait([watching, stopping], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if server.should_exit:  # Ctrl-C during the burst
                await _cancel(sending, *([] if options.json else [watching]))
                return 0
            async with aiohttp.ClientSession() as session:
                status = await _status(session, url)
            scripts = {key.id: key.script for key in KEYS}
            doc |= summary(tally, status, scripts, time.time())
            for key in doc["keys"]:
                key["why"] = why(key)
            if not options.json:
                print_summary(console, doc)
        if options.json:
            print(json.dumps(doc | {"try": try_lines(url)}), flush=True)
        elif not options.exit_after_summary:
            print_try(console, url)
        if options.exit_after_summary:
            server.should_exit = True
        return 0
    except BaseException:
        server.should_exit = True
        raise
    finally:
        await serving  # until Ctrl-C, or at once when asked to exit
        await upstream.stop()


async def _cancel(*tasks: asyncio.Future[Any]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _stopped(server: Any) -> None:
    while not server.should_exit:
        await asyncio.sleep(0.05)
