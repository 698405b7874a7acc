"""Validated create / read / update / list of what managers record about clients:
agreements, promises, notes, payments and receivables (clients and phones are in
``clients.py``).

Every input goes through the declared schemas (``schemas.py``) and every reference
(client, call, agreement) is checked, so a bad request becomes a ``ValidationError``
naming the field, never a database error. The author of a record is always the user
who sends it: a manager can read everyone's promises (the card shows them all) but
cannot write in a colleague's name, and changes only what they wrote themselves (a row
without an author, e.g. imported, is a supervisor's to change); anyone may mark a
colleague's promise kept or broken. Payments and receivables are money the bonuses are
computed from: supervisors and admins enter them (or ``callpop import`` from the
accounting system), managers only read them. Every change to money or an agreement
goes to the audit trail (``store/audit.py``) in the same transaction. Functions flush,
the caller commits.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from callpop.settings import Settings
from callpop.store import audit
from callpop.store.errors import Forbidden, NotFound, ValidationError
from callpop.store.models import Agreement, Call, Client, Employee, Note, Payment, Promise, Receivable, utcnow
from callpop.store.records.regular import recompute_status
from callpop.store.records.schemas import RESOURCES, Resource
from callpop.store.records.validation import ParseContext

__all__ = [
    "Actor",
    "Page",
    "author_column",
    "create_record",
    "due_promises",
    "get_record",
    "list_records",
    "parse_context",
    "update_record",
]

log = logging.getLogger(__name__)

Model = type[Agreement] | type[Promise] | type[Note] | type[Payment] | type[Receivable]
Row = Agreement | Promise | Note | Payment | Receivable

MODELS: dict[str, Model] = {
    "agreement": Agreement, "promise": Promise, "note": Note, "payment": Payment, "receivable": Receivable,
}
# Which column names the employee who wrote the record (None: money rows come from 1C).
_AUTHOR: dict[str, str | None] = {
    "agreement": "made_by_id", "promise": "made_by_id", "note": "author_id", "payment": None, "receivable": None,
}
# Newest first, except promises: the soonest due first.
_ORDER: dict[str, str] = {
    "agreement": "created_at", "note": "created_at", "payment": "paid_at", "receivable": "issued_at",
}
DEFAULT_LIMIT = 50


def author_column(kind: str) -> str | None:
    """The column naming the employee who wrote a *kind* record (None: money rows)."""
    return _AUTHOR[kind]

_MONEY = frozenset({"payment", "receivable"})


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes the change (the logged-in employee)."""

    id: int
    role: str = "manager"

    @property
    def is_supervisor(self) -> bool:
        return self.role in ("supervisor", "admin")


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list, with the total so a client can page on."""

    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int

    def to_json(self) -> dict[str, Any]:
        return {"items": self.items, "total": self.total, "limit": self.limit, "offset": self.offset}


def parse_context(settings: Settings) -> ParseContext:
    return ParseContext(region=settings.phones.default_region,
                        min_external_digits=settings.phones.min_external_digits,
                        timezone=settings.kpi.timezone)


def resource(kind: str) -> Resource:
    return RESOURCES[kind]


# --- reading ------------------------------------------------------------------------------

async def _names(session: AsyncSession, model: type[Employee] | type[Client], ids: set[int]) -> dict[int, str]:
    ids.discard(0)
    if not ids:
        return {}
    rows = await session.execute(select(model.id, model.name).where(model.id.in_(ids)))
    return {row.id: row.name for row in rows}


async def _dump_rows(session: AsyncSession, kind: str, rows: list[Any], now: dt.datetime) -> list[dict[str, Any]]:
    """JSON objects with the names of the client and employees filled in (two queries in all)."""
    employee_ids: set[int] = set()
    for row in rows:
        for attr in ("made_by_id", "author_id", "closed_by_id"):
            value = getattr(row, attr, None)
            if value:
                employee_ids.add(value)
    employees = await _names(session, Employee, employee_ids)
    clients = await _names(session, Client, {row.client_id for row in rows})
    out = []
    for row in rows:
        values = {name: getattr(row, name, None) for name in (f.name for f in RESOURCES[kind].out.fields)}
        values["client_name"] = clients.get(row.client_id)
        for attr in ("made_by", "author", "closed_by"):
            ident = getattr(row, f"{attr}_id", None)
            values[f"{attr}_name"] = employees.get(ident) if ident else None
        if kind == "promise":
            values["overdue"] = row.status == "open" and row.due_at is not None and row.due_at < now
        out.append(RESOURCES[kind].out.dump(values))
    return out


async def _load(session: AsyncSession, kind: str, ident: int) -> Any:
    row = await session.get(MODELS[kind], ident)
    if row is None:
        raise NotFound(kind, ident)
    return row


async def get_record(session: AsyncSession, kind: str, ident: int, *, now: dt.datetime | None = None
                     ) -> dict[str, Any]:
    row = await _load(session, kind, ident)
    return (await _dump_rows(session, kind, [row], now or utcnow()))[0]


def _filters(kind: str, model: Model, query: Mapping[str, Any]) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    author = _AUTHOR[kind]
    for name, value in query.items():
        if value is None or name in ("limit", "offset"):
            continue
        if name in ("client_id", "status", "agreement_id"):
            conditions.append(getattr(model, name) == value)
        elif name == "made_by" and author is not None:
            conditions.append(getattr(model, author) == value)
        elif name.endswith(("_after", "_before")):
            column, _, side = name.rpartition("_")
            attr = getattr(model, f"{column}_at")
            conditions.append(attr >= value if side == "after" else attr < value)
        elif name == "open":
            conditions.append(Receivable.settled_at.is_(None) if value else Receivable.settled_at.is_not(None))
        elif name == "q":
            conditions.append(text_search(cast(Any, model).text, value))
    return conditions


def text_search(column: Any, words: str) -> ColumnElement[bool]:
    """Case-insensitive containment. SQLite folds only ASCII case, so the usual spellings of
    a Cyrillic word (as typed, lower, Capitalised) are tried as well."""
    variants = {words, words.lower(), words.capitalize(), words.upper()}
    return or_(*(column.ilike(f"%{escape_like(v)}%", escape="\\") for v in sorted(variants)))


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def list_records(session: AsyncSession, kind: str, raw_query: Mapping[str, Any], settings: Settings,
                       *, now: dt.datetime | None = None) -> Page:
    """A filtered page; filters are the declared ones (``schemas.*_FILTERS``), validated here."""
    query = RESOURCES[kind].filters.parse(raw_query, parse_context(settings))
    model = MODELS[kind]
    conditions = _filters(kind, model, query)
    limit = query.get("limit") or DEFAULT_LIMIT
    offset = query.get("offset") or 0
    stmt: Select[Any] = select(model).where(*conditions)
    if kind == "promise":
        stmt = stmt.order_by(Promise.due_at.is_(None), Promise.due_at, Promise.id)
    else:
        stmt = stmt.order_by(getattr(model, _ORDER[kind]).desc(), model.id.desc())
    rows = list((await session.execute(stmt.limit(limit).offset(offset))).scalars())
    total = (await session.execute(select(func.count()).select_from(model).where(*conditions))).scalar_one()
    return Page(await _dump_rows(session, kind, rows, now or utcnow()), total, limit, offset)


# --- writing ------------------------------------------------------------------------------

async def _check_refs(session: AsyncSession, values: Mapping[str, Any], client_id: int) -> None:
    """Every id in the body must name an existing row, and an agreement the same client's."""
    if "client_id" in values and await session.get(Client, values["client_id"]) is None:
        raise ValidationError("client_id", f"no client with id {values['client_id']}")
    if values.get("call_id") is not None and await session.get(Call, values["call_id"]) is None:
        raise ValidationError("call_id", f"no call with id {values['call_id']}")
    if values.get("agreement_id") is not None:
        agreement = await session.get(Agreement, values["agreement_id"])
        if agreement is None or agreement.client_id != client_id:
            raise ValidationError("agreement_id", f"no agreement {values['agreement_id']} of client {client_id}")


