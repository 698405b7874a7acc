"""KPI figures from the database: per manager and period, a fixed number of queries.

Every aggregate is one GROUP BY over all the managers asked for, so the dashboard costs
the same handful of statements for 5 managers or 200 (bench/kpi.py keeps it honest).
Local calendar days (``kpi.timezone``) are computed in SQL with a binary CASE over the
UTC instants of each local midnight, which is exact across DST changes and identical on
SQLite and PostgreSQL. Formulas live in callpop.kpi; this module only counts and sums.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Integer,
    Select,
    and_,
    case,
    cast,
    func,
    literal_column,
    or_,
    select,
    text,
    true,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from callpop import kpi
from callpop.settings import Settings
from callpop.store.db import dialect_of
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
    "MISSED",
    "ManagerFacts",
    "day_bucket",
    "earnings_for",
    "manager_facts",
    "managers",
    "missed_total",
    "per_day",
    "per_day_series",
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


def day_bucket(column: Any, starts: Sequence[dt.datetime], dialect: str = "sqlite") -> ColumnElement[int]:
    """Index of the local day *column* falls in: starts[i] <= column < starts[i + 1].

    When every day of the period is 24 hours long (no DST change inside it) the index is
    arithmetic on the instant: whole seconds since the first local midnight, divided by
    86,400 — cheap on every row. Otherwise a balanced CASE tree over the midnights, about
    log2(days) comparisons per row, exact across the change. Values outside the range are
    meaningless, so callers filter on the range first."""
    uniform = all(b - a == dt.timedelta(days=1) for a, b in itertools.pairwise(starts))
    if uniform and dialect == "sqlite":
        # julianday() is a double: round to the millisecond before the integer division
        origin = starts[0].astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        seconds = cast((func.julianday(column) - func.julianday(origin)) * 86400.0 + 0.0005, Integer)
        return seconds // 86400
    if uniform and dialect == "postgresql":
        return cast(func.floor(func.extract("epoch", column - starts[0]) / 86400), Integer)

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


def _only(column: Any, employee_ids: Collection[int] | None) -> list[ColumnElement[bool]]:
    """The employee filter of one part: none for "everyone" (rows of non-managers are
    dropped in Python, cheaper than a 200-value IN list), ``=`` for one, IN for a few."""
    if employee_ids is None:
        return [column.is_not(None)]
    ids = list(employee_ids)
    return [column == ids[0]] if len(ids) == 1 else [column.in_(ids)]


async def _custom_plans(session: AsyncSession) -> None:
    """PostgreSQL: plan these statements for the actual period, in this transaction only.

    asyncpg prepares every statement; after five runs PostgreSQL may switch to a generic
    plan that guesses a date range at 0.5 % of the table and walks a month of payments
    with 20,000 primary-key lookups (57 ms) instead of one hash join (19 ms)."""
    if dialect_of(session) == "postgresql":
        await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


def _tag(name: str) -> ColumnElement[str]:
    return literal_column(f"'{name}'")  # constant names only, never user input


async def plans_by_month(session: AsyncSession, period: kpi.Period,
                         employee_ids: Collection[int] | None) -> dict[int, dict[str, dict[dt.date, float]]]:
    """employee -> kpi -> month -> target for the months the period touches."""
    result: dict[int, dict[str, dict[dt.date, float]]] = {}
    rows = await session.execute(
        select(Plan.employee_id, Plan.kpi, Plan.month, Plan.target)
        .where(Plan.month >= kpi.month_start(period.start), Plan.month < period.end,
               *_only(Plan.employee_id, employee_ids)))
    for emp, name, month, target in rows:
        result.setdefault(emp, {}).setdefault(name, {})[month] = float(target)
    return result


# A missed call is an inbound call nobody answered. An outbound call the client did not
# pick up is not "missed" by the manager who dialled it.
MISSED = (Call.outcome == "missed", Call.direction == "inbound")


async def missed_total(session: AsyncSession, period: kpi.Period, settings: Settings) -> int:
    """Missed calls of the period, each once: a queue call that rang five managers and was
    abandoned is one missed call in the total, though each of the five missed it."""
    start, end = period.bounds(settings.kpi.timezone)
    rang_a_manager = select(CallParticipant.call_id).where(CallParticipant.employee_id.is_not(None))
    count = await session.scalar(select(func.count()).select_from(Call).where(
        *MISSED, Call.started_at >= start, Call.started_at < end, Call.id.in_(rang_a_manager)))
    return int(count or 0)


def _facts_statement(start: dt.datetime, end: dt.datetime, now: dt.datetime,
                     employee_ids: Collection[int] | None, *, daily: bool = False) -> CompoundSelect[Any]:
    """One UNION ALL of every per-manager aggregate: rows (employee, tag, a, b).

    *daily*: the caller also reads the per-day series, whose sums are the contact and
    missed-call counts, so those two parts are left out here rather than counted twice."""
    zero: ColumnElement[int] = literal_column("0")
    is_new = and_(Client.status == "new", Client.created_at >= start, Client.created_at < end)
    parts: list[Select[Any, Any, Any, Any]] = [] if daily else [
        select(Contact.employee_id, _tag("contacts"), func.count(), zero)
        .where(Contact.counted == true(), Contact.started_at >= start, Contact.started_at < end,
               *_only(Contact.employee_id, employee_ids)).group_by(Contact.employee_id),
        select(CallParticipant.employee_id, _tag("missed"), func.count(func.distinct(Call.id)), zero)
        .join(Call, Call.id == CallParticipant.call_id)
        .where(*MISSED, Call.started_at >= start, Call.started_at < end,
               *_only(CallParticipant.employee_id, employee_ids))
        .group_by(CallParticipant.employee_id),
    ]
    return union_all(
        *parts,
        select(Client.responsible_id, _tag("paid"), func.coalesce(func.sum(Payment.amount), 0), zero)
        .join(Client, Client.id == Payment.client_id)
        .where(Payment.paid_at >= start, Payment.paid_at < end, *_only(Client.responsible_id, employee_ids))
        .group_by(Client.responsible_id),
        select(Client.responsible_id, _tag("outstanding"), func.coalesce(func.sum(Receivable.amount), 0), zero)
        .join(Client, Client.id == Receivable.client_id)
        .where(Receivable.issued_at < start, or_(Receivable.settled_at.is_(None), Receivable.settled_at >= start),
               *_only(Client.responsible_id, employee_ids))
        .group_by(Client.responsible_id),
        select(Agreement.made_by_id, Agreement.status, func.count(), zero)
        .where(Agreement.closed_at >= start, Agreement.closed_at < end, Agreement.status.in_(("won", "lost")),
               *_only(Agreement.made_by_id, employee_ids))
        .group_by(Agreement.made_by_id, Agreement.status),
        select(Client.responsible_id, _tag("clients"),
               func.coalesce(func.sum(case((Client.status == "regular", 1), else_=0)), 0),
               func.coalesce(func.sum(case((is_new, 1), else_=0)), 0))
        .where(*_only(Client.responsible_id, employee_ids)).group_by(Client.responsible_id),
        select(Promise.made_by_id, _tag("overdue"), func.count(), zero)
        .where(Promise.status == "open", Promise.due_at < now, *_only(Promise.made_by_id, employee_ids))
        .group_by(Promise.made_by_id),
    )


async def manager_facts(session: AsyncSession, period: kpi.Period, settings: Settings, now: dt.datetime,
                        employee_ids: Collection[int] | None = None, *,
                        daily: tuple[dict[int, list[int]], dict[int, list[int]]] | None = None) -> list[ManagerFacts]:
    """Facts for every active manager (or the ones asked for): three statements in all
    (the people, one UNION ALL of the seven aggregates, the plans). *daily*: the
    ``per_day_series`` result when the caller has it; contacts and missed calls are then
    its sums instead of being counted again."""
    people = await managers(session, employee_ids)
    by_id = {emp: ManagerFacts(emp, name) for emp, name in people}
    if not by_id:
        return []
    start, end = period.bounds(settings.kpi.timezone)
    if daily is not None:
        for emp, series in daily[0].items():
            if emp in by_id:
                by_id[emp].contacts = sum(series)
        for emp, series in daily[1].items():
            if emp in by_id:
                by_id[emp].missed = sum(series)
    statement = _facts_statement(start, end, now, employee_ids, daily=daily is not None)
    if employee_ids is None:  # one manager's rows are found by index whatever the plan
        await _custom_plans(session)
    for emp, tag, a, b in await session.execute(statement):
        row = by_id.get(emp)
        if row is None:
            continue
        if tag == "contacts":
            row.contacts = int(a)
        elif tag == "paid":
            row.paid = float(a)
        elif tag == "outstanding":
            row.outstanding = float(a)
        elif tag == "won":
            row.won = int(a)
        elif tag == "lost":
            row.lost = int(a)
        elif tag == "clients":
            row.regular, row.new = int(a), int(b)
        elif tag == "missed":
            row.missed = int(a)
        elif tag == "overdue":
            row.overdue = int(a)
    for emp, plans in (await plans_by_month(session, period, employee_ids)).items():
        if emp in by_id:
            by_id[emp].plans = plans
    return [by_id[emp] for emp, _ in people]


async def per_day_series(session: AsyncSession, period: kpi.Period, settings: Settings,
                         employee_ids: Collection[int] | None) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
    """(counted contacts, missed calls) per employee per local day of the period: one statement."""
    days = len(period.days)
    wanted = None if employee_ids is None else set(employee_ids)
    contacts: dict[int, list[int]] = {emp: [0] * days for emp in (wanted or ())}
    missed: dict[int, list[int]] = {emp: [0] * days for emp in (wanted or ())}
    starts = kpi.local_day_starts(period, settings.kpi.timezone)
    dialect = dialect_of(session)
    c = (select(Contact.employee_id.label("emp"), day_bucket(Contact.started_at, starts, dialect).label("day"))
         .where(Contact.counted == true(), Contact.started_at >= starts[0], Contact.started_at < starts[-1],
                *_only(Contact.employee_id, employee_ids))).subquery()
    m = (select(CallParticipant.employee_id.label("emp"), day_bucket(Call.started_at, starts, dialect).label("day"),
                Call.id.label("call"))
         .join(Call, Call.id == CallParticipant.call_id)
         .where(*MISSED, Call.started_at >= starts[0], Call.started_at < starts[-1],
                *_only(CallParticipant.employee_id, employee_ids))).subquery()
    statement = union_all(
        select(c.c.emp, _tag("contacts"), c.c.day, func.count()).group_by(c.c.emp, c.c.day),
        select(m.c.emp, _tag("missed"), m.c.day, func.count(func.distinct(m.c.call))).group_by(m.c.emp, m.c.day),
    )
    if employee_ids is None:
        await _custom_plans(session)
    for emp, tag, day, n in await session.execute(statement):
        if wanted is not None and emp not in wanted:
            continue
        target = contacts if tag == "contacts" else missed
        series = target.setdefault(int(emp), [0] * days)
        if 0 <= int(day) < days:
            series[int(day)] = int(n)
    return contacts, missed


async def per_day(session: AsyncSession, what: str, period: kpi.Period, settings: Settings,
                  employee_ids: Collection[int]) -> dict[int, list[int]]:
    """employee -> count per local day, for ``contacts`` (counted) or ``missed``."""
    if what not in ("contacts", "missed"):
        raise ValueError(f"per_day: expected contacts or missed, found {what!r}")
    contacts, missed = await per_day_series(session, period, settings, employee_ids)
    return contacts if what == "contacts" else missed


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
