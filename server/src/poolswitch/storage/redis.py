"""The Redis store: key state shared by every replica (the only module that knows redis-py).

Layout, under the configured namespace `ns` (the braces keep every key in one Redis Cluster
slot, so the Lua script may touch them together):

    {ns}:key:<pool>:<key id>   a hash per key: the KeyRecord fields (merge.py), "" for None
    {ns}:events                the channel where each write publishes the records it changed

A write runs one Lua script (`_MERGE`): for every update it merges the stored hash and the
update by the rule of storage/merge.py, counters with HINCRBY, and publishes the changed records
in one message. Pool names have no `:`, so a key's name is unambiguous.

Every replica keeps its pools' state in memory and selects keys from there; this store only
carries changes:
- after its own write, the merged records (the longer of two concurrent cooldowns) go back into
  the pool;
- a subscriber applies the records other replicas publish (within milliseconds);
- every `RECONCILE_SECONDS` and after each reconnect, every key is re-read (a lost message or a
  Redis that restarted cannot leave a replica wrong for long), and the pools write back what
  they learned while Redis was unreachable.

Redis unreachable or slow never fails a request: `write()` raises StorageError at once while
Redis is known to be down (the pool keeps its state in memory and retries), a monitor pings
every `PING_SECONDS` and reports the outage (`problem`) until Redis answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, cast
from urllib.parse import urlsplit

import redis
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from poolswitch.errors import StorageError
from poolswitch.storage.base import KeyRecord, KeyUpdate, Store

log = logging.getLogger("poolswitch.storage")

PING_SECONDS = 0.5
"""How often the monitor checks that Redis answers (an outage shows within about a second)."""
RECONCILE_SECONDS = 2.0
"""How often every key is re-read, whatever the channel said."""
LISTEN_SECONDS = 0.25
"""The subscriber's longest wait for a message before it looks around (closing?)."""
CONNECT_SECONDS = 2.0
"""The longest start-up waits for Redis before it starts degraded or refuses."""
_INF = 1e308
HEARTBEAT_SECONDS = 1.0
"""How often each replica publishes its config version (and reads the others')."""
REPLICA_SECONDS = 10.0
"""A replica not heard from for this long is dropped from the list (and the hash)."""

_FIELDS = (
    "fingerprint",
    "available_at",
    "disabled",
    "reason",
    "source",
    "strikes",
    "total_requests",
    "successes",
    "errors",
    "failovers",
    "estimated_remaining_quota",
    "last_used_at",
    "version",
    "changed_at",
)
_INTS = frozenset(
    {"strikes", "total_requests", "successes", "errors", "failovers", "version", "disabled"}
)
_FLOATS = frozenset({"available_at", "last_used_at", "changed_at"})