def _apply_status(kind: str, row: Any, values: dict[str, Any], actor: Actor, now: dt.datetime) -> None:
    """Closing a promise records who closed it and when; closing an agreement dates it."""
    status = values.get("status")
    if status is None or status == row.status:
        return
    if kind == "promise":
        row.closed_by_id = None if status == "open" else actor.id
        row.closed_at = None if status == "open" else now
    elif kind == "agreement":
        row.closed_at = None if status == "open" else now


async def _after_money_change(session: AsyncSession, kind: str, client_id: int, settings: Settings,
                              now: dt.datetime) -> None:
    """Payments and agreements decide whether a client is regular: recompute it now."""
    if kind not in ("payment", "agreement"):
        return
    await recompute_status(session, client_id, settings, now)


async def create_record(session: AsyncSession, kind: str, data: object, actor: Actor, settings: Settings,
                        *, now: dt.datetime | None = None, idempotency_key: str | None = None) -> dict[str, Any]:
    """A new record; *idempotency_key* through ``idempotency.create_once`` only."""
    now = now or utcnow()
    values = RESOURCES[kind].create.parse(data, parse_context(settings))
    _check_money(kind, actor, next(iter(values), None))
    await _check_refs(session, values, values["client_id"])
    author = _AUTHOR[kind]
    if author is not None:
        values[author] = actor.id
    if kind == "agreement" and values.get("status") not in (None, "open"):
        values["closed_at"] = now
    if kind in ("agreement", "payment", "receivable") and values.get("currency") is None:
        values.pop("currency", None)
    if idempotency_key is not None:
        values["idempotency_key"] = idempotency_key
    row = MODELS[kind](**{k: v for k, v in values.items() if v is not None})
    session.add(row)
    await session.flush()
    if kind in audit.AUDITED:
        audit.record(session, kind, row.id, audit.changes_of(kind, None, audit.snapshot(row, kind)),
                     employee_id=actor.id, client_id=row.client_id, at=now)
    await _after_money_change(session, kind, row.client_id, settings, now)
    log.info("%s %s created by employee %s for client %s", kind, row.id, actor.id, row.client_id)
    return await get_record(session, kind, row.id, now=now)


