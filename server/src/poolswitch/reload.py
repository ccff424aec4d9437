"""Hot reload: a new generation of pools, keys, callers and limits from a new config, swapped
in between requests, with what was learned of each kept key carried over.

A generation is everything built from one config that requests read: each pool's keys and
state (pool.py), its upstream client (forwarder.py), its request loop (proxy.py) and the
redactor that knows every key value. `swap()`:

1. refuses a config that changes a setting the running server was built with
   (`RESTART_ONLY`: the listening socket, the store, the connection limits): one problem line
   each, nothing changes;
2. waits until no pool has a store write in flight (the new pools continue from what was
   written: with one writer per key, no counter is counted twice), and opens the upstream
   clients that changed (a pool's upstream settings, `upstream_ca_file` among them, or the
   content of its CA file);
3. builds the new generation and swaps it in, in one step on the event loop (no `await`
   between building and the swap): a key with the same id and value in the same pool keeps
   its state object (cooldown, disable, strikes, counters); a key whose value changed starts
   afresh; a removed key is disabled in the old generation (never selected again, not even by
   a request still retrying there); the old pools forward what their in-flight requests change
   to the new ones (Pool.hand_over);
4. reads the stored state of keys new to this process, and closes the upstream clients the new
   generation does not use once the old generation's requests have ended (it counts them; at
   the latest `RETIRE_SECONDS` after the swap, or when the server stops).

A pool's outage guard (guard.py) starts afresh with the new generation.

In-flight requests and streams finish on the lane, pool and upstream client they started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from poolswitch import upstreamtls
from poolswitch.config import Config, PoolConfig, load_config
from poolswitch.errors import ConfigError
from poolswitch.forwarder import Forwarder
from poolswitch.metrics import Metrics
from poolswitch.pool import Clock, Pool
from poolswitch.proxy import Proxy
from poolswitch.redact import Redactor
from poolswitch.request import BodyBudget
from poolswitch.storage import KeyRecord, Store

log = logging.getLogger("poolswitch.reload")

RESTART_ONLY = (
    "listen_host",
    "listen_port",
    "storage",
    "max_connections",
    "max_header_bytes",
    "max_header_count",
    "header_timeout_seconds",
    "body_timeout_seconds",
    "keepalive_timeout_seconds",
)
"""Settings the server, its protocol or its store were built with: changing one needs a
restart (cli.build_server, protocol.protocol_class, storage.create_store)."""
SETTLE_SECONDS = 10.0
"""The longest a reload waits for a store write in flight before it gives up (refused)."""
SETTLE_TRIES = 20
RETIRE_SECONDS = 3600.0
"""The longest an old generation's upstream clients stay open for its in-flight requests."""
RETIRE_POLL_SECONDS = 0.25


def version_of_file(path: str | Path) -> str:
    """The config version of a file: the first 12 hex digits of the SHA-256 of its bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def version_of_config(config: Config) -> str:
    """The config version of a config built in code: the hash of its canonical JSON dump."""
    dump = json.dumps(dataclasses.asdict(config), sort_keys=True, default=str)
    return hashlib.sha256(dump.encode()).hexdigest()[:12]


def load_versioned(path: str | Path) -> tuple[Config, str]:
    """Read and validate a config file: (config, its version). Raises ConfigError (every
    problem, one line each, no secret). The file is hashed before and after it is read; a
    file that changed meanwhile is read again."""
    version = ""
    for _ in range(3):
        try:
            version = version_of_file(path)
        except OSError as exc:
            raise ConfigError([f"{path}: cannot read ({exc.strerror or exc})"]) from None
        config = load_config(path)
        with contextlib.suppress(OSError):
            if version_of_file(path) == version:
                return config, version
    return config, version


def needs_restart(running: Config, new: Config) -> list[str]:
    """A problem line for each setting that cannot change while the server runs."""
    return [
        f"{name}: changing it needs a restart"
        for name in RESTART_ONLY
        if getattr(running, name) != getattr(new, name)
    ]


def _upstream(p: PoolConfig) -> tuple[str, float, float, str | None]:
    return (
        p.upstream_base_url,
        p.connect_timeout_seconds,
        p.request_timeout_seconds,
        p.upstream_ca_file,
    )


def _same_ca(forwarder: Forwarder) -> bool:
    """The CA file the client read still holds the same bytes (a renewed bundle at the same
    path needs a new client); a file that no longer reads is a change (the reload's config
    validation has read it already)."""
    if forwarder.ca_file is None:
        return True
    try:
        return upstreamtls.read_bundle(forwarder.ca_file)[1] == forwarder.ca_fingerprint
    except (OSError, ValueError):
        return False


def forwarder_for(p: PoolConfig, max_connections: int) -> Forwarder:
    """A pool's upstream client (not yet open)."""
    return Forwarder(
        p.upstream_base_url,
        connect_timeout=p.connect_timeout_seconds,
        read_timeout=p.request_timeout_seconds,
        max_connections=max_connections,
        ca_file=p.upstream_ca_file,
    )


