"""Who is calling: the number → client lookup behind every pop, and the client card.

Matching rules: the number is normalised with ``phones.phone_key``; withheld,
anonymous and short internal numbers are never looked up. An exact E.164 match wins;
only when there is none do we fall back on the last 10 national digits (a number stored
without its country code, or a caller whose code the carrier mangled) — 10, not 8,
because Moscow's 495 and 985 numbers share their last 8 digits. Several clients with
the number are all returned: the manager chooses, callpop never guesses.

A lookup is a constant number of statements whatever the history holds: one for the
match with the clients and their phones, then one per history section (store/history.py;
the calls come joined to who was on them) — five in all.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from sqlalchemy import ColumnElement, Select, bindparam, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callpop.phones import PhoneKey, format_display, phone_key
from callpop.settings import Settings
from callpop.store.db import reader_engine, reads_in_thread
from callpop.store.history import (
    SECTIONS,
    AgreementItem,
    CallItem,
    NoteItem,
    PersonRef,
    PromiseItem,
    Section,
    SectionRows,
    iso,
    load_sections,
)
from callpop.store.models import Client, ClientPhone, Employee
from callpop.store.prepared import Prepared

__all__ = [
    "ClientCard",
    "ClientInfo",
    "Lookup",
    "PhoneItem",
    "client_card",
    "client_history",
    "lookup",
    "lookup_sync",
]

log = logging.getLogger(__name__)

MatchedBy = Literal["e164", "tail10", "id"]
MAX_PAGE = 100
T = TypeVar("T")
# SQLite reads run here unless database.sqlite_reads_in_thread is off (see _read); a few
# threads, as WAL readers do not block each other.
_READERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="callpop-lookup")


@dataclass(frozen=True, slots=True)
class PhoneItem:
    id: int
    raw: str
    e164: str | None
    label: str | None
    display: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "raw": self.raw, "e164": self.e164, "label": self.label, "display": self.display}


@dataclass(frozen=True, slots=True)
class ClientInfo:
    id: int
    name: str
    company: str | None
    status: str
    status_source: str
    external_id: str | None
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class ClientCard:
    """Everything a manager needs on the screen while the phone rings."""

    client: ClientInfo
    responsible: PersonRef | None
    phones: tuple[PhoneItem, ...]
    promises: tuple[PromiseItem, ...]
    promises_more: bool
    agreements: tuple[AgreementItem, ...]
    agreements_more: bool
    calls: tuple[CallItem, ...]
    calls_more: bool
    notes: tuple[NoteItem, ...]
    notes_more: bool
    matched_by: MatchedBy

    @property
    def overdue_count(self) -> int:
        return sum(1 for p in self.promises if p.overdue)

    def to_json(self) -> dict[str, Any]:
        c = self.client
        return {
            "id": c.id, "name": c.name, "company": c.company, "status": c.status,
            "status_source": c.status_source, "external_id": c.external_id, "created_at": iso(c.created_at),
            "responsible": self.responsible.to_json() if self.responsible else None,
            "phones": [p.to_json() for p in self.phones],
            "promises": [p.to_json() for p in self.promises], "promises_more": self.promises_more,
            "overdue_promises": self.overdue_count,
            "agreements": [a.to_json() for a in self.agreements], "agreements_more": self.agreements_more,
            "last_calls": [x.to_json() for x in self.calls], "calls_more": self.calls_more,
            "notes": [n.to_json() for n in self.notes], "notes_more": self.notes_more,
            "matched_by": self.matched_by,
        }


@dataclass(frozen=True, slots=True)
class Lookup:
    """The answer for one number. ``looked_up`` is False for withheld, short or unreadable
    numbers (nothing was asked of the database); ``matches`` may hold several clients."""

    number: str
    e164: str | None
    looked_up: bool
    matches: tuple[ClientCard, ...] = ()

    @property
    def ambiguous(self) -> bool:
        return len(self.matches) > 1

    def to_json(self) -> dict[str, Any]:
        return {"number": self.number, "e164": self.e164, "looked_up": self.looked_up,
                "matches": [m.to_json() for m in self.matches]}


def _bounds(settings: Settings) -> dict[Section, int]:
    h = settings.history
    return {"promises": h.promises, "agreements": h.agreements, "calls": h.calls, "notes": h.notes}


def _client_rows(where: ColumnElement[bool]) -> Select[*tuple[Any, ...]]:
    """Clients with their responsible manager and every phone: one row per phone."""
    return (select(Client.id, Client.name, Client.company, Client.status, Client.status_source, Client.external_id,
                   Client.created_at, Employee.id, Employee.name,
                   ClientPhone.id, ClientPhone.raw, ClientPhone.e164, ClientPhone.label)
            .outerjoin(Employee, Employee.id == Client.responsible_id)
            .outerjoin(ClientPhone, ClientPhone.client_id == Client.id)
            .where(where).order_by(Client.id, ClientPhone.id))


# The match and the clients it finds in one statement (``x = NULL`` is never true, so a
# missing key simply matches nothing); built once, see store/history.py.
_BY_NUMBER = _client_rows(Client.id.in_(
    select(ClientPhone.client_id).where(or_(ClientPhone.e164 == bindparam("e164"),
                                            ClientPhone.tail10 == bindparam("tail10")))))
_BY_ID = _client_rows(Client.id.in_(bindparam("ids", expanding=True)))
_BY_NUMBER_PREPARED = Prepared.of(_BY_NUMBER)


@dataclass(slots=True)
class _Found:
    row: Any
    phones: list[PhoneItem]


def _group(rows: Sequence[Any], region: str) -> dict[int, _Found]:
    found: dict[int, _Found] = {}
    for row in rows:
        entry = found.setdefault(row[0], _Found(row, []))
        pid, raw, e164, label = row[9:13]
        if pid is not None:
            entry.phones.append(PhoneItem(pid, raw, e164, label, format_display(e164, region) if e164 else raw))
    return found


def _cards(conn: Connection, found: dict[int, _Found], matched_by: MatchedBy,
           settings: Settings, now: dt.datetime) -> tuple[ClientCard, ...]:
    ids = sorted(found)
    sections = load_sections(conn, ids, _bounds(settings), now)
    cards = []
    for cid in ids:
        row, s = found[cid].row, sections[cid]
        cards.append(ClientCard(
            client=ClientInfo(*row[:7]),
            responsible=PersonRef(row[7], row[8]) if row[7] is not None else None,
            phones=tuple(found[cid].phones),
            promises=s["promises"].items, promises_more=s["promises"].has_more,
            agreements=s["agreements"].items, agreements_more=s["agreements"].has_more,
            calls=s["calls"].items, calls_more=s["calls"].has_more,
            notes=s["notes"].items, notes_more=s["notes"].has_more,
            matched_by=matched_by))
    return tuple(cards)


async def _read(session: AsyncSession, fn: Callable[[Connection], T]) -> T:
    """Run a read-only *fn* on a sync connection: on SQLite on the reader engine (committed
    data), on the event loop or in one worker-thread hop (``db.reads_in_thread`` says why);
    on PostgreSQL on the session's own connection."""
    bind = session.bind
    reader = reader_engine(bind) if isinstance(bind, AsyncEngine) else None
    if reader is None:
        conn = await session.connection()
        return await conn.run_sync(fn)

    def run() -> T:
        with reader.connect() as sync_conn:
            return fn(sync_conn)

    if isinstance(bind, AsyncEngine) and not reads_in_thread(bind):
        return run()
    return await asyncio.get_running_loop().run_in_executor(_READERS, run)


