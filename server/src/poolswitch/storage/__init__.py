"""Key-state stores behind one interface (`Store`): memory, sqlite (one machine) and redis
(shared by replicas)."""

from __future__ import annotations

import time
from collections.abc import Callable

from poolswitch.config import StorageConfig
from poolswitch.errors import StorageError
from poolswitch.storage import sqlite
from poolswitch.storage.base import KeyRecord, KeyUpdate, Store
from poolswitch.storage.memory import MemoryStore
from poolswitch.storage.sqlite import SQLiteStore

__all__ = [
    "KeyRecord",
    "KeyUpdate",
    "MemoryStore",
    "SQLiteStore",
    "Store",
    "check_store",
    "create_store",
]


def create_store(config: StorageConfig, clock: Callable[[], float] = time.time) -> Store:
    if config.backend == "sqlite":
        return SQLiteStore(config.sqlite_path, clock=clock)
    if config.backend == "redis":
        # imported only here: redis-py takes a while to import
        from poolswitch.storage.redis import RedisStore

        assert config.redis_url is not None  # crosschecks.py
        return RedisStore(
            config.redis_url,
            namespace=config.namespace,
            timeout=config.redis_timeout_seconds,
            start_without_redis=config.start_without_redis,
            clock=clock,
        )
    return MemoryStore()


def check_store(config: StorageConfig, *, prepare: bool = False) -> str | None:
    """One line naming the setting when the configured store cannot be used, else None.

    Blocking: for the command line, before the event loop runs. Without `prepare` nothing is
    changed (`poolswitch validate`); with it the store is also created or upgraded to the
    current schema (`poolswitch start`, so that a bad file stops it with this line rather than
    failing inside the server's start-up)."""
    if config.backend == "redis" and prepare and not config.start_without_redis:
        from poolswitch.storage.redis import reachable

        assert config.redis_url is not None
        problem = reachable(config.redis_url)
        return None if problem is None else f"storage.redis_url: {problem}"
    if config.backend == "sqlite":
        try:
            if prepare:
                sqlite.connect(config.sqlite_path).close()
            else:
                sqlite.inspect(config.sqlite_path)
        except StorageError as err:
            return f"storage.sqlite_path: {err}"
    return None