# The rule of storage/merge.py, in Lua (tests/test_redis_store.py runs both on one table).
# KEYS[i]: the hash of update i. ARGV[1]: JSON list of updates (strings, "" for None);
# ARGV[2]: now (epoch seconds); ARGV[3]: the channel; ARGV[4]: the writer's id (it ignores its
# own messages). Returns the JSON list of merged records.
_MERGE = """
local updates = cjson.decode(ARGV[1])
local now = tonumber(ARGV[2])
local strength = {[''] = 0, recovered = 1, park = 2, set = 3, replace = 4}
local out, changed = {}, {}
local function num(v) return tonumber(v) or 0 end
for i, u in ipairs(updates) do
  local flat = redis.call('HGETALL', KEYS[i])
  local s = {}
  for j = 1, #flat, 2 do s[flat[j]] = flat[j + 1] end
  local kind = u.kind
  if s.fingerprint and s.fingerprint ~= '' and s.fingerprint ~= u.fingerprint then
    kind = 'replace'
  end
  local old = {available_at = s.available_at or '0', disabled = s.disabled or '0',
               reason = s.reason or '', source = s.source or '', strikes = s.strikes or '0'}
  if kind == 'replace' then
    s = {version = s.version}
  end
  local r = {}
  r.fingerprint = u.fingerprint
  local adds = {total_requests = 'add_requests', successes = 'add_successes',
                errors = 'add_errors', failovers = 'add_failovers'}
  for name, add in pairs(adds) do
    r[name] = string.format('%d', num(s[name]) + num(u[add]))
  end
  if u.estimated_remaining_quota ~= '' then
    r.estimated_remaining_quota = u.estimated_remaining_quota
  else
    r.estimated_remaining_quota = s.estimated_remaining_quota or ''
  end
  r.last_used_at = s.last_used_at or ''
  local used = u.last_used_at
  if used ~= '' and (r.last_used_at == '' or num(used) > num(r.last_used_at)) then
    r.last_used_at = used
  end
  local new = nil
  local strikes = string.format('%d', math.max(num(old.strikes), num(u.strikes)))
  if kind == 'set' or kind == 'replace' then
    new = {available_at = u.available_at, disabled = u.disabled, reason = u.reason,
           source = u.source, strikes = u.strikes}
  elseif kind == 'park' then
    if old.disabled ~= '1' then
      if u.disabled == '1' or num(u.available_at) > num(old.available_at) then
        new = {available_at = u.available_at, disabled = u.disabled, reason = u.reason,
               source = u.source, strikes = strikes}
      else
        new = {available_at = old.available_at, disabled = old.disabled, reason = old.reason,
               source = old.source, strikes = strikes}
      end
    end
  elseif kind == 'recovered' then
    if old.disabled ~= '1' and num(old.available_at) <= now and num(old.strikes) > 0 then
      new = {available_at = old.available_at, disabled = old.disabled, reason = old.reason,
             source = old.source, strikes = '0'}
    end
  end
  local differs = false
  if new then
    for name, value in pairs(new) do
      if num(value) ~= num(old[name]) or (tonumber(value) == nil and value ~= old[name]) then
        differs = true
      end
    end
  end
  local state = old
  r.version = s.version or '0'
  r.changed_at = s.changed_at or ''
  if differs then
    state = new
    r.version = string.format('%.0f', math.max(num(s.version) + 1, math.floor(now * 1000)))
    r.changed_at = ARGV[2]
  end
  for name, value in pairs(state) do r[name] = value end
  local args = {}
  for name, value in pairs(r) do
    table.insert(args, name)
    table.insert(args, value)
  end
  redis.call('HSET', KEYS[i], unpack(args))
  r.pool = u.pool
  r.key_id = u.key_id
  table.insert(out, r)
  if differs then table.insert(changed, r) end
end
if #changed > 0 then
  redis.call('PUBLISH', ARGV[3], cjson.encode({origin = ARGV[4], records = changed}))
end
return cjson.encode(out)
"""


def describe(url: str) -> str:
    """The server a URL names, for a log line or an error: scheme, host and port, never the
    user or password."""
    parts = urlsplit(url)
    port = parts.port or 6379
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port}"


def reason(exc: BaseException) -> str:
    """What went wrong with Redis, in one line without secrets (redis-py's messages name the
    host and port, never the password)."""
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "no answer in time"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def reachable(url: str, timeout: float = CONNECT_SECONDS) -> str | None:
    """Blocking, for the command line before the server starts: why Redis at `url` cannot be
    used (one line, no secrets), or None when it answers PING."""
    conn = redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )
    try:
        conn.ping()
    except (RedisError, OSError) as exc:
        return f"cannot reach redis at {describe(url)}: {reason(exc)}"
    finally:
        conn.close()
    return None


def client(url: str, timeout: float) -> aioredis.Redis:
    """A client that never retries by itself (the store decides) and gives up after
    `timeout` on a socket that does not answer."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
        health_check_interval=0,
    )


def text(value: Any) -> str:
    """A field as the hash and the script hold it: "" for None, 1/0, floats exact."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(min(value, _INF))
    return str(value)


def stored_fields(record: KeyRecord) -> dict[str, str]:
    """A record as its hash holds it (what `load` decodes)."""
    return {name: text(getattr(record, name)) for name in _FIELDS}


def _encode(u: KeyUpdate) -> dict[str, str]:
    return {
        "pool": u.pool,
        "key_id": u.key_id,
        "kind": u.kind or "",
        "fingerprint": u.fingerprint,
        "available_at": text(u.available_at),
        "disabled": text(u.disabled),
        "reason": text(u.reason),
        "source": text(u.source),
        "strikes": text(u.strikes),
        "estimated_remaining_quota": text(u.estimated_remaining_quota),
        "last_used_at": text(u.last_used_at),
        "add_requests": text(u.add_requests),
        "add_successes": text(u.add_successes),
        "add_errors": text(u.add_errors),
        "add_failovers": text(u.add_failovers),
    }


