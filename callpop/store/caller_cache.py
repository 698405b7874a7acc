"""The dialplan's answers kept for a few seconds, and forgotten the moment they may be wrong.

The PBX asks the name and then the route of the same caller within milliseconds, so the
second question can be answered from memory. A stale answer is worse than a slow one:
it rings the manager who no longer has the client. So every write that can change an
answer — to ``clients`` (name, status, responsible manager), ``client_phones``,
``employees`` (an account switched off) or ``extensions`` — moves a generation counter
of its engine on, which empties the cache. The counter moves when the writing
statement runs, when its transaction commits, and again when its connection goes back
to the pool (after the commit is visible to readers): an answer read while a write was
in flight carries the generation from before it and is never served. Writes by another
process (a second callpop on the same database, ``callpop import``) are announced by the
database (store/directory_changes.py): ``forget_everything`` moves the counter on too,
``forget_where`` drops only the answers a change names (a client, a manager, a number)
and refuses the answers being read meanwhile. Whatever is not announced (the listening
connection is down) is bounded by ``max_age`` (``[dialplan] cache_seconds``). The cache
holds at most ``max_entries`` numbers, oldest first out.
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["WATCHED_TABLES", "AnswerCache", "forget_everything", "forget_where", "write_generation"]

WATCHED_TABLES = frozenset({"clients", "client_phones", "employees", "extensions"})
_WRITE = re.compile(r'\s*(?:INSERT(?:\s+OR\s+\w+)?\s+INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)', re.IGNORECASE)
_DIRTY = "callpop.caller_answers_dirty"

T = TypeVar("T")


class _Generation:
    """How many times the watched tables may have changed through one engine (``value``),
    and how many times answers were dropped for a change another process announced
    (``dropped``); the caches of the engine, for those drops."""

    def __init__(self) -> None:
        self.value = 0
        self.dropped = 0
        self.caches: weakref.WeakSet[AnswerCache[Any]] = weakref.WeakSet()
        self._lock = threading.Lock()  # writes commit on worker threads too (SQLite readers, to_thread)

    def bump(self) -> None:
        with self._lock:
            self.value += 1

    @property
    def stamp(self) -> int:
        """Moves whenever either count does (both only grow): an answer read under an
        older stamp may predate a change."""
        return self.value + self.dropped


_generations: weakref.WeakKeyDictionary[Engine, _Generation] = weakref.WeakKeyDictionary()
_generations_lock = threading.Lock()


def _watch(engine: Engine) -> _Generation:
    with _generations_lock:
        generation = _generations.get(engine)
        if generation is not None:
            return generation
        generation = _generations[engine] = _Generation()

    def after_cursor_execute(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement[:1] in ("S", "s"):  # SELECT: by far the most statements, never a write
            return
        match = _WRITE.match(statement)
        if match is not None and match.group(1).lower() in WATCHED_TABLES:
            conn.info[_DIRTY] = True
            generation.bump()

    def commit(conn: Any) -> None:
        if conn.info.get(_DIRTY):
            generation.bump()

    def checkin(_dbapi_conn: Any, record: Any) -> None:
        if record is not None and record.info.pop(_DIRTY, False):
            generation.bump()

    event.listen(engine, "after_cursor_execute", after_cursor_execute)
    event.listen(engine, "commit", commit)
    event.listen(engine.pool, "checkin", checkin)
    return generation


def write_generation(engine: AsyncEngine) -> _Generation:
    """The engine's write counter; watching starts at the first call (the app's start)."""
    return _watch(engine.sync_engine)


def forget_everything(engine: AsyncEngine) -> None:
    """Another process changed the directory in ways not named (or too many to name):
    every answer remembered for *engine* is forgotten, as after a write of our own."""
    write_generation(engine).bump()


def forget_where(engine: AsyncEngine, stale: Callable[[str, Any], bool]) -> int:
    """Drop the answers of *engine*'s caches for which ``stale(number, answer)`` holds, and
    refuse those being read now (they may have been read before the change). Returns how
    many were dropped. Runs on the event loop, like the caches' readers and writers."""
    generation = write_generation(engine)
    generation.dropped += 1
    return sum(cache.drop(stale) for cache in list(generation.caches))


class AnswerCache(Generic[T]):
    """Answers by number, each tagged with the write generation it was read under."""

    def __init__(self, engine: AsyncEngine, max_entries: int, max_age: float) -> None:
        self._generation = write_generation(engine)
        self._generation.caches.add(self)
        self._entries: OrderedDict[str, tuple[float, int, T]] = OrderedDict()
        self.max_entries = max_entries
        self.max_age = max_age

    def generation(self) -> int:
        """Take this before reading the database; give it to ``put`` with the answer."""
        return self._generation.stamp

    def get(self, key: str) -> T | None:
        hit = self._entries.get(key)
        if hit is None:
            return None
        stored, generation, value = hit
        if generation != self._generation.value or time.monotonic() - stored > self.max_age:
            del self._entries[key]
            return None
        return value

    def put(self, key: str, value: T, generation: int) -> None:
        if self.max_age <= 0 or self.max_entries <= 0 or generation != self._generation.stamp:
            return  # a write happened while this was read: the answer may already be stale
        self._entries[key] = (time.monotonic(), self._generation.value, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def drop(self, stale: Callable[[str, T], bool]) -> int:
        """Forget the answers for which ``stale(key, answer)`` holds; how many."""
        keys = [key for key, (_at, _generation, value) in self._entries.items() if stale(key, value)]
        for key in keys:
            del self._entries[key]
        return len(keys)

    def __len__(self) -> int:
        return len(self._entries)