def _check_money(kind: str, actor: Actor, field: str | None) -> None:
    if kind in _MONEY and not actor.is_supervisor:
        raise Forbidden(f"{kind}s are entered by supervisors or imported from accounting: a manager may only "
                        f"read them", field=field)


def _check_may_edit(kind: str, row: Any, values: Mapping[str, Any], actor: Actor) -> None:
    _check_money(kind, actor, next(iter(values), None))
    author = _AUTHOR[kind]
    if author is None or actor.is_supervisor or getattr(row, author) == actor.id:
        return
    if kind == "promise" and set(values) <= {"status"}:
        return  # anyone may record that a colleague's promise was kept or broken
    who = "a colleague" if getattr(row, author) is not None else "no one here (imported)"
    raise Forbidden(f"this {kind} was written by {who}: only its author or a supervisor may change it",
                    field=next(iter(values), None))


async def update_record(session: AsyncSession, kind: str, ident: int, data: object, actor: Actor,
                        settings: Settings, *, now: dt.datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    row = await _load(session, kind, ident)
    values = RESOURCES[kind].patch.parse(data, parse_context(settings), partial=True)
    _check_may_edit(kind, row, values, actor)
    await _check_refs(session, values, row.client_id)
    if "currency" in values and values["currency"] is None:
        raise ValidationError("currency", "is required")
    _apply_status(kind, row, values, actor, now)
    before = audit.snapshot(row, kind) if kind in audit.AUDITED else None
    for name, value in values.items():
        setattr(row, name, value)
    await session.flush()
    if before is not None:
        audit.record(session, kind, row.id, audit.changes_of(kind, before, audit.snapshot(row, kind)),
                     employee_id=actor.id, client_id=row.client_id, at=now)
    await _after_money_change(session, kind, row.client_id, settings, now)
    log.info("%s %s changed by employee %s: %s", kind, ident, actor.id, ", ".join(sorted(values)))
    return await get_record(session, kind, ident, now=now)


async def due_promises(session: AsyncSession, employee_id: int, settings: Settings,
                       *, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """The manager's open promises due by the end of today (company time): overdue first."""
    now = now or utcnow()
    zone = ZoneInfo(settings.kpi.timezone)
    local = now.astimezone(zone)
    end_of_day = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(0, 0), zone).astimezone(dt.UTC)
    stmt = (select(Promise)
            .where(Promise.made_by_id == employee_id, Promise.status == "open", Promise.due_at < end_of_day)
            .order_by(Promise.due_at, Promise.id).limit(500))
    rows = list((await session.execute(stmt)).scalars())
    return await _dump_rows(session, "promise", rows, now)
