"""The in-memory store: state lives only in the pool and is lost on restart."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from poolswitch.storage.base import KeyRecord, KeyUpdate, Store


class MemoryStore(Store):
    name = "memory"
    persistent = False

    async def load(self, pool: str) -> Mapping[str, KeyRecord]:
        return {}

    async def write(self, updates: Sequence[KeyUpdate]) -> Sequence[KeyRecord]:
        return ()
