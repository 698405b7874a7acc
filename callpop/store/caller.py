"""Who is calling, in one statement: what the PBX's dialplan needs before any phone rings.

The pop's card (store/directory.py) reads five sections of history; the dialplan only
needs the client's name, whether they are regular and the extensions of their
responsible manager, and it waits for the answer with the caller on the line. So this is
one indexed statement (an index seek on ``client_phones.e164`` or ``tail10``, the
normalized number), compiled once and run straight on the SQLite driver like the
lookup's (store/prepared.py), or prepared once per connection on PostgreSQL's.
Matching follows the directory's rule: an exact E.164 match
wins, the last 10 digits are the fallback, and several clients are all returned (the
caller decides what an ambiguous number means).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, bindparam, or_, select
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.engine import Connection

from callpop.phones import PhoneKey
from callpop.store.db import Database, reader_engine, reads_in_thread
from callpop.store.models import Client, ClientPhone, Employee, Extension
from callpop.store.pg_direct import direct_pool
from callpop.store.prepared import Prepared

__all__ = ["CallerMatch", "caller_matches", "caller_matches_sync", "exact_first"]

# The dialplan's reads run here (not on the cards' pool: a burst of pops never queues
# the PBX's questions behind it).
_READERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="callpop-caller")


@dataclass(frozen=True, slots=True)
class CallerMatch:
    """One client whose phone is the caller's number."""

    client_id: int
    name: str
    company: str | None
    regular: bool
    exact: bool
    responsible_id: int | None
    extensions: tuple[str, ...]  # the responsible manager's, if that account is active


def _statement() -> Select[*tuple[Any, ...]]:
    """Every phone row with the number, its client and the responsible's extensions."""
    return (select(Client.id, Client.name, Client.company, Client.status, Client.responsible_id,
                   ClientPhone.e164, Extension.extension)
            .select_from(ClientPhone)
            .join(Client, Client.id == ClientPhone.client_id)
            .outerjoin(Employee, and_(Employee.id == Client.responsible_id, Employee.active.is_(True)))
            .outerjoin(Extension, Extension.employee_id == Employee.id)
            .where(or_(ClientPhone.e164 == bindparam("e164"), ClientPhone.tail10 == bindparam("tail10")))
            .order_by(Client.id, Extension.extension))


_MATCH = Prepared.of(_statement())
_PG = _statement().compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
if tuple(_PG.positiontup or ()) != ("e164", "tail10"):  # pragma: no cover - the statement's own order
    raise RuntimeError(f"unexpected parameter order {_PG.positiontup}")
_PG_SQL = str(_PG)


def caller_matches_sync(conn: Connection, key: PhoneKey) -> tuple[CallerMatch, ...]:
    """The clients with *key*'s number; exact E.164 matches only, when there are any."""
    return _matches(key, _MATCH.rows(conn, {"e164": key.e164, "tail10": key.tail10}))


def _matches(key: PhoneKey, rows: Sequence[tuple[Any, ...]]) -> tuple[CallerMatch, ...]:
    by_client: dict[int, tuple[tuple[int, str, str | None, str, int | None], bool, list[str]]] = {}
    for cid, name, company, status, responsible, e164, extension in rows:
        entry = by_client.setdefault(cid, ((cid, name, company, status, responsible), False, []))
        exact = entry[1] or (key.e164 is not None and e164 == key.e164)
        if extension is not None and extension not in entry[2]:
            entry[2].append(extension)
        by_client[cid] = (entry[0], exact, entry[2])
    matches = [CallerMatch(cid, name, company, status == "regular", exact, responsible, tuple(exts))
               for (cid, name, company, status, responsible), exact, exts in by_client.values()]
    return exact_first(matches)


def exact_first(matches: Sequence[CallerMatch]) -> tuple[CallerMatch, ...]:
    """The directory's rule: an exact E.164 match wins over last-10-digit ones."""
    if any(m.exact for m in matches):
        return tuple(m for m in matches if m.exact)
    return tuple(matches)


async def caller_matches(db: Database, key: PhoneKey) -> tuple[CallerMatch, ...]:
    """``caller_matches_sync`` on committed data, by the shortest way each backend has.
    SQLite: on the reader engine, in a worker thread unless ``sqlite_reads_in_thread`` is
    off (the dialplan's hard budget, an ``asyncio.timeout`` around this, can abandon a
    read stuck on the disk only when the read is not holding the event loop; bench/README.md,
    "Dialplan questions", has both ways measured). PostgreSQL: one round trip on the
    direct asyncpg pool (store/pg_direct.py), else a session."""
    if not key.external or not (key.e164 or key.tail10):
        return ()
    reader = reader_engine(db.engine)
    if reader is not None:
        def run() -> tuple[CallerMatch, ...]:
            with reader.connect() as sync_conn:
                return caller_matches_sync(sync_conn, key)

        if not reads_in_thread(db.engine):
            return run()
        return await asyncio.get_running_loop().run_in_executor(_READERS, run)
    pool = await direct_pool(db.engine) if db.dialect == "postgresql" else None
    if pool is not None:
        async with pool.acquire() as conn:
            rows = await conn.fetch(_PG_SQL, key.e164, key.tail10)
        return _matches(key, [tuple(r) for r in rows])
    async with db.sessions() as session:
        conn = await session.connection()
        return await conn.run_sync(lambda sync_conn: caller_matches_sync(sync_conn, key))
