"""The SQLite store: key state survives a restart, even `kill -9`.

WAL journal with `synchronous=NORMAL`: a committed transaction survives the process being
killed at any moment, but the last transactions before a power loss or an OS crash may be lost
(they are in the WAL, not yet synced). One table, one row per (pool, key id). Every sqlite3 call
of a running proxy runs on one dedicated worker thread (a connection belongs to its thread),
never on the event loop.

The file carries its schema version in `PRAGMA user_version`. `MIGRATIONS[n - 1]` takes a file
from version n - 1 to n, in one transaction; a file at version 0 is either new (empty) or was
written before versions existed (today's table, version 1), and is brought to `SCHEMA_VERSION`
in place. A file from a newer version, or a database that is not a PoolSwitch state file, is
refused: never reset, never half-read.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from poolswitch.errors import StorageError
from poolswitch.storage.base import KeyRecord, KeyUpdate, Store

T = TypeVar("T")

_KEY_STATE = """
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

_KEY_STATE_V2 = """
CREATE TABLE key_state_v2 (
    pool TEXT NOT NULL,
    key_id TEXT NOT NULL,
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
    last_used_at REAL,
    PRIMARY KEY (pool, key_id)
)
"""

_STATE_COLUMNS = (
    "key_id, fingerprint, available_at, disabled, reason, source, strikes, total_requests,"
    " successes, errors, failovers, estimated_remaining_quota, last_used_at"
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the key_state table. Files written before schema versions have it at user_version 0;
    # `IF NOT EXISTS` makes this step a no-op for them, and they are marked version 1.
    (_KEY_STATE,),
    # 2: state keyed by (pool, key id); the rows of a single-pool file belong to pool "default"
    # (the name of the one pool a config without `pools:` has).
    (
        _KEY_STATE_V2,
        f"INSERT INTO key_state_v2 (pool, {_STATE_COLUMNS})"
        f" SELECT 'default', {_STATE_COLUMNS} FROM key_state",
        "DROP TABLE key_state",
        "ALTER TABLE key_state_v2 RENAME TO key_state",
    ),
)
"""Ordered SQL steps: `MIGRATIONS[n - 1]` takes a file from version n - 1 to n. Append only."""

SCHEMA_VERSION = len(MIGRATIONS)

_COLUMNS = frozenset(field.name for field in dataclasses.fields(KeyRecord))
"""The key_state columns of every schema version (later versions may only add columns)."""

_UPSERT = """
INSERT INTO key_state (pool, key_id, fingerprint, available_at, disabled, reason, source, strikes,
                       estimated_remaining_quota, last_used_at,
                       total_requests, successes, errors, failovers)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(pool, key_id) DO UPDATE SET
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
    " WHERE pool = ?"
)

_INF = 1e308  # SQLite REAL cannot hold inf portably; disabled keys are marked by `disabled`.


def inspect(path: str) -> None:
    """Check, changing nothing, that a store can be opened at `path`: its directory exists and
    is writable, and the file, if present, is a PoolSwitch state file of a known schema version.
    Raises StorageError with one line (the caller names the setting)."""
    _check_place(path)
    if not os.path.exists(path):
        return
    conn = _connect(path)
    try:
        _check_contents(conn, path)
    finally:
        conn.close()


def connect(path: str) -> sqlite3.Connection:
    """Open (or create) the state file at `path`, upgraded to `SCHEMA_VERSION`; raises
    StorageError with one line. The connection runs in autocommit mode (explicit transactions)."""
    _check_place(path)
    conn = _connect(path)
    try:
        _check_contents(conn, path)  # before WAL: never convert someone else's database
        _guarded(path, lambda: conn.execute("PRAGMA journal_mode=WAL"))
        _guarded(path, lambda: conn.execute("PRAGMA synchronous=NORMAL"))
        _guarded(path, lambda: _migrate(conn))
        _check_columns(conn, path, {"pool"})
    except BaseException:
        conn.close()
        raise
    return conn


def _check_place(path: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(directory):
        raise StorageError(f"directory {directory!r} does not exist")
    if not os.path.isdir(directory):
        raise StorageError(f"{directory!r} is not a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise StorageError(f"directory {directory!r} is not writable (the WAL journal lives there)")
    if os.path.exists(path):
        if not os.path.isfile(path):
            raise StorageError(f"{path!r} is not a file")
        if not os.access(path, os.R_OK | os.W_OK):
            raise StorageError(f"{path!r} is not readable and writable")


def _connect(path: str) -> sqlite3.Connection:
    def do() -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=5000")
        return conn

    return _guarded(path, do)


def _guarded(path: str, fn: Callable[[], T]) -> T:
    """Run `fn`, turning a sqlite3 error into a one-line StorageError."""
    try:
        return fn()
    except sqlite3.Error as exc:
        name = getattr(exc, "sqlite_errorname", "")
        if name == "SQLITE_NOTADB":
            raise StorageError(f"{path!r} is not a SQLite database ({exc})") from None
        if name.startswith("SQLITE_CORRUPT"):
            raise StorageError(f"{path!r} is corrupt ({exc})") from None
        raise StorageError(f"cannot use {path!r}: {exc}") from None


def _version(conn: sqlite3.Connection) -> int:
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    return version


def _check_contents(conn: sqlite3.Connection, path: str) -> None:
    """Refuse a file this code cannot read: a newer schema, or someone else's database."""
    version = _guarded(path, lambda: _version(conn))
    if version > SCHEMA_VERSION:
        raise StorageError(
            f"written by a newer poolswitch (schema {version}; this one reads up to "
            f"{SCHEMA_VERSION})"
        )
    tables = _guarded(
        path,
        lambda: {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        },
    )
    if tables and "key_state" not in tables:
        raise StorageError(f"{path!r} is not a PoolSwitch state file (no key_state table)")
    if "key_state" in tables:
        _check_columns(conn, path)


def _check_columns(
    conn: sqlite3.Connection, path: str, extra: frozenset[str] | set[str] = frozenset()
) -> None:
    columns = _guarded(
        path, lambda: {row[1] for row in conn.execute("PRAGMA table_info(key_state)")}
    )
    missing = (_COLUMNS | extra) - columns
    if missing:
        lacks = ", ".join(sorted(missing))
        raise StorageError(f"{path!r} is not a PoolSwitch state file (key_state lacks {lacks})")


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring the file to SCHEMA_VERSION, one transaction per step (safe against a second proxy
    starting on the same file: each step re-reads the version under the write lock)."""
    for target in range(_version(conn) + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if _version(conn) < target:
                for statement in MIGRATIONS[target - 1]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {target}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


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
        self._conn = await self._run(lambda: connect(self.path))

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError("sqlite store used before open()")
        return self._conn

    async def load(self, pool: str) -> Mapping[str, KeyRecord]:
        def read() -> dict[str, KeyRecord]:
            rows = self._connection().execute(_SELECT, (pool,)).fetchall()
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
                u.pool,
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
