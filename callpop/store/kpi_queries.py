"""KPI figures from the database: per manager and period, a fixed number of queries.

Every aggregate is one GROUP BY over all the managers asked for, so the dashboard costs
the same handful of statements for 5 managers or 200 (bench/kpi.py keeps it honest).
Local calendar days (``kpi.timezone``) are computed in SQL with a binary CASE over the
UTC instants of each local midnight, which is exact across DST changes and identical on
SQLite and PostgreSQL. Formulas live in callpop.kpi; this module only counts and sums.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, and_, case, func, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from callpop import kpi
from callpop.settings import Settings
from callpop.store.models import (
    Agreement,
    Call,
    CallParticipant,
    Client,
    Contact,
    Employee,
    Payment,
    Plan,
    Promise,
    Receivable,
)

__all__ = [
    "ManagerFacts",
    "day_bucket",
    "earnings_for",
    "manager_facts",
    "managers",
    "per_day",
    "plans_by_month",
]


@dataclass(slots=True)
class ManagerFacts:
    """The raw counts and sums behind one manager's KPIs for a period."""

    employee_id: int
    name: str
    contacts: int = 0
    paid: float = 0.0
    outstanding: float = 0.0
    won: int = 0
    lost: int = 0
    new: int = 0
    regular: int = 0
    missed: int = 0
    overdue: int = 0
    plans: dict[str, dict[dt.date, float]] = field(default_factory=dict)

    def facts(self) -> dict[str, float | None]:
        return {
            "contacts": float(self.contacts),
            "collections": kpi.collections_pct(self.paid, self.outstanding),
            "win_rate": kpi.win_rate_pct(self.won, self.lost),
            "new_vs_regular": kpi.new_vs_regular_pct(self.new, self.regular),
        }


def day_bucket(column: Any, starts: Sequence[dt.datetime]) -> ColumnElement[int]:
    """Index of the local day *column* falls in: starts[i] <= column < starts[i + 1].

    A balanced CASE tree: about log2(days) comparisons per row. Values outside the range
    land on the first or last day, so callers filter on the range first."""

    def build(lo: int, hi: int) -> ColumnElement[int]:
        if hi - lo <= 1:
            return literal_column(str(int(lo)))
        mid = (lo + hi) // 2
        return case((column < starts[mid], build(lo, mid)), else_=build(mid, hi))

    return build(0, max(1, len(starts) - 1))


async def managers(session: AsyncSession, employee_ids: Collection[int] | None = None) -> list[tuple[int, str]]:
    """Active managers (id, name) by name; or exactly the employees asked for."""
    query = select(Employee.id, Employee.name).order_by(Employee.name, Employee.id)
    if employee_ids is None:
        query = query.where(Employee.active.is_(True), Employee.role == "manager")
    else:
        query = query.where(Employee.id.in_(list(employee_ids)))
    return [(int(i), str(n)) for i, n in await session.execute(query)]


async def plans_by_month(session: AsyncSession, period: kpi.Period,
                         employee_ids: Collection[int]) -> dict[int, dict[str, dict[dt.date, float]]]:
    """employee -> kpi -> month -> target for the months the period touches."""
    result: dict[int, dict[str, dict[dt.date, float]]] = {}
    if not employee_ids:
        return result
    rows = await session.execute(
        select(Plan.employee_id, Plan.kpi, Plan.month, Plan.target)
        .where(Plan.month >= kpi.month_start(period.start), Plan.month < period.end,
               Plan.employee_id.in_(list(employee_ids))))
    for emp, name, month, target in rows:
        result.setdefault(emp, {}).setdefault(name, {})[month] = float(target)
    return result


