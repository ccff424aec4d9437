"""Key-state stores behind one interface (`Store`): memory and sqlite (a shared one later)."""

from __future__ import annotations

from poolswitch.config import StorageConfig
from poolswitch.storage.base import KeyRecord, KeyUpdate, Store
from poolswitch.storage.memory import MemoryStore
from poolswitch.storage.sqlite import SQLiteStore

__all__ = ["KeyRecord", "KeyUpdate", "MemoryStore", "SQLiteStore", "Store", "create_store"]


def create_store(config: StorageConfig) -> Store:
    if config.backend == "sqlite":
        return SQLiteStore(config.sqlite_path)
    return MemoryStore()
