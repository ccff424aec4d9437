"""The SQLite store: key state survives a restart, even `kill -9`.

WAL journal with `synchronous=NORMAL`: a committed transaction survives the process being
killed at any moment, but the last transactions before a power loss or an OS crash may be lost
(they are in the WAL, not yet synced). One table, one row per (pool, key id), written by merging
(storage/merge.py) under the write lock, so several processes may share the file. Every sqlite3
call of a running proxy runs on one dedicated worker thread (a connection belongs to its thread),
never on the event loop.

The file carries its schema version in `PRAGMA user_version`. `MIGRATIONS[n - 1]` takes a file
from version n - 1 to n, in one transaction; a file at version 0 is either new (empty) or was
written before versions existed (today's table, version 1), and is brought to `SCHEMA_VERSION`
in place. A file from a newer version, or a database that is not a PoolSwitch state file, is
refused: never reset, never half-read.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from poolswitch.errors import StorageError
from poolswitch.storage.base import KeyRecord, KeyUpdate, Store
from poolswitch.storage.merge import merge

log = logging.getLogger("poolswitch.storage")

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
    # 3: every state change gets a version (storage/merge.py), so that processes sharing the
    # file apply each other's transitions in order.
    (
        "ALTER TABLE key_state ADD COLUMN version INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE key_state ADD COLUMN changed_at REAL",
    ),
)
"""Ordered SQL steps: `MIGRATIONS[n - 1]` takes a file from version n - 1 to n. Append only."""

SCHEMA_VERSION = len(MIGRATIONS)

_FIELDS = tuple(field.name for field in dataclasses.fields(KeyRecord))
_COLUMNS = frozenset(_FIELDS) - {"version", "changed_at"}
"""The key_state columns of every schema version (later versions may only add columns)."""

_UPSERT = (
    f"INSERT OR REPLACE INTO key_state (pool, {', '.join(_FIELDS)})"
    f" VALUES (?, {', '.join('?' for _ in _FIELDS)})"
)
_SELECT = f"SELECT {', '.join(_FIELDS)} FROM key_state WHERE pool = ?"
_SELECT_ONE = _SELECT + " AND key_id = ?"

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
        _check_columns(conn, path, {"pool", "version", "changed_at"})
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


POLL_SECONDS = 0.05
"""How often a running store looks for commits of other processes (`PRAGMA data_version`)."""


def _record(row: Sequence[Any]) -> KeyRecord:
    record = KeyRecord(*row)
    if record.disabled:
        return dataclasses.replace(record, available_at=math.inf, disabled=True)
    return dataclasses.replace(record, disabled=False)


def _row(pool: str, r: KeyRecord) -> tuple[Any, ...]:
    values = dataclasses.astuple(r)
    at = _FIELDS.index("available_at")
    return (pool, *values[:at], min(r.available_at, _INF), *values[at + 1 :])


class SQLiteStore(Store):
    """Shared between the processes that open the same file (`--workers`, or two proxies on
    one machine): each write merges into the stored rows under SQLite's write lock, and a
    poller on the store's thread applies other processes' commits to the pools within
    `POLL_SECONDS`."""

    name = "sqlite"

    def __init__(self, path: str, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.path = path
        self.clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="poolswitch-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._poller: asyncio.Task[None] | None = None
        self._data_version = 0

    async def _run(self, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn)
        except sqlite3.Error as exc:
            raise StorageError(f"sqlite store {self.path}: {exc}") from exc

    async def open(self) -> None:
        self._conn = await self._run(lambda: connect(self.path))
        self._data_version = await self._run(self._read_data_version)
        if self.mirrors:
            self._poller = asyncio.create_task(self._poll(), name="poolswitch-sqlite-poll")

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError("sqlite store used before open()")
        return self._conn

    def _read_data_version(self) -> int:
        version: int = self._connection().execute("PRAGMA data_version").fetchone()[0]
        return version

    def _read(self, pool: str) -> dict[str, KeyRecord]:
        rows = self._connection().execute(_SELECT, (pool,)).fetchall()
        return {row[0]: _record(row) for row in rows}

    async def load(self, pool: str) -> Mapping[str, KeyRecord]:
        return await self._run(lambda: self._read(pool))

    async def write(self, updates: Sequence[KeyUpdate]) -> Sequence[KeyRecord]:
        if not updates:
            return ()
        now = self.clock()

        def upsert() -> list[KeyRecord]:
            conn = self._connection()
            merged = []
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                for u in updates:
                    row = conn.execute(_SELECT_ONE, (u.pool, u.key_id)).fetchone()
                    record = merge(None if row is None else _record(row), u, now)
                    conn.execute(_UPSERT, _row(u.pool, record))
                    merged.append(record)
            return merged

        return await self._run(upsert)

    async def _poll(self) -> None:
        """Apply other processes' commits: `PRAGMA data_version` changes with each of them
        (never with this connection's own)."""
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                version = await self._run(self._read_data_version)
                if version == self._data_version:
                    continue
                self._data_version = version
                await self.refresh()
            except StorageError as exc:
                log.warning("reading other processes' key state failed: %s", exc)
                await asyncio.sleep(1.0)

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller

        def disconnect() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        try:
            await self._run(disconnect)
        finally:
            self._executor.shutdown(wait=True)
