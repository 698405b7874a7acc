"""The whole directory's numbers in memory, for the dialplan's questions.

The PBX asks ``/pbx/caller-name`` once per call, so the answer cache (caller_cache.py) never
helps the first question: it costs a statement (SQLite: a hand-over to a reader thread;
PostgreSQL: a round trip to another process), 1-2 ms on a busy machine. This is a
snapshot of what that statement reads, for every client, held in flat arrays (about
125 bytes per client: 1M clients ~125 MB, and up to ~170 MB more while a new copy is
read): a question is two binary searches, a few
microseconds on the event loop.

A stale answer is worse than a slow one, so the snapshot is only ever used while nothing
can have changed since it was read: it carries the write generation it was read under
(caller_cache.write_generation, moved by every write to clients, numbers, employees or
extensions through this process, and by every change another process announces), and
it is not used at all while the directory watch cannot hear other processes
(store/directory_changes.py). After a change the questions go to the database as before
until a new snapshot is read, at most once per ``[dialplan] index_refresh`` seconds.

An answer from here equals ``caller_matches`` on the same data, row for row
(tests/store/test_caller_index.py compares them on both databases).
"""

from __future__ import annotations

import asyncio
import io
import logging
import sqlite3
import sys
import time
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from callpop.phones import PhoneKey
from callpop.store.caller import CallerMatch
from callpop.store.caller_cache import write_generation
from callpop.store.db import Database
from callpop.store.pg_direct import direct_pool

__all__ = ["CallerIndex", "IndexKeeper", "build_from_rows"]

log = logging.getLogger(__name__)

SETTLE = 1.0  # seconds without a change before a new copy is read
_TICK = 0.25
_CHUNK = 2000  # rows read between two turns of the event loop (PostgreSQL) or of the GIL

# Ordered by (length, text): for digit strings that is the order of int("1" + digits).
PHONES_BY_TAIL = ("SELECT tail10, e164, client_id FROM client_phones WHERE tail10 IS NOT NULL "
                  "ORDER BY length(tail10), tail10{collate}")
PHONES_BY_E164 = ("SELECT e164, client_id FROM client_phones WHERE e164 IS NOT NULL "
                  "ORDER BY length(e164), e164{collate}")
CLIENTS = "SELECT id, name, company, status, responsible_id FROM clients ORDER BY id"
# the extensions in the order (and collation) caller_matches sorts them
EXTENSIONS = ("SELECT e.id, x.extension FROM employees e JOIN extensions x ON x.employee_id = e.id "
              "WHERE e.active ORDER BY e.id, x.extension")


def _tail_code(tail: str) -> int | None:
    """``int("1" + digits)``: keeps leading zeros and length apart; None for anything but
    1-17 ASCII digits."""
    return int("1" + tail) if 0 < len(tail) <= 17 and tail.isascii() and tail.isdigit() else None


def _e164_code(e164: str) -> int | None:
    digits = e164[1:]
    return (int("1" + digits) if e164[:1] == "+" and 0 < len(digits) <= 17 and digits.isascii() and digits.isdigit()
            else None)


class _Unordered(Exception):
    """The database's order is not the order the binary search needs (a collation)."""


