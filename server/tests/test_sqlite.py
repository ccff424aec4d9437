"""The SQLite store's file: schema versions, migrations, and refusing files it cannot use."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path

import pytest

from poolswitch.config import StorageConfig
from poolswitch.errors import StorageError
from poolswitch.storage import KeyRecord, KeyUpdate, SQLiteStore, check_store, sqlite

# The key_state table as poolswitch wrote it before schema versions (user_version 0).
V0_TABLE = """
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


def make_file(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in statements:
        conn.execute(statement)
    conn.close()


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    return version


def journal_mode(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        mode: str = conn.execute("PRAGMA journal_mode").fetchone()[0]
    return mode


def load(path: Path, pool: str = "default") -> Mapping[str, KeyRecord]:
    async def run() -> Mapping[str, KeyRecord]:
        store = SQLiteStore(str(path))
        await store.open()
        try:
            return await store.load(pool)
        finally:
            await store.close()

    return asyncio.run(run())


def problem(path: Path, *, prepare: bool = False) -> str | None:
    """The line `poolswitch validate` (or with `prepare`, `start`) prints for `path`."""
    return check_store(StorageConfig(backend="sqlite", sqlite_path=str(path)), prepare=prepare)


def problems(path: Path) -> tuple[str | None, str | None]:
    """(validate's line, start's line) for a store at `path`."""
    return problem(path), problem(path, prepare=True)


def test_a_file_from_before_schema_versions_is_upgraded_and_keeps_its_state(
    tmp_path: Path,
) -> None:
    db = tmp_path / "state.db"
    make_file(
        db,
        V0_TABLE,
        "INSERT INTO key_state (key_id, fingerprint, available_at, reason, source, strikes,"
        " total_requests, errors) VALUES ('a', 'f1', 4e9, 'rate_limited', 'retry-after', 1, 7, 2)",
        "INSERT INTO key_state (key_id, disabled, available_at, reason) VALUES"
        " ('b', 1, 1e308, 'key_invalid')",
    )
    assert user_version(db) == 0
    assert problem(db) is None  # validate accepts it and changes nothing
    assert user_version(db) == 0
    records = load(db)
    assert user_version(db) == sqlite.SCHEMA_VERSION == 3
    a, b = records["a"], records["b"]
    assert (a.available_at, a.reason, a.source, a.strikes) == (
        4e9,
        "rate_limited",
        "retry-after",
        1,
    )
    assert (a.total_requests, a.errors, a.fingerprint) == (7, 2, "f1")
    assert b.disabled and b.available_at == float("inf") and b.reason == "key_invalid"
    assert load(db) == records  # opening an upgraded file again changes nothing


def test_a_single_pool_file_is_upgraded_to_state_keyed_by_pool(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    make_file(
        db,
        V0_TABLE,
        "INSERT INTO key_state (key_id, available_at, reason) VALUES ('a', 4e9, 'rate_limited')",
        "PRAGMA user_version = 1",
    )
    assert load(db)["a"].reason == "rate_limited"  # the seed's one pool is called "default"
    assert load(db, "openai") == {}

    async def write_both() -> None:
        store = SQLiteStore(str(db))
        await store.open()
        try:
            update = dict(
                key_id="a",
                fingerprint="f",
                available_at=0.0,
                disabled=False,
                reason=None,
                source=None,
                strikes=0,
                estimated_remaining_quota=None,
                last_used_at=None,
                add_requests=3,
            )
            await store.write([KeyUpdate(**update, pool="openai")])  # type: ignore[arg-type]
        finally:
            await store.close()

    asyncio.run(write_both())
    assert load(db, "openai")["a"].total_requests == 3  # same key id, another pool: its own row
    assert load(db)["a"].reason == "rate_limited" and load(db)["a"].total_requests == 0


def test_a_new_file_is_created_at_the_latest_version(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    assert problem(db) is None and not db.exists()  # validate creates nothing
    assert load(db) == {}
    assert user_version(db) == sqlite.SCHEMA_VERSION
    assert journal_mode(db) == "wal"


def test_a_file_from_a_newer_poolswitch_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    make_file(db, V0_TABLE, "ALTER TABLE key_state ADD COLUMN later TEXT", "PRAGMA user_version=7")
    line = "storage.sqlite_path: written by a newer poolswitch (schema 7; this one reads up to 3)"
    assert problems(db) == (line, line)
    with pytest.raises(StorageError, match="newer poolswitch"):
        load(db)
    assert user_version(db) == 7 and journal_mode(db) == "delete"


@pytest.mark.parametrize(
    ("statements", "says"),
    [
        (
            ("CREATE TABLE notes (body TEXT)",),
            "is not a PoolSwitch state file (no key_state table)",
        ),
        (
            ("CREATE TABLE key_state (key_id TEXT PRIMARY KEY, reason TEXT)",),
            "is not a PoolSwitch state file (key_state lacks available_at, disabled, errors,",
        ),
    ],
)
def test_another_programs_database_is_refused_untouched(
    tmp_path: Path, statements: tuple[str, ...], says: str
) -> None:
    db = tmp_path / "other.db"
    make_file(db, *statements)
    validate, start = problems(db)
    assert validate == start
    assert validate is not None and validate.startswith(f"storage.sqlite_path: {str(db)!r} {says}")
    assert journal_mode(db) == "delete" and user_version(db) == 0


def test_unusable_places_are_named_in_one_line(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(os.urandom(8192))
    a_file = tmp_path / "plain.txt"
    a_file.write_text("not a directory")
    cases = {
        corrupt: f"{str(corrupt)!r} is not a SQLite database (file is not a database)",
        a_file / "x.db": f"{str(a_file)!r} is not a directory",
        tmp_path / "missing" / "x.db": f"directory {str(tmp_path / 'missing')!r} does not exist",
        tmp_path: f"{str(tmp_path)!r} is not a file",
    }
    for path, says in cases.items():
        assert problems(path) == (f"storage.sqlite_path: {says}",) * 2, path
    assert corrupt.stat().st_size == 8192 and not (tmp_path / "missing").exists()


def test_a_failed_migration_step_leaves_the_file_at_the_version_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "state.db"
    load(db)
    broken = (*sqlite.MIGRATIONS, ("CREATE TABLE extra (x TEXT)", "THIS IS NOT SQL"))
    monkeypatch.setattr(sqlite, "MIGRATIONS", broken)
    monkeypatch.setattr(sqlite, "SCHEMA_VERSION", len(broken))
    with pytest.raises(StorageError, match="syntax error"):
        sqlite.connect(str(db)).close()
    assert user_version(db) == 3
    with sqlite3.connect(db) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "extra" not in tables  # the step's first statement was rolled back with it


def test_memory_storage_needs_no_check() -> None:
    assert check_store(StorageConfig()) is None
    assert check_store(StorageConfig(sqlite_path="/nonexistent/dir/x.db")) is None
