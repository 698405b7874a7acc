"""Waiting for the directory in memory to hold what was just written."""

from __future__ import annotations

import asyncio

from callpop.store.caller_index import IndexKeeper


async def fresh(keeper: IndexKeeper) -> None:
    """Read a copy that is still current a moment later: the database's word on our own
    writes (SQLite: the counter the watch checks; PostgreSQL: the notification) arrives
    after them and moves the generation too, as it does in service (where the keeper
    waits for the directory to be still before reading)."""
    for _ in range(100):
        await keeper.rebuild()
        await asyncio.sleep(0.3)
        if not keeper.stale():
            return
    raise AssertionError("every copy was overtaken by a write")