@dataclass(slots=True)
class CallerIndex:
    """One snapshot: numbers sorted for binary search, clients by id."""

    tails: array[int] = field(default_factory=lambda: array("q"))
    tail_clients: array[int] = field(default_factory=lambda: array("q"))
    tail_e164s: array[int] = field(default_factory=lambda: array("q"))  # 0: no E.164
    e164s: array[int] = field(default_factory=lambda: array("q"))
    e164_clients: array[int] = field(default_factory=lambda: array("q"))
    # numbers the arrays cannot hold (not plain digits): by text, with (client, e164)
    odd_tails: dict[str, list[tuple[int, str | None]]] = field(default_factory=dict)
    odd_e164s: dict[str, list[int]] = field(default_factory=dict)
    ids: array[int] = field(default_factory=lambda: array("q"))
    name_ends: array[int] = field(default_factory=lambda: array("q"))
    names: str = ""
    company_ends: array[int] = field(default_factory=lambda: array("q"))
    companies: str = ""
    no_company: bytearray = field(default_factory=bytearray)
    regular: bytearray = field(default_factory=bytearray)
    responsible: array[int] = field(default_factory=lambda: array("q"))  # -1: nobody
    extensions: dict[int, tuple[str, ...]] = field(default_factory=dict)  # active employees only
    generation: int = 0
    built_in: float = 0.0

    @property
    def clients(self) -> int:
        return len(self.ids)

    @property
    def numbers(self) -> int:
        return len(self.tails) + sum(len(v) for v in self.odd_tails.values())

    def nbytes(self) -> int:
        arrays = (self.tails, self.tail_clients, self.tail_e164s, self.e164s, self.e164_clients, self.ids,
                  self.name_ends, self.company_ends, self.responsible)
        text = sys.getsizeof(self.names) + sys.getsizeof(self.companies)
        return sum(a.itemsize * len(a) for a in arrays) + len(self.regular) + len(self.no_company) + text

    def matches(self, key: PhoneKey) -> tuple[CallerMatch, ...]:
        """What ``caller_matches`` answers for *key* on the snapshot's data."""
        found: dict[int, bool] = {}  # client id -> an exact E.164 match among its numbers
        wanted = _e164_code(key.e164) if key.e164 else None
        if key.tail10:
            code = _tail_code(key.tail10)
            if code is not None:
                lo, hi = bisect_left(self.tails, code), bisect_right(self.tails, code)
                for i in range(lo, hi):
                    client = self.tail_clients[i]
                    found[client] = found.get(client, False) or (wanted is not None and self.tail_e164s[i] == wanted)
            for client, e164 in self.odd_tails.get(key.tail10, ()):
                found[client] = found.get(client, False) or (key.e164 is not None and e164 == key.e164)
        if key.e164:
            if wanted is not None:
                lo, hi = bisect_left(self.e164s, wanted), bisect_right(self.e164s, wanted)
                for i in range(lo, hi):
                    found[self.e164_clients[i]] = True
            for client in self.odd_e164s.get(key.e164, ()):
                found[client] = True
        if not found:
            return ()
        matches = [m for m in (self._client(client, exact) for client, exact in sorted(found.items()))
                   if m is not None]
        if any(m.exact for m in matches):
            matches = [m for m in matches if m.exact]
        return tuple(matches)

    def _client(self, client_id: int, exact: bool) -> CallerMatch | None:
        at = bisect_left(self.ids, client_id)
        if at == len(self.ids) or self.ids[at] != client_id:
            return None  # a number whose client the snapshot lacks: the join finds nothing either
        start = self.name_ends[at - 1] if at else 0
        name = self.names[start:self.name_ends[at]]
        company: str | None = None
        if not self.no_company[at]:
            start = self.company_ends[at - 1] if at else 0
            company = self.companies[start:self.company_ends[at]]
        responsible = self.responsible[at]
        manager = None if responsible < 0 else responsible
        return CallerMatch(client_id, name, company, bool(self.regular[at]), exact, manager,
                           self.extensions.get(responsible, ()) if manager is not None else ())


