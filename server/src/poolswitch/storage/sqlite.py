"""The SQLite store: key state survives a restart (even `kill -9`).

WAL journal, one table, one row per key id. Every sqlite3 call runs on one dedicated worker
thread (a connection belongs to its thread), never on the event loop.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from poolswitch.errors import StorageError
from poolswitch.storage.base import KeyRecord, KeyUpdate, Store

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS key_state (
    key_id TEXT PRIMARY KEY,
    fingerprint TEXT,
    available_at REAL NOT NULL DEFAULT 0,
    disabled INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    source TEXT,
    strikes INTEGER NOT NULL DEFAULT 0,
    total_requests INTEGER NOT NULL DEFAULT 0,
    successes INTEGER NOT NULL DEFAULT 0,
    errors INTEGER NOT NULL DEFAULT 0,
    failovers INTEGER NOT NULL DEFAULT 0,
    estimated_remaining_quota INTEGER,
    last_used_at REAL
)
"""

_UPSERT = """
INSERT INTO key_state (key_id, fingerprint, available_at, disabled, reason, source, strikes,
                       estimated_remaining_quota, last_used_at,
                       total_requests, successes, errors, failovers)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(key_id) DO UPDATE SET
    fingerprint = excluded.fingerprint,
    available_at = excluded.available_at,
    disabled = excluded.disabled,
    reason = excluded.reason,
    source = excluded.source,
    strikes = excluded.strikes,
    estimated_remaining_quota = excluded.estimated_remaining_quota,
    last_used_at = excluded.last_used_at,
    total_requests = total_requests + excluded.total_requests,
    successes = successes + excluded.successes,
    errors = errors + excluded.errors,
    failovers = failovers + excluded.failovers
"""

_SELECT = (
    "SELECT key_id, available_at, disabled, reason, total_requests, successes, errors, failovers,"
    " estimated_remaining_quota, last_used_at, source, strikes, fingerprint FROM key_state"
)

_INF = 1e308  # SQLite REAL cannot hold inf portably; disabled keys are marked by `disabled`.


class SQLiteStore(Store):
    name = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="poolswitch-sqlite")
        self._conn: sqlite3.Connection | None = None

    async def _run(self, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn)
        except sqlite3.Error as exc:
            raise StorageError(f"sqlite store {self.path}: {exc}") from exc

    async def open(self) -> None:
        def connect() -> None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute(_SCHEMA)
            self._conn = conn

        await self._run(connect)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError("sqlite store used before open()")
        return self._conn

    async def load(self) -> Mapping[str, KeyRecord]:
        def read() -> dict[str, KeyRecord]:
            rows = self._connection().execute(_SELECT).fetchall()
            return {
                row[0]: KeyRecord(
                    key_id=row[0],
                    available_at=math.inf if row[2] else float(row[1]),
                    disabled=bool(row[2]),
                    reason=row[3],
                    total_requests=row[4],
                    successes=row[5],
                    errors=row[6],
                    failovers=row[7],
                    estimated_remaining_quota=row[8],
                    last_used_at=row[9],
                    source=row[10],
                    strikes=row[11],
                    fingerprint=row[12],
                )
                for row in rows
            }

        return await self._run(read)

    async def write(self, updates: Sequence[KeyUpdate]) -> None:
        rows = [
            (
                u.key_id,
                u.fingerprint,
                min(u.available_at, _INF),
                int(u.disabled),
                u.reason,
                u.source,
                u.strikes,
                u.estimated_remaining_quota,
                u.last_used_at,
                u.add_requests,
                u.add_successes,
                u.add_errors,
                u.add_failovers,
            )
            for u in updates
        ]

        def upsert() -> None:
            conn = self._connection()
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(_UPSERT, rows)

        if rows:
            await self._run(upsert)

    async def close(self) -> None:
        def disconnect() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        try:
            await self._run(disconnect)
        finally:
            self._executor.shutdown(wait=True)
