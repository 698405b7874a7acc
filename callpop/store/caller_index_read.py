"""Reading a copy of the directory for the dialplan's memory (store/caller_index.py), in
a process of its own: ``python -m callpop.store.caller_index_read``, the database named
as JSON on its standard input, the copy written to its standard output.

Why a process: a copy of 1M clients is about 3M rows turned into arrays, ~10 s of Python.
In the server's process that work would hold the GIL in 5 ms slices for all that time,
and every pop and every answer would queue behind it (bench/README.md measured the p99
of every exchange going from ~2 to ~7 ms while a copy was read in a thread). Here the
server only receives finished arrays; this process's memory (the rows in flight) is
given back when it exits, and it runs at a lower CPU priority (nice 10), so on a machine
whose cores are busy the server's answers and pops still come first.

The four reads are one snapshot: one read transaction on SQLite (WAL), one
``REPEATABLE READ`` transaction on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

from callpop.store.caller_index_wire import Parts, e164_code, tail_code, write_parts

__all__ = ["main", "read_postgresql", "read_sqlite"]

_CHUNK = 5000

# Ordered by (length, text): for digit strings that is the order of int("1" + digits).
PHONES_BY_TAIL = ("SELECT tail10, e164, client_id FROM client_phones WHERE tail10 IS NOT NULL "
                  "ORDER BY length(tail10), tail10{collate}")
PHONES_BY_E164 = ("SELECT e164, client_id FROM client_phones WHERE e164 IS NOT NULL "
                  "ORDER BY length(e164), e164{collate}")
CLIENTS = "SELECT id, name, company, status, responsible_id FROM clients ORDER BY id"
# the extensions in the order (and collation) caller_matches sorts them
EXTENSIONS = ("SELECT e.id, x.extension FROM employees e JOIN extensions x ON x.employee_id = e.id "
              "WHERE e.active ORDER BY e.id, x.extension")


class Unordered(Exception):
    """The database's order is not the order the binary search needs (a collation)."""


class _Builder:
    """Fills a ``Parts`` from the four reads, in the order they are made."""

    def __init__(self) -> None:
        self.index = Parts()
        self._names = io.BytesIO()  # UTF-8, not 1M string objects
        self._companies = io.BytesIO()
        self._name_end = 0
        self._company_end = 0

    # The loops below run once per number and per client (millions): names kept local.

    def tails(self, rows: Iterable[tuple[Any, ...]]) -> None:
        idx, last = self.index, 0
        codes, clients, e164s, odd = idx.tails.append, idx.tail_clients.append, idx.tail_e164s.append, idx.odd_tails
        for tail, e164, client in rows:
            code = tail_code(tail)
            exact = 0 if e164 is None else e164_code(e164)
            if code is None or exact is None:
                odd.setdefault(tail, []).append((client, e164))
                continue
            if code < last:
                raise Unordered(tail)
            last = code
            codes(code)
            clients(client)
            e164s(exact)

    def e164s(self, rows: Iterable[tuple[Any, ...]]) -> None:
        idx, last = self.index, 0
        codes, clients, odd = idx.e164s.append, idx.e164_clients.append, idx.odd_e164s
        for e164, client in rows:
            code = e164_code(e164)
            if code is None:
                odd.setdefault(e164, []).append(client)
                continue
            if code < last:
                raise Unordered(e164)
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
                raise Unordered(str(client))
            last = client
            ids(client)
            name_end += names(name.encode())
            name_ends(name_end)
            no_company(company is None)
            if company is not None:
                company_end += companies(company.encode())
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

    def done(self, started: float) -> Parts:
        self.index.names = self._names.getvalue()
        self.index.companies = self._companies.getvalue()
        self._names, self._companies = io.BytesIO(), io.BytesIO()
        self.index.built_in = time.monotonic() - started
        return self.index


def _chunks(cursor: sqlite3.Cursor) -> Iterable[tuple[Any, ...]]:
    while rows := cursor.fetchmany(_CHUNK):
        yield from rows


def read_sqlite(path: str) -> Parts:
    conn = sqlite3.connect(Path(path).as_uri() + "?mode=ro", uri=True, isolation_level=None)  # never creates one
    try:
        conn.execute("BEGIN")
        builder = _Builder()
        started = time.monotonic()
        builder.tails(_chunks(conn.execute(PHONES_BY_TAIL.format(collate=""))))
        builder.e164s(_chunks(conn.execute(PHONES_BY_E164.format(collate=""))))
        builder.clients(_chunks(conn.execute(CLIENTS)))
        builder.extensions(conn.execute(EXTENSIONS))
        conn.execute("COMMIT")
        return builder.done(started)
    finally:
        conn.close()


async def _pg_rows(conn: Any, sql: str, feed: Callable[[Iterable[tuple[Any, ...]]], None]) -> None:
    cursor = await conn.cursor(sql)
    while chunk := await cursor.fetch(_CHUNK):
        feed([tuple(r) for r in chunk])


async def read_postgresql(connect: dict[str, Any]) -> Parts:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(**connect, server_settings={"application_name": "callpop-caller-index"})
    try:
        collate = ' COLLATE "C"'
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            builder = _Builder()
            started = time.monotonic()
            await _pg_rows(conn, PHONES_BY_TAIL.format(collate=collate), builder.tails)
            await _pg_rows(conn, PHONES_BY_E164.format(collate=collate), builder.e164s)
            await _pg_rows(conn, CLIENTS, builder.clients)
            builder.extensions([tuple(r) for r in await conn.fetch(EXTENSIONS)])
            return builder.done(started)
    finally:
        await conn.close()


def main(stdin: BinaryIO = sys.stdin.buffer, stdout: BinaryIO = sys.stdout.buffer) -> int:
    """Read the request ({"sqlite": PATH} or {"postgresql": asyncpg's connect arguments}),
    write the copy. Exit status 3: the database's order is not the one expected."""
    with contextlib.suppress(OSError):
        os.nice(10)  # background work: the server's answers and pops come first for the CPU
    request = json.loads(stdin.readline())
    try:
        if "sqlite" in request:
            index = read_sqlite(request["sqlite"])
        else:
            index = asyncio.run(read_postgresql(request["postgresql"]))
    except Unordered as exc:
        print(f"numbers not in the expected order at {str(exc)[:20]!r}", file=sys.stderr)
        return 3
    write_parts(index, stdout)
    stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