def lookup_sync(conn: Connection, key: PhoneKey, settings: Settings, now: dt.datetime) -> Lookup:
    """The lookup's queries on a sync connection (``lookup`` runs it in a worker thread)."""
    rows = _BY_NUMBER_PREPARED.rows(conn, {"e164": key.e164, "tail10": key.tail10})
    found = _group(rows, settings.phones.default_region)
    exact = {cid: f for cid, f in found.items() if key.e164 and any(p.e164 == key.e164 for p in f.phones)}
    matched_by: MatchedBy = "e164" if exact else "tail10"
    cards = _cards(conn, exact or found, matched_by, settings, now) if found else ()
    return Lookup(number=key.raw, e164=key.e164, looked_up=True, matches=cards)


async def lookup(session: AsyncSession, number: str | None, settings: Settings, *,
                 now: dt.datetime | None = None) -> Lookup:
    """The card(s) for a caller's number, as of *now* (for the ``overdue`` flags)."""
    when = now or dt.datetime.now(dt.UTC)
    key = phone_key(number or "", settings.phones.default_region, settings.phones.min_external_digits)
    if not key.external or not (key.e164 or key.tail10):
        return Lookup(number=key.raw, e164=key.e164, looked_up=False)
    found = await _read(session, lambda conn: lookup_sync(conn, key, settings, when))
    if found.ambiguous:
        log.info("number %s matches %d clients (by %s)", key.display_key, len(found.matches),
                 found.matches[0].matched_by)
    return found


async def client_card(session: AsyncSession, client_id: int, settings: Settings, *,
                      now: dt.datetime | None = None) -> ClientCard | None:
    """The same card for a client picked by id (a candidate chosen, the client page)."""
    when = now or dt.datetime.now(dt.UTC)
    def read(conn: Connection) -> tuple[ClientCard, ...]:
        found = _group(conn.execute(_BY_ID, {"ids": [client_id]}).all(), settings.phones.default_region)
        return _cards(conn, found, "id", settings, when)

    cards = await _read(session, read)
    return cards[0] if cards else None


async def client_history(session: AsyncSession, client_id: int, section: str, *, offset: int = 0,
                         limit: int = 20, now: dt.datetime | None = None) -> SectionRows:
    """A further page of one card section ("more"), in the card's order."""
    if section not in SECTIONS:
        raise ValueError(f"section: expected one of {', '.join(SECTIONS)}, found {section!r}")
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit: expected 1 to {MAX_PAGE}, found {limit}")
    if offset < 0:
        raise ValueError(f"offset: expected 0 or more, found {offset}")
    sec: Section = section
    when = now or dt.datetime.now(dt.UTC)
    result = await _read(session, lambda conn: load_sections(conn, [client_id], {sec: limit}, when, offset=offset))
    return result[client_id][sec]
