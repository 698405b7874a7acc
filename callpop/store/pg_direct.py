"""Plain asyncpg connections for the one read a caller waits on: the dialplan's question.

Through an ``AsyncSession`` one PostgreSQL read is four round trips — the pool's
pre-ping, ``BEGIN``, the ``SELECT``, the ``ROLLBACK`` when the connection goes back —
plus SQLAlchemy's Python on both sides of each. Every round trip is a wake-up of the
server process that a busy machine may delay. A small asyncpg pool of its own answers
with one round trip of a statement prepared once per connection (asyncpg keeps it), in
autocommit: committed data, which is all a lookup needs. A broken connection raises
on use (the caller fails open) and the pool replaces it. The pool opens on first use
and closes with the ``Database`` (``close_direct``).
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["close_direct", "direct_pool"]

POOL_SIZE = 4

_pools: weakref.WeakKeyDictionary[Engine, Any] = weakref.WeakKeyDictionary()
_opening: weakref.WeakKeyDictionary[Engine, asyncio.Lock] = weakref.WeakKeyDictionary()


def _connect_args(engine: AsyncEngine) -> dict[str, Any] | None:
    """asyncpg's arguments for the engine's URL; None when the URL carries options
    (``?ssl=...``, ``?options=...``) this module does not translate: those keep to the
    session path rather than connect differently from the rest of callpop."""
    url = engine.url
    if url.get_backend_name() != "postgresql" or url.query:
        return None
    return {"host": url.host, "port": url.port, "user": url.username, "password": url.password,
            "database": url.database}


async def direct_pool(engine: AsyncEngine) -> Any | None:
    """The engine's direct asyncpg pool (opened on first use), or None (not PostgreSQL)."""
    pool = _pools.get(engine.sync_engine)
    if pool is not None:
        return pool
    args = _connect_args(engine)
    if args is None:
        return None
    lock = _opening.setdefault(engine.sync_engine, asyncio.Lock())
    async with lock:
        pool = _pools.get(engine.sync_engine)
        if pool is None:
            import asyncpg  # type: ignore[import-untyped]

            pool = await asyncpg.create_pool(min_size=1, max_size=POOL_SIZE, **args)
            _pools[engine.sync_engine] = pool
    return pool


async def close_direct(engine: AsyncEngine) -> None:
    pool = _pools.pop(engine.sync_engine, None)
    _opening.pop(engine.sync_engine, None)
    if pool is not None:
        await pool.close()