class _Builder:
    """Fills a ``CallerIndex`` from the four reads, in the order they are made."""

    def __init__(self, generation: int) -> None:
        self.index = CallerIndex(generation=generation)
        self._names = io.StringIO()  # not a list of 1M strings: half the peak memory
        self._companies = io.StringIO()
        self._name_end = 0
        self._company_end = 0

    # The loops below run once per number and per client (millions): names kept local.

    def tails(self, rows: Iterable[tuple[Any, ...]]) -> None:
        idx, last = self.index, 0
        codes, clients, e164s, odd = idx.tails.append, idx.tail_clients.append, idx.tail_e164s.append, idx.odd_tails
        for tail, e164, client in rows:
            code = _tail_code(tail)
            e164_code = 0 if e164 is None else _e164_code(e164)
            if code is None or e164_code is None:
                odd.setdefault(tail, []).append((client, e164))
                continue
            if code < last:
                raise _Unordered(tail)
            last = code
            codes(code)
            clients(client)
            e164s(e164_code)

    def e164s(self, rows: Iterable[tuple[Any, ...]]) -> None:
        idx, last = self.index, 0
        codes, clients, odd = idx.e164s.append, idx.e164_clients.append, idx.odd_e164s
        for e164, client in rows:
            code = _e164_code(e164)
            if code is None:
                odd.setdefault(e164, []).append(client)
                continue
            if code < last:
                raise _Unordered(e164)
            last = code
            codes(code)
            clients(client)

    def clients(self, rows: Iterable[tuple[Any, ...]]) -> None:
        idx, last = self.index, 0
        ids, name_ends, company_ends = idx.ids.append, idx.name_ends.append, idx.company_ends.append
        no_company, regular, responsibles = idx.no_company.append, idx.regular.append, idx.responsible.append
        names, companies = self._names.write, self._companies.write
        name_end, company_end = self._name_end, self._company_end
        for client, name, company, status, responsible in rows:
            if client <= last:
                raise _Unordered(str(client))
            last = client
            ids(client)
            name_end += names(name)
            name_ends(name_end)
            no_company(company is None)
            if company is not None:
                company_end += companies(company)
            company_ends(company_end)
            regular(status == "regular")
            responsibles(-1 if responsible is None else responsible)
        self._name_end, self._company_end = name_end, company_end

    def extensions(self, rows: Iterable[tuple[Any, ...]]) -> None:
        by_employee: dict[int, list[str]] = {}
        for employee, extension in rows:
            if extension not in by_employee.setdefault(employee, []):
                by_employee[employee].append(extension)
        self.index.extensions = {employee: tuple(exts) for employee, exts in by_employee.items()}

    def done(self, started: float) -> CallerIndex:
        self.index.names = self._names.getvalue()
        self.index.companies = self._companies.getvalue()
        self._names, self._companies = io.StringIO(), io.StringIO()
        self.index.built_in = time.monotonic() - started
        return self.index


def build_from_rows(generation: int, tails: Iterable[tuple[Any, ...]], e164s: Iterable[tuple[Any, ...]],
                    clients: Iterable[tuple[Any, ...]], extensions: Iterable[tuple[Any, ...]]) -> CallerIndex:
    """A snapshot from the four reads' rows (each in its statement's order)."""
    builder = _Builder(generation)
    started = time.monotonic()
    builder.tails(tails)
    builder.e164s(e164s)
    builder.clients(clients)
    builder.extensions(extensions)
    return builder.done(started)


def _sqlite_chunks(cursor: sqlite3.Cursor) -> Iterable[tuple[Any, ...]]:
    """The cursor's rows, letting the event loop's thread have the GIL between chunks."""
    while rows := cursor.fetchmany(_CHUNK):
        yield from rows
        time.sleep(0)


def _read_sqlite(path: str, generation: int) -> CallerIndex:
    """One read transaction on a connection of its own (WAL: one snapshot of all four)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA query_only = ON")
        conn.execute("BEGIN")
        builder = _Builder(generation)
        started = time.monotonic()
        builder.tails(_sqlite_chunks(conn.execute(PHONES_BY_TAIL.format(collate=""))))
        builder.e164s(_sqlite_chunks(conn.execute(PHONES_BY_E164.format(collate=""))))
        builder.clients(_sqlite_chunks(conn.execute(CLIENTS)))
        builder.extensions(conn.execute(EXTENSIONS))
        conn.execute("COMMIT")
        return builder.done(started)
    finally:
        conn.close()


async def _pg_rows(conn: Any, sql: str, feed: Callable[[Iterable[tuple[Any, ...]]], None]) -> None:
    """*sql*'s rows into *feed* a chunk at a time, the loop free between chunks."""
    cursor = await conn.cursor(sql)
    while rows := await cursor.fetch(_CHUNK):
        feed([tuple(r) for r in rows])
        await asyncio.sleep(0)