def _decode(key_id: str, fields: Mapping[str, Any]) -> KeyRecord:
    values: dict[str, Any] = {}
    for name in _FIELDS:
        raw = fields.get(name)
        if raw is None or raw == "":
            continue
        if name in _INTS:
            values[name] = int(float(raw))
        elif name in _FLOATS:
            values[name] = float(raw)
        else:
            values[name] = str(raw)
    disabled = bool(values.pop("disabled", 0))
    if disabled:
        values["available_at"] = math.inf
    return KeyRecord(key_id=key_id, disabled=disabled, **values)


class RedisStore(Store):
    name = "redis"
    recovers_on_write = False  # the monitor decides, and resyncs first

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "poolswitch",
        timeout: float = 0.25,
        start_without_redis: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.url = url
        self.server = describe(url)
        self.namespace = namespace
        self.commit_timeout = timeout
        self.start_without_redis = start_without_redis
        self.clock = clock
        self.channel = f"{{{namespace}}}:events"
        self.origin = secrets.token_hex(8)
        """This store's id in the messages it publishes (it has applied its own already)."""
        # commands wait at most a few commit timeouts, and never under a second for a reply
        self._redis = client(url, max(timeout * 4, 1.0))
        self._script = self._redis.register_script(_MERGE)
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._replica: tuple[str, str] | None = None  # (id, config version) to publish
        self._replicas: list[dict[str, Any]] = []
        self._beat = asyncio.Event()

    async def _ping(self) -> None:
        # redis-py types its commands for both clients (Awaitable[bool] | bool)
        await cast(Awaitable[bool], self._redis.ping())

    def key(self, pool: str, key_id: str) -> str:
        return f"{{{self.namespace}}}:key:{pool}:{key_id}"

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        try:
            await asyncio.wait_for(self._ping(), CONNECT_SECONDS)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            line = f"cannot reach redis at {self.server}: {reason(exc)}"
            if not self.start_without_redis:
                await self._redis.aclose()
                raise StorageError(line) from None
            self.failing(line, self.clock())
            log.warning("%s; serving on local state until it answers (degraded)", line)
        else:
            log.info("key state shared through redis at %s", self.server)
        self._start(self._monitor(), "poolswitch-redis-monitor")
        self._start(self._subscribe(), "poolswitch-redis-subscriber")
        self._start(self._heartbeat(), "poolswitch-redis-heartbeat")

    def _start(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    async def close(self) -> None:
        # redis-py's PubSub.get_message may swallow a cancel: the flag ends the loops too
        self._closing = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2 * LISTEN_SECONDS)
        self._tasks.clear()
        with contextlib.suppress(RedisError, OSError):
            await self._redis.aclose()

    # -- replicas --------------------------------------------------------------------------

    def announce(self, replica: str, config_version: str) -> None:
        self._replica = (replica, config_version)
        self._beat.set()

    def replicas(self) -> list[dict[str, Any]]:
        return self._replicas

    async def _heartbeat(self) -> None:
        """Every HEARTBEAT_SECONDS (and at once after a reload): this replica's config version
        into the hash `{ns}:replicas`, then every replica's read back; one not heard from for
        REPLICA_SECONDS is dropped. A failure waits for the next beat (the monitor reports
        outages)."""
        name = f"{{{self.namespace}}}:replicas"
        while not self._closing:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._beat.wait(), HEARTBEAT_SECONDS)
            self._beat.clear()
            if self._replica is None or self.problem is not None:
                continue
            now = self.clock()
            replica, version = self._replica
            entry = json.dumps({"config_version": version, "seen_at": now})
            try:
                await cast(Awaitable[int], self._redis.hset(name, replica, entry))
                found = await cast(Awaitable[dict[Any, Any]], self._redis.hgetall(name))
                seen, stale = [], []
                for key, raw in found.items():
                    doc = json.loads(raw)
                    if now - float(doc["seen_at"]) > REPLICA_SECONDS:
                        stale.append(key)
                    else:
                        seen.append({"id": text(key), **doc})
                if stale:
                    await cast(Awaitable[int], self._redis.hdel(name, *stale))
                self._replicas = sorted(seen, key=lambda r: str(r["id"]))
            except (RedisError, OSError, ValueError, KeyError, TypeError):
                continue

    # -- reads and writes ------------------------------------------------------------------

    async def load(self, pool: str) -> Mapping[str, KeyRecord]:
        mirror = self.mirrors.get(pool)
        ids = list(mirror.key_ids) if mirror is not None else []
        if not ids:
            return {}
        if self.problem is not None:
            raise StorageError(self.problem)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key_id in ids:
                    pipe.hgetall(self.key(pool, key_id))
                found = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._failed(exc) from None
        return {
            key_id: _decode(key_id, fields)
            for key_id, fields in zip(ids, found, strict=True)
            if fields
        }

    async def write(self, updates: Sequence[KeyUpdate]) -> Sequence[KeyRecord]:
        if not updates:
            return ()
        if self.problem is not None:
            raise StorageError(self.problem)  # known down: never wait on it
        keys = [self.key(u.pool, u.key_id) for u in updates]
        encoded = json.dumps([_encode(u) for u in updates])
        args = [encoded, repr(self.clock()), self.channel, self.origin]
        try:
            raw = await self._script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise self._failed(exc) from None
        return [_decode(r["key_id"], r) for r in json.loads(raw)]

    def _failed(self, exc: BaseException) -> StorageError:
        line = f"redis at {self.server}: {reason(exc)}"
        if self.problem is None:
            log.error("%s; serving on local state until it answers (degraded)", line)
        self.failing(line, self.clock())
        return StorageError(line)

    # -- background ------------------------------------------------------------------------

    async def _monitor(self) -> None:
        """Ping; on the first answer after an outage, resync; re-read every key now and then."""
        last_reconcile = self.clock()
        while not self._closing:
            await asyncio.sleep(PING_SECONDS)
            try:
                await asyncio.wait_for(self._ping(), max(PING_SECONDS, self.commit_timeout))
            except (RedisError, OSError, asyncio.TimeoutError) as exc:
                self._failed(exc)
                continue
            if self.problem is not None:
                down = self.clock() - (self.problem_since or self.clock())
                self.working()
                log.warning("redis at %s answers again after %.1fs: resyncing", self.server, down)
                await self._resync()
                last_reconcile = self.clock()
            elif self.clock() - last_reconcile >= RECONCILE_SECONDS:
                await self._reconcile()
                last_reconcile = self.clock()

    async def _resync(self) -> None:
        """Write back what every pool learned while Redis was away, then read what the others
        learned."""
        for mirror in list(self.mirrors.values()):
            await mirror.resync()
        await self._reconcile()

    async def _reconcile(self) -> None:
        with contextlib.suppress(StorageError):  # the outage is noted; the monitor retries
            await self.refresh()

    async def _subscribe(self) -> None:
        """Apply the records other replicas publish. Messages sent while the channel was down
        are lost, and a Redis that restarted may have lost everything: after a resubscription,
        resync (write back, then re-read)."""
        delay = 0.1
        subscribed = False
        while not self._closing:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                delay = 0.1
                if subscribed:  # the channel dropped: maybe Redis restarted, empty
                    await self._resync()
                else:
                    await self._reconcile()
                subscribed = True
                while not self._closing:
                    message = await pubsub.get_message(timeout=LISTEN_SECONDS)
                    if message is not None and message.get("type") == "message":
                        self._received(message["data"])
            except (RedisError, OSError, asyncio.TimeoutError) as exc:
                if self.problem is None:
                    log.warning("redis channel lost (%s): reconnecting", reason(exc))
            finally:
                with contextlib.suppress(RedisError, OSError, asyncio.TimeoutError):
                    await asyncio.wait_for(pubsub.aclose(), 1.0)  # type: ignore[no-untyped-call]
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _received(self, data: str) -> None:
        try:
            message = json.loads(data)
            if message["origin"] == self.origin:
                return
            by_pool: dict[str, list[KeyRecord]] = {}
            for r in message["records"]:
                by_pool.setdefault(r["pool"], []).append(_decode(r["key_id"], r))
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed message on %s", self.channel)
            return
        for name, found in by_pool.items():
            mirror = self.mirrors.get(name)
            if mirror is not None:
                mirror.apply(found)