@dataclass
class Generation:
    """What requests read, built from one config (see the module docstring)."""

    config: Config
    version: str
    pools: dict[str, Pool]
    forwarders: dict[str, Forwarder]
    lanes: dict[str, Proxy]
    redactor: Redactor

    @classmethod
    def build(
        cls,
        config: Config,
        version: str,
        store: Store,
        metrics: Metrics,
        *,
        budget: BodyBudget,
        clock: Clock = time.time,
        rng: random.Random | None = None,
        max_connections: int = 256,
        on_remote: Callable[[KeyRecord, float], None] | None = None,
        forwarders: Mapping[str, Forwarder] | None = None,
        attach: bool = True,
    ) -> Generation:
        """Build every part (synchronous); `forwarders`: upstream clients to use by pool name
        (a reload's reused and newly opened ones), others are made here (not yet open)."""
        pools = {
            p.name: Pool(p, store, clock=clock, rng=rng, on_remote=on_remote, attach=attach)
            for p in config.pools
        }
        given = forwarders or {}
        clients = {
            p.name: given.get(p.name) or forwarder_for(p, max_connections) for p in config.pools
        }
        # One redactor for every relayed answer: it knows every key value of every pool.
        redactor = Redactor((key.secret, key.id) for pool in pools.values() for key in pool.keys)
        lanes = {
            p.name: Proxy(
                p,
                pools[p.name],
                clients[p.name],
                metrics,
                redactor=redactor,
                max_request_body_bytes=config.max_request_body_bytes,
                budget=budget,
                rng=rng,
            )
            for p in config.pools
        }
        return cls(config, version, pools, clients, lanes, redactor)

    def in_flight(self) -> int:
        """Requests this generation's lanes are serving (the gateway counts them)."""
        return sum(lane.in_flight for lane in self.lanes.values())


@dataclass
class ReloadResult:
    """What a reload did: `ok`, or the problems that refused it (nothing changed)."""

    ok: bool
    version: str
    problems: list[str] = field(default_factory=list)
    added: int = 0
    removed: int = 0
    kept: int = 0

    def document(self) -> dict[str, Any]:
        if self.ok:
            return {"result": "ok", "config_version": self.version}
        return {"result": "failed", "problems": self.problems}


def kept_keys(old: Pool, new: Pool) -> dict[int, int]:
    """old index -> new index of each key with the same id and the same value."""
    return {
        i: j
        for i, key in enumerate(old.keys)
        if (j := new.index.get(key.id)) is not None and new.keys[j].fingerprint == key.fingerprint
    }


def refused(version: str, problems: Sequence[str], metrics: Metrics) -> ReloadResult:
    """Log the one line that names every problem, count it, and say so."""
    metrics.config_reloads.labels("failed").inc()
    log.error("config reload refused, the old config keeps serving: %s", "; ".join(problems))
    return ReloadResult(False, version, list(problems))


