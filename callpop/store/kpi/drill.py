"""Drill-down: the rows behind one number of the dashboard.

Each kind lists exactly what ``queries`` counted or summed for that manager and
period (same filters), so a supervisor can check any figure line by line. Rows are plain
values; the page escapes them. Rows come a page at a time (``offset``, ``limit`` at most
``LIMIT``), newest first; ``more`` says whether another page follows. ``employee_id=None``
is every manager (the dashboard's Total row), with a Manager column first.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from callpop import kpi
from callpop.settings import Settings
from callpop.store.kpi.queries import MISSED
from callpop.store.models import (
    Agreement,
    Call,
    CallParticipant,
    Client,
    Contact,
    Employee,
    Payment,
    Promise,
    Receivable,
)

__all__ = ["COLUMN_LABELS", "DRILL_KINDS", "LIMIT", "NUMERIC_COLUMNS", "PAGE_SIZE", "VALUE_LABELS", "Drill", "drill"]

LIMIT = 1000
PAGE_SIZE = 100
DRILL_KINDS = (*kpi.KPI_NAMES, "missed", "overdue")
# Column headings (English message ids; the page translates them).
COLUMN_LABELS = {"manager": "Manager", "started": "Started", "client": "Client", "direction": "Direction",
                 "talk_seconds": "Talk time",
                 "counted": "Counted", "reason": "Why not counted", "call": "Call id", "what": "What",
                 "date": "Date", "amount": "Amount", "currency": "Currency", "closed": "Closed",
                 "agreement": "Agreement", "status": "Status", "source": "Status set by", "created": "Created",
                 "number": "Number", "due": "Due", "promise": "Promise"}
# Values shown in words (English message ids): contact reasons, directions, statuses.
VALUE_LABELS = {"yes": "Yes", "no": "No", "inbound": "Inbound", "outbound": "Outbound", "internal": "Internal",
                "short_talk": "Talk too short", "not_regular": "Not a regular client",
                "uncertain_talk": "Talk maybe too short (answer or end time unknown)",
                "duplicate_day": "Already counted that day", "direction_off": "Direction not counted",
                "won": "Won", "lost": "Lost", "regular": "Regular", "new": "New", "rule": "Rule",
                "manual": "By hand", "payment": "Payment", "outstanding at start": "Owed at the start"}
NUMERIC_COLUMNS = frozenset({"talk_seconds", "amount"})


@dataclass(frozen=True, slots=True)
class Drill:
    kind: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    more: bool  # another page follows
    # client id per row (None when the row has no client), for links to the client page
    client_ids: tuple[int | None, ...]
    offset: int = 0


def _local(moment: dt.datetime | None, tz: ZoneInfo) -> str:
    return "" if moment is None else moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def _scoped(query: Any, column: Any, employee_id: int | None, offset: int, limit: int) -> Any:
    """One manager's rows, or everyone's with the manager's name as the last column; one page."""
    if employee_id is not None:
        return query.where(column == employee_id).offset(offset).limit(limit + 1)
    return (query.add_columns(Employee.name).outerjoin(Employee, Employee.id == column)
            .offset(offset).limit(limit + 1))