async def _read_postgresql(db: Database, generation: int) -> CallerIndex | None:
    pool = await direct_pool(db.engine)
    if pool is None:
        return None  # a URL with options the direct pool does not translate: no index
    collate = ' COLLATE "C"'
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        builder = _Builder(generation)
        started = time.monotonic()
        await _pg_rows(conn, PHONES_BY_TAIL.format(collate=collate), builder.tails)
        await _pg_rows(conn, PHONES_BY_E164.format(collate=collate), builder.e164s)
        await _pg_rows(conn, CLIENTS, builder.clients)
        builder.extensions([tuple(r) for r in await conn.fetch(EXTENSIONS)])
        return builder.done(started)


class IndexKeeper:
    """Holds the current snapshot, says whether it may answer, and reads a new one after a
    change (at most once per *refresh* seconds)."""

    def __init__(self, db: Database, watch: Any, refresh: float) -> None:
        self._db = db
        self._watch = watch  # DirectoryWatch: .current() says whether outside writes are heard
        self._generation = write_generation(db.engine)
        self.refresh = refresh
        self.index: CallerIndex | None = None
        self.answered = 0   # questions answered from memory
        self.builds = 0
        self.discarded = 0  # snapshots a write overtook while they were read
        self._task: asyncio.Task[None] | None = None
        self._building: asyncio.Future[CallerIndex | None] | None = None

    def lookup(self, key: PhoneKey) -> tuple[CallerMatch, ...] | None:
        """The answer from memory, or None when memory may be behind the database."""
        index = self.index
        if index is None or index.generation != self._generation.stamp or not self._watch.current():
            return None
        self.answered += 1
        return index.matches(key)

    def current(self) -> bool:
        """Whether other processes' writes are heard now (else memory is not used)."""
        return bool(self._watch.current())

    def stale(self) -> bool:
        index = self.index
        return index is None or index.generation != self._generation.stamp

    def start(self) -> None:
        self._task = asyncio.create_task(self._keep(), name="caller-index")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._building is not None:
            await asyncio.gather(self._building, return_exceptions=True)

    async def rebuild(self) -> bool:
        """Read a snapshot now; True when it is current (no write overtook it)."""
        generation = self._generation.stamp
        building: asyncio.Future[CallerIndex | None]
        if self._db.dialect == "postgresql":
            building = asyncio.ensure_future(_read_postgresql(self._db, generation))
        else:
            path = self._db.engine.url.database or ""
            if path in ("", ":memory:") or path.startswith("file:"):
                return False  # an in-memory database: its own connection would see another database
            building = asyncio.ensure_future(asyncio.to_thread(_read_sqlite, path, generation))
        self._building = building
        try:
            index = await building
        except _Unordered as exc:
            log.warning("caller index: the database does not sort numbers as expected (at %r); the dialplan's "
                        "questions keep reading the database", str(exc)[:20])
            return False
        finally:
            self._building = None
        if index is None:
            return False
        self.builds += 1
        if index.generation != self._generation.stamp:
            self.discarded += 1
            log.info("caller index: the directory changed while it was read (%.1f s); read again later",
                     index.built_in)
            return False
        self.index = index
        log.info("caller index: %d clients, %d numbers in memory (%.0f MB), read in %.1f s",
                 index.clients, index.numbers, index.nbytes() / 1e6, index.built_in)
        return True

    async def _keep(self) -> None:
        """Read a new copy once the directory has been still for ``SETTLE`` seconds (a
        burst of writes, or the SQLite watch's word on a write of our own arriving a
        moment later, would overtake a copy read sooner) and ``refresh`` seconds have
        passed since the last read began."""
        last = -self.refresh
        seen, still_since = self._generation.stamp, time.monotonic()
        while True:
            await asyncio.sleep(_TICK)
            now = time.monotonic()
            if self._generation.stamp != seen:
                seen, still_since = self._generation.stamp, now
            if not self.stale() or not self._watch.current() or now - still_since < SETTLE \
                    or now - last < self.refresh:
                continue
            last = now
            try:
                await self.rebuild()
            except Exception as exc:  # a database away: questions keep failing open on their own
                log.warning("caller index: reading the directory failed (%s: %s); retrying in %g s",
                            type(exc).__name__, exc, self.refresh)
