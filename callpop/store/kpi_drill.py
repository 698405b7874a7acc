"""Drill-down: the rows behind one number of the dashboard.

Each kind lists exactly what ``kpi_queries`` counted or summed for that manager and
period (same filters), so a supervisor can check any figure line by line. Rows are plain
values; the page escapes them. At most ``LIMIT`` rows are returned, newest first, and the
page says when the list is cut.
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
from callpop.store.models import Agreement, Call, CallParticipant, Client, Contact, Payment, Promise, Receivable

__all__ = ["COLUMN_LABELS", "DRILL_KINDS", "LIMIT", "NUMERIC_COLUMNS", "VALUE_LABELS", "Drill", "drill"]

LIMIT = 1000
DRILL_KINDS = (*kpi.KPI_NAMES, "missed", "overdue")
# Column headings (English message ids; the page translates them).
COLUMN_LABELS = {"started": "Started", "client": "Client", "direction": "Direction", "talk_seconds": "Talk, s",
                 "counted": "Counted", "reason": "Why not counted", "call": "Call id", "what": "What",
                 "date": "Date", "amount": "Amount", "currency": "Currency", "closed": "Closed",
                 "agreement": "Agreement", "status": "Status", "source": "Status set by", "created": "Created",
                 "number": "Number", "due": "Due", "promise": "Promise"}
# Values shown in words (English message ids): contact reasons, directions, statuses.
VALUE_LABELS = {"yes": "Yes", "no": "No", "inbound": "Inbound", "outbound": "Outbound", "internal": "Internal",
                "short_talk": "Talk too short", "not_regular": "Not a regular client",
                "duplicate_day": "Already counted that day", "direction_off": "Direction not counted",
                "won": "Won", "lost": "Lost", "regular": "Regular", "new": "New", "rule": "Rule",
                "manual": "By hand", "payment": "Payment", "outstanding at start": "Owed at the start"}
NUMERIC_COLUMNS = frozenset({"talk_seconds", "amount"})


@dataclass(frozen=True, slots=True)
class Drill:
    kind: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    truncated: bool
    # client id per row (None when the row has no client), for links to the client page
    client_ids: tuple[int | None, ...]


def _local(moment: dt.datetime | None, tz: ZoneInfo) -> str:
    return "" if moment is None else moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")


async def drill(session: AsyncSession, kind: str, employee_id: int, period: kpi.Period,
                settings: Settings, now: dt.datetime) -> Drill:
    if kind not in DRILL_KINDS:
        raise ValueError(f"kpi: expected one of {', '.join(DRILL_KINDS)}, found {kind!r}")
    tz = ZoneInfo(settings.kpi.timezone)
    start, end = period.bounds(settings.kpi.timezone)
    rows: list[tuple[Any, ...]] = []
    clients: list[int | None] = []
    columns: tuple[str, ...]
    result: Any
    if kind == "contacts":
        columns = ("started", "client", "direction", "talk_seconds", "counted", "reason", "call")
        result = await session.execute(
            select(Contact.started_at, Client.name, Contact.direction, Contact.talk_seconds, Contact.counted,
                   Contact.reason, Call.call_key, Client.id)
            .join(Client, Client.id == Contact.client_id).join(Call, Call.id == Contact.call_id)
            .where(Contact.employee_id == employee_id, Contact.started_at >= start, Contact.started_at < end)
            .order_by(Contact.started_at.desc()).limit(LIMIT + 1))
        for started, name, direction, talk, counted, reason, key, cid in result:
            rows.append((_local(started, tz), name, direction, talk, "yes" if counted else "no", reason or "", key))
            clients.append(cid)
    elif kind == "collections":
        columns = ("what", "date", "client", "amount", "currency")
        paid = await session.execute(
            select(Payment.paid_at, Client.name, Payment.amount, Payment.currency, Client.id)
            .join(Client, Client.id == Payment.client_id)
            .where(Client.responsible_id == employee_id, Payment.paid_at >= start, Payment.paid_at < end)
            .order_by(Payment.paid_at.desc()).limit(LIMIT + 1))
        for when, name, amount, currency, cid in paid:
            rows.append(("payment", _local(when, tz), name, f"{amount:.2f}", currency))
            clients.append(cid)
        owed = await session.execute(
            select(Receivable.issued_at, Client.name, Receivable.amount, Receivable.currency, Client.id)
            .join(Client, Client.id == Receivable.client_id)
            .where(Client.responsible_id == employee_id, Receivable.issued_at < start,
                   or_(Receivable.settled_at.is_(None), Receivable.settled_at >= start))
            .order_by(Receivable.issued_at.desc()).limit(LIMIT + 1))
        for when, name, amount, currency, cid in owed:
            rows.append(("outstanding at start", _local(when, tz), name, f"{amount:.2f}", currency))
            clients.append(cid)
    elif kind == "win_rate":
        columns = ("closed", "client", "agreement", "status", "amount")
        result = await session.execute(
            select(Agreement.closed_at, Client.name, Agreement.title, Agreement.status, Agreement.amount, Client.id)
            .join(Client, Client.id == Agreement.client_id)
            .where(Agreement.made_by_id == employee_id, Agreement.closed_at >= start, Agreement.closed_at < end,
                   Agreement.status.in_(("won", "lost")))
            .order_by(Agreement.closed_at.desc()).limit(LIMIT + 1))
        for closed, name, title, status, amount, cid in result:
            rows.append((_local(closed, tz), name, title, status, "" if amount is None else f"{amount:.2f}"))
            clients.append(cid)
    elif kind == "new_vs_regular":
        columns = ("client", "status", "source", "created")
        is_new = and_(Client.status == "new", Client.created_at >= start, Client.created_at < end)
        result = await session.execute(
            select(Client.name, Client.status, Client.status_source, Client.created_at, Client.id)
            .where(Client.responsible_id == employee_id, or_(Client.status == "regular", is_new))
            .order_by(Client.status, Client.name).limit(LIMIT + 1))
        for name, status, source, created, cid in result:
            rows.append((name, status, source, _local(created, tz)))
            clients.append(cid)
    elif kind == "missed":
        columns = ("started", "client", "number", "direction", "call")
        result = await session.execute(
            select(Call.started_at, Client.name, Call.client_number, Call.direction, Call.call_key, Client.id)
            .join(CallParticipant, CallParticipant.call_id == Call.id)
            .outerjoin(Client, Client.id == Call.client_id)
            .where(CallParticipant.employee_id == employee_id, Call.outcome == "missed",
                   Call.started_at >= start, Call.started_at < end)
            .order_by(Call.started_at.desc()).limit(LIMIT + 1))
        for started, name, number, direction, key, cid in result:
            rows.append((_local(started, tz), name or "", number or "", direction, key))
            clients.append(cid)
    else:
        columns = ("due", "client", "promise")
        result = await session.execute(
            select(Promise.due_at, Client.name, Promise.text, Client.id)
            .join(Client, Client.id == Promise.client_id)
            .where(Promise.made_by_id == employee_id, Promise.status == "open", Promise.due_at < now)
            .order_by(Promise.due_at).limit(LIMIT + 1))
        for due, name, text, cid in result:
            rows.append((_local(due, tz), name, text))
            clients.append(cid)
    truncated = len(rows) > LIMIT
    return Drill(kind, columns, tuple(rows[:LIMIT]), truncated, tuple(clients[:LIMIT]))