async def drill(session: AsyncSession, kind: str, employee_id: int | None, period: kpi.Period,
                settings: Settings, now: dt.datetime, *, offset: int = 0, limit: int = LIMIT) -> Drill:
    if kind not in DRILL_KINDS:
        raise ValueError(f"kpi: expected one of {', '.join(DRILL_KINDS)}, found {kind!r}")
    if not 1 <= limit <= LIMIT:
        raise ValueError(f"limit: expected 1 to {LIMIT}, found {limit}")
    if offset < 0:
        raise ValueError(f"offset: expected 0 or more, found {offset}")
    every = employee_id is None
    managers: list[str] = []
    tz = ZoneInfo(settings.kpi.timezone)
    start, end = period.bounds(settings.kpi.timezone)
    rows: list[tuple[Any, ...]] = []
    clients: list[int | None] = []
    columns: tuple[str, ...]
    result: Any
    if kind == "contacts":
        # answer_unseen, end_unseen: the talk is the least it can have been (the answer or
        # the end was not seen)
        columns = ("started", "client", "direction", "talk_seconds", "counted", "reason", "call", "answer_unseen",
                   "end_unseen")
        result = await session.execute(_scoped(
            select(Contact.started_at, Client.name, Contact.direction, Contact.talk_seconds, Contact.counted,
                   Contact.reason, Call.call_key, Call.answer_unseen, Call.end_unseen, Client.id)
            .join(Client, Client.id == Contact.client_id).join(Call, Call.id == Contact.call_id)
            .where(Contact.started_at >= start, Contact.started_at < end)
            .order_by(Contact.started_at.desc(), Contact.id), Contact.employee_id, employee_id, offset, limit))
        for started, name, direction, talk, counted, reason, key, unseen, end_unseen, cid, *who in result:
            managers.extend(who)
            rows.append((_local(started, tz), name, direction, talk, "yes" if counted else "no", reason or "", key,
                         bool(unseen), bool(end_unseen)))
            clients.append(cid)
    elif kind == "collections":
        columns = ("what", "date", "client", "amount", "currency")
        # two lists one after the other: each read up to the end of the page, then cut
        paid = await session.execute(_scoped(
            select(Payment.paid_at, Client.name, Payment.amount, Payment.currency, Client.id)
            .join(Client, Client.id == Payment.client_id)
            .where(Payment.paid_at >= start, Payment.paid_at < end)
            .order_by(Payment.paid_at.desc(), Payment.id), Client.responsible_id, employee_id, 0, offset + limit))
        for when, name, amount, currency, cid, *who in paid:
            rows.append(("payment", _local(when, tz), name, f"{amount:.2f}", currency))
            clients.append(cid)
            managers.extend(who)
        owed = await session.execute(_scoped(
            select(Receivable.issued_at, Client.name, Receivable.amount, Receivable.currency, Client.id)
            .join(Client, Client.id == Receivable.client_id)
            .where(Receivable.issued_at < start,
                   or_(Receivable.settled_at.is_(None), Receivable.settled_at >= start))
            .order_by(Receivable.issued_at.desc(), Receivable.id), Client.responsible_id, employee_id, 0,
            offset + limit))
        for when, name, amount, currency, cid, *who in owed:
            rows.append(("outstanding at start", _local(when, tz), name, f"{amount:.2f}", currency))
            clients.append(cid)
            managers.extend(who)
        rows, clients, managers = rows[offset:], clients[offset:], managers[offset:]
    elif kind == "win_rate":
        columns = ("closed", "client", "agreement", "status", "amount")
        result = await session.execute(_scoped(
            select(Agreement.closed_at, Client.name, Agreement.title, Agreement.status, Agreement.amount, Client.id)
            .join(Client, Client.id == Agreement.client_id)
            .where(Agreement.closed_at >= start, Agreement.closed_at < end, Agreement.status.in_(("won", "lost")))
            .order_by(Agreement.closed_at.desc(), Agreement.id), Agreement.made_by_id, employee_id, offset, limit))
        for closed, name, title, status, amount, cid, *who in result:
            managers.extend(who)
            rows.append((_local(closed, tz), name, title, status, "" if amount is None else f"{amount:.2f}"))
            clients.append(cid)
    elif kind == "new_vs_regular":
        columns = ("client", "status", "source", "created")
        is_new = and_(Client.status == "new", Client.created_at >= start, Client.created_at < end)
        result = await session.execute(_scoped(
            select(Client.name, Client.status, Client.status_source, Client.created_at, Client.id)
            .where(Client.responsible_id.is_not(None), or_(Client.status == "regular", is_new))
            .order_by(Client.status, Client.name, Client.id), Client.responsible_id, employee_id, offset, limit))
        for name, status, source, created, cid, *who in result:
            managers.extend(who)
            rows.append((name, status, source, _local(created, tz)))
            clients.append(cid)
    elif kind == "missed":
        columns = ("started", "client", "number", "direction", "call")
        result = await session.execute(_scoped(
            select(Call.started_at, Client.name, Call.client_number, Call.direction, Call.call_key, Client.id)
            .join(CallParticipant, CallParticipant.call_id == Call.id)
            .outerjoin(Client, Client.id == Call.client_id)
            .where(CallParticipant.employee_id.is_not(None), *MISSED,
                   Call.started_at >= start, Call.started_at < end)
            .order_by(Call.started_at.desc(), Call.id), CallParticipant.employee_id, employee_id, offset, limit))
        for started, name, number, direction, key, cid, *who in result:
            managers.extend(who)
            rows.append((_local(started, tz), name or "", number or "", direction, key))
            clients.append(cid)
    else:
        columns = ("due", "client", "promise")
        result = await session.execute(_scoped(
            select(Promise.due_at, Client.name, Promise.text, Client.id)
            .join(Client, Client.id == Promise.client_id)
            .where(Promise.made_by_id.is_not(None), Promise.status == "open", Promise.due_at < now)
            .order_by(Promise.due_at, Promise.id), Promise.made_by_id, employee_id, offset, limit))
        for due, name, text, cid, *who in result:
            managers.extend(who)
            rows.append((_local(due, tz), name, text))
            clients.append(cid)
    more = len(rows) > limit
    rows, clients = rows[:limit], clients[:limit]
    if every:
        columns = ("manager", *columns)
        rows = [(m or "", *r) for m, r in zip(managers, rows, strict=False)]
    return Drill(kind, columns, tuple(rows), more, tuple(clients), offset)