async def manager_facts(session: AsyncSession, period: kpi.Period, settings: Settings, now: dt.datetime,
                        employee_ids: Collection[int] | None = None) -> list[ManagerFacts]:
    """Facts for every active manager (or the ones asked for): eight queries in all."""
    people = await managers(session, employee_ids)
    by_id = {emp: ManagerFacts(emp, name) for emp, name in people}
    ids = list(by_id)
    if not ids:
        return []
    start, end = period.bounds(settings.kpi.timezone)
    emp: Any  # row values: the id columns are nullable in the schema, not in these rows

    contacts = await session.execute(
        select(Contact.employee_id, func.count())
        .where(Contact.counted.is_(True), Contact.started_at >= start, Contact.started_at < end,
               Contact.employee_id.in_(ids)).group_by(Contact.employee_id))
    for emp, n in contacts:
        by_id[emp].contacts = int(n)

    paid = await session.execute(
        select(Client.responsible_id, func.coalesce(func.sum(Payment.amount), 0))
        .join(Client, Client.id == Payment.client_id)
        .where(Payment.paid_at >= start, Payment.paid_at < end, Client.responsible_id.in_(ids))
        .group_by(Client.responsible_id))
    for emp, amount in paid:
        by_id[emp].paid = float(amount)

    outstanding = await session.execute(
        select(Client.responsible_id, func.coalesce(func.sum(Receivable.amount), 0))
        .join(Client, Client.id == Receivable.client_id)
        .where(Receivable.issued_at < start,
               or_(Receivable.settled_at.is_(None), Receivable.settled_at >= start),
               Client.responsible_id.in_(ids))
        .group_by(Client.responsible_id))
    for emp, amount in outstanding:
        by_id[emp].outstanding = float(amount)

    closed = await session.execute(
        select(Agreement.made_by_id, Agreement.status, func.count())
        .where(Agreement.closed_at >= start, Agreement.closed_at < end, Agreement.status.in_(("won", "lost")),
               Agreement.made_by_id.in_(ids))
        .group_by(Agreement.made_by_id, Agreement.status))
    for emp, status, n in closed:
        if status == "won":
            by_id[emp].won = int(n)
        else:
            by_id[emp].lost = int(n)

    is_new = and_(Client.status == "new", Client.created_at >= start, Client.created_at < end)
    clients = await session.execute(
        select(Client.responsible_id,
               func.coalesce(func.sum(case((Client.status == "regular", 1), else_=0)), 0),
               func.coalesce(func.sum(case((is_new, 1), else_=0)), 0))
        .where(Client.responsible_id.in_(ids)).group_by(Client.responsible_id))
    for emp, regular, new in clients:
        by_id[emp].regular, by_id[emp].new = int(regular), int(new)

    missed = await session.execute(
        select(CallParticipant.employee_id, func.count(func.distinct(Call.id)))
        .join(Call, Call.id == CallParticipant.call_id)
        .where(Call.outcome == "missed", Call.started_at >= start, Call.started_at < end,
               CallParticipant.employee_id.in_(ids))
        .group_by(CallParticipant.employee_id))
    for emp, n in missed:
        by_id[emp].missed = int(n)

    overdue = await session.execute(
        select(Promise.made_by_id, func.count())
        .where(Promise.status == "open", Promise.due_at < now, Promise.made_by_id.in_(ids))
        .group_by(Promise.made_by_id))
    for emp, n in overdue:
        by_id[emp].overdue = int(n)

    for emp, plans in (await plans_by_month(session, period, ids)).items():
        by_id[emp].plans = plans
    return [by_id[emp] for emp, _ in people]


async def per_day(session: AsyncSession, what: str, period: kpi.Period, settings: Settings,
                  employee_ids: Collection[int]) -> dict[int, list[int]]:
    """employee -> count per local day of the period, for ``contacts`` (counted) or ``missed``."""
    ids = list(employee_ids)
    days = len(period.days)
    result = {emp: [0] * days for emp in ids}
    if not ids:
        return result
    starts = kpi.local_day_starts(period, settings.kpi.timezone)
    inner: Select[Any, Any]
    if what == "contacts":
        inner = (select(Contact.employee_id.label("emp"), day_bucket(Contact.started_at, starts).label("day"))
                 .where(Contact.counted.is_(True), Contact.started_at >= starts[0], Contact.started_at < starts[-1],
                        Contact.employee_id.in_(ids)))
    elif what == "missed":
        inner = (select(CallParticipant.employee_id.label("emp"), day_bucket(Call.started_at, starts).label("day"))
                 .join(Call, Call.id == CallParticipant.call_id)
                 .where(Call.outcome == "missed", Call.started_at >= starts[0], Call.started_at < starts[-1],
                        CallParticipant.employee_id.in_(ids)))
    else:
        raise ValueError(f"per_day: expected contacts or missed, found {what!r}")
    sub = inner.subquery()
    rows = await session.execute(select(sub.c.emp, sub.c.day, func.count()).group_by(sub.c.emp, sub.c.day))
    for emp, day, n in rows:
        if emp in result and 0 <= int(day) < days:
            result[emp][int(day)] = int(n)
    return result


async def earnings_for(session: AsyncSession, employee_id: int, settings: Settings,
                       now: dt.datetime) -> tuple[ManagerFacts | None, kpi.Earnings]:
    """"How much have I earned": this month's facts to *now* against this month's plans."""
    today = now.astimezone(ZoneInfo(settings.kpi.timezone)).date()
    period = kpi.parse_period("month", today)
    facts = await manager_facts(session, period, settings, now, employee_ids=[employee_id])
    row = facts[0] if facts else None
    plans: dict[str, float | None] = {}
    if row is not None:
        for name in kpi.KPI_NAMES:
            plans[name] = row.plans.get(name, {}).get(period.start)
    elapsed, total = kpi.month_progress(today, settings.kpi.working_days)
    result = kpi.earnings(row.facts() if row else {}, plans, settings.bonus, elapsed, total)
    return row, result