async def swap(
    current: Generation,
    config: Config,
    version: str,
    *,
    store: Store,
    metrics: Metrics,
    build: Callable[[Config, str, Mapping[str, Forwarder]], Generation],
    install: Callable[[Generation], None],
    retire: Callable[[Coroutine[Any, Any, None]], None],
    max_connections: int = 256,
) -> ReloadResult:
    """Swap `config` in for `current` (see the module docstring). `build` makes the new
    generation from a config, its version and the upstream clients to use, attaching nothing
    to the store; `install` points everything requests read at it (synchronous); `retire`
    keeps the task that closes what the old generation alone used."""
    problems = needs_restart(current.config, config)
    if problems:
        return refused(version, problems, metrics)
    before = {p.name: p for p in current.config.pools}
    clients: dict[str, Forwarder] = {}
    for p in config.pools:
        prior = before.get(p.name)
        running = current.forwarders.get(p.name)
        if (
            prior is not None
            and running is not None
            and _upstream(prior) == _upstream(p)
            and _same_ca(running)
        ):
            clients[p.name] = running
        else:
            clients[p.name] = forwarder_for(p, max_connections)
            try:
                await clients[p.name].open()
            except (OSError, ValueError) as exc:  # the CA file changed since validation
                reused = {id(f) for f in current.forwarders.values()}
                for opened in clients.values():
                    if id(opened) not in reused:
                        await opened.close()
                why = exc.strerror if isinstance(exc, OSError) else str(exc)
                problem = f"upstream_ca_file (pool {p.name}): cannot load ({why})"
                return refused(version, [problem], metrics)
    old = list(current.pools.values())
    for _ in range(SETTLE_TRIES):
        settled = await asyncio.gather(*(p.settle(SETTLE_SECONDS) for p in old))
        # a write may have begun while this task waited to resume: then settle again
        if not all(settled) or not any(p.writing for p in old):
            break
    if not all(settled) or any(p.writing for p in old):
        for p in config.pools:
            if clients[p.name] is not current.forwarders.get(p.name):
                await clients[p.name].close()
        return refused(version, ["storage: a write is still in flight; try again"], metrics)
    # From here to install(), no await: what requests read changes in one step.
    new = build(config, version, clients)
    fresh: dict[str, list[int]] = {}
    added = removed = kept_count = 0
    for name, pool in new.pools.items():
        was = current.pools.get(name)
        kept = kept_keys(was, pool) if was is not None else {}
        store.attach(pool)
        pool.start()
        if was is not None:
            was.hand_over(pool, kept)
            removed += len(was.keys) - len(kept)
            before_lane, lane = current.lanes[name], new.lanes[name]
            for i, j in kept.items():  # the dashboard's strip of recent outcomes goes on too
                lane.recent[j] = before_lane.recent[i]
        ids = {} if was is None else was.index
        carried = set(kept.values())
        for j in range(len(pool.keys)):
            if j in carried:
                continue
            if pool.keys[j].id in ids:  # same id, new value: what was learned does not apply
                pool.replaced(j)
            else:
                fresh.setdefault(name, []).append(j)
            added += 1
        kept_count += len(kept)
    for name, gone in current.pools.items():
        if name not in new.pools:
            store.mirrors.pop(name, None)
            gone.hand_over(None, {})
            removed += len(gone.keys)
    install(new)
    metrics.config_reloads.labels("ok").inc()
    log.info(
        "config reloaded: version %s, %d pools, keys %d added, %d removed, %d kept",
        version,
        len(new.pools),
        added,
        removed,
        kept_count,
    )
    for name, indices in fresh.items():
        await new.pools[name].adopt_stored(indices)
    retire(_retire(current, new))
    return ReloadResult(True, version, added=added, removed=removed, kept=kept_count)


async def _retire(old: Generation, new: Generation) -> None:
    """Close the upstream clients the old generation alone used, once its requests have
    ended (at most RETIRE_SECONDS after the reload)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RETIRE_SECONDS
    try:
        while old.in_flight() and loop.time() < deadline:
            await asyncio.sleep(RETIRE_POLL_SECONDS)
    finally:  # also when the server stops first
        used = {id(f) for f in new.forwarders.values()}
        for forwarder in old.forwarders.values():
            if id(forwarder) not in used:
                await forwarder.close()
