"""``callpop demo`` data: a Russian sales company with a year of history.

Managers (extensions 101, 102, ...), a supervisor and an admin, all with the password
"demo"; ``settings.demo.clients`` clients generated from ``settings.demo.seed``
(callpop.demo.plan) and written with bulk inserts in one transaction, so 3,000
clients take seconds. Seeding is idempotent: the first demo client is the marker, and a
second run only returns the accounts.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from callpop.accounts import hash_password
from callpop.demo.names import MANAGERS
from callpop.demo.plan import DemoPlan, Manager, plan_demo
from callpop.settings import Settings
from callpop.store.db import Database
from callpop.store.models import (
    Agreement,
    Call,
    CallParticipant,
    Client,
    ClientPhone,
    Contact,
    Employee,
    Extension,
    Note,
    Payment,
    Plan,
    Promise,
    Receivable,
)

__all__ = ["DEMO_PASSWORD", "DemoAccount", "DemoAccounts", "demo_client_numbers", "seed_demo"]

log = logging.getLogger(__name__)

DEMO_PASSWORD = "demo"
MARKER = "demo-00001"  # external id of the first demo client
_KPIS = ("contacts", "collections", "win_rate", "new_vs_regular")


@dataclass(frozen=True, slots=True)
class DemoAccount:
    login: str
    password: str
    role: str
    name: str
    extensions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DemoAccounts:
    """Who can log in to the demo; ``seeded`` is False when the company was already there."""

    accounts: tuple[DemoAccount, ...]
    seeded: bool
    clients: int

    def __iter__(self) -> Iterator[DemoAccount]:
        return iter(self.accounts)

    def lines(self) -> list[str]:
        """A table to print for the person starting the demo."""
        out = [f"{'login':<12} {'password':<9} {'role':<11} {'extension':<10} name"]
        for a in self.accounts:
            out.append(f"{a.login:<12} {a.password:<9} {a.role:<11} {', '.join(a.extensions) or '-':<10} {a.name}")
        return out


def _staff(settings: Settings) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(login, name, role, extensions): managers 101.., then the supervisor and the admin."""
    staff: list[tuple[str, str, str, tuple[str, ...]]] = []
    for i in range(max(1, settings.demo.managers)):
        name, login = MANAGERS[i] if i < len(MANAGERS) else (f"Менеджер {i + 1}", f"manager{i + 1}")
        staff.append((login, name, "manager", (str(101 + i),)))
    staff.append(("boss", "Волков Игорь Петрович", "supervisor", ()))
    staff.append(("admin", "Администратор", "admin", ()))
    return staff


async def _accounts(session: AsyncSession, settings: Settings, seeded: bool) -> DemoAccounts:
    logins = [login for login, *_ in _staff(settings)]
    employees = (await session.scalars(select(Employee).where(Employee.login.in_(logins)))).all()
    by_login = {e.login: e for e in employees}
    accounts = tuple(
        DemoAccount(login, DEMO_PASSWORD, by_login[login].role, by_login[login].name,
                    tuple(sorted(x.extension for x in by_login[login].extensions)))
        for login in logins if login in by_login)
    count = len((await session.scalars(select(Client.id).where(Client.external_id.like("demo-%")))).all())
    return DemoAccounts(accounts, seeded, count)


async def _employees(session: AsyncSession, settings: Settings) -> list[Manager]:
    """Create the demo staff (keeping any employee that already has one of the logins or
    extensions); argon2 is slow on purpose, so "demo" is hashed once for everyone."""
    password_hash = hash_password(DEMO_PASSWORD)
    existing = {e.login: e for e in (await session.scalars(select(Employee))).all()}
    taken = set((await session.scalars(select(Extension.extension))).all())
    managers: list[Manager] = []
    for login, name, role, extensions in _staff(settings):
        employee = existing.get(login)
        if employee is None:
            employee = Employee(name=name, login=login, password_hash=password_hash, role=role, active=True)
            session.add(employee)
            await session.flush()
        for ext in extensions:
            if ext not in taken:
                session.add(Extension(extension=ext, employee_id=employee.id))
                taken.add(ext)
            if role == "manager":
                managers.append(Manager(employee.id, ext))
    await session.flush()
    return managers


async def _insert(session: AsyncSession, model: Any, rows: Sequence[dict[str, Any]]) -> None:
    """Core executemany: the ORM's bulk path splits rows into batches by which values are
    None and splices their results, which is quadratic on large lists."""
    if rows:
        await session.execute(insert(model.__table__), list(rows))


async def _insert_ids(session: AsyncSession, model: Any, rows: Sequence[dict[str, Any]], key: str) -> list[int]:
    """Bulk insert; the new ids in the order of *rows*, matched on the unique column *key*
    (asking the database to keep the order costs a round trip per row on SQLite)."""
    if not rows:
        return []
    table = model.__table__
    result = await session.execute(insert(table).returning(table.c.id, table.c[key]), list(rows))
    ids = {k: i for i, k in result.all()}
    return [ids[r[key]] for r in rows]


async def _write(session: AsyncSession, plan: DemoPlan) -> None:
    client_ids = await _insert_ids(session, Client, plan.clients, "external_id")
    await _insert(session, ClientPhone, [{**r, "client_id": client_ids[c]} for c, r in plan.phones])
    agreement_ids = await _insert_ids(session, Agreement, [{**r, "client_id": client_ids[c]}
                                                           for c, r in plan.agreements], "external_id")
    await _insert(session, Payment, [{**r, "client_id": client_ids[c], "agreement_id": agreement_ids[a]}
                                     for c, a, r in plan.payments])
    await _insert(session, Receivable, [{**r, "client_id": client_ids[c], "agreement_id": agreement_ids[a]}
                                        for c, a, r in plan.receivables])
    call_ids = await _insert_ids(session, Call, [{**r, "client_id": client_ids[c]} for c, r in plan.calls],
                                 "call_key")
    await _insert(session, CallParticipant, [{**r, "call_id": call_ids[k]} for k, r in plan.participants])
    await _insert(session, Contact, [{**r, "call_id": call_ids[k], "client_id": client_ids[c]}
                                     for k, c, r in plan.contacts])
    await _insert(session, Promise, [{**r, "client_id": client_ids[c], "call_id": None if k is None else call_ids[k]}
                                     for c, k, r in plan.promises])
    await _insert(session, Note, [{**r, "client_id": client_ids[c],
                                   "call_id": None if r["call_id"] is None else call_ids[r["call_id"]]}
                                  for c, r in plan.notes])


async def _plans(session: AsyncSession, settings: Settings, managers: list[Manager], plan: DemoPlan,
                 now: dt.datetime) -> None:
    """This month's targets: contacts as a count near each manager's pace (so the dashboard
    shows some above and some below plan), the other three as percentages."""
    rng = random.Random(settings.demo.seed)
    zone = ZoneInfo(settings.kpi.timezone)
    month = now.astimezone(zone).date().replace(day=1)
    start = dt.datetime.combine(month, dt.time(), zone)
    end = dt.datetime.combine((month + dt.timedelta(days=32)).replace(day=1), dt.time(), zone)
    elapsed = max(0.1, (now - start) / (end - start))
    so_far: dict[int, int] = {}
    for _call, _client, row in plan.contacts:
        if row["counted"] and row["started_at"] >= start:
            so_far[row["employee_id"]] = so_far.get(row["employee_id"], 0) + 1
    have = set((await session.execute(select(Plan.employee_id, Plan.kpi).where(Plan.month == month))).all())
    rows = []
    for m in dict.fromkeys(x.id for x in managers):
        pace = so_far.get(m, 0) / elapsed
        targets = {"contacts": max(10, round(pace * rng.uniform(0.8, 1.3), -1)),
                   "collections": rng.randrange(60, 90, 5), "win_rate": rng.randrange(40, 65, 5),
                   "new_vs_regular": rng.randrange(20, 45, 5)}
        rows += [{"employee_id": m, "month": month, "kpi": kpi, "target": Decimal(targets[kpi]), "updated_at": now}
                 for kpi in _KPIS if (m, kpi) not in have]
    await _insert(session, Plan, rows)


async def seed_demo(db: Database, settings: Settings, *, now: dt.datetime | None = None) -> DemoAccounts:
    """Seed the demo company once; later calls return the same accounts and add nothing."""
    now = now or dt.datetime.now(dt.UTC)
    async with db.sessions() as session, session.begin():
        if await session.scalar(select(Client.id).where(Client.external_id == MARKER)) is not None:
            log.info("demo company already seeded")
            return await _accounts(session, settings, seeded=False)
        managers = await _employees(session, settings)
        if not managers:
            raise RuntimeError("demo: every manager extension (101..) belongs to someone else already")
        plan = plan_demo(settings, managers, now)
        await _write(session, plan)
        await _plans(session, settings, managers, plan, now)
        log.info("demo company seeded: %d clients, %d agreements, %d calls, %d promises",
                 len(plan.clients), len(plan.agreements), len(plan.calls), len(plan.promises))
        return await _accounts(session, settings, seeded=True)


async def demo_client_numbers(db: Database, limit: int = 500) -> list[tuple[str, str | None]]:
    """(number, caller name) of demo clients for the simulated PBX to call from: the capture
    numbers first, then others; the shared office number has no caller name (a switchboard)."""
    async with db.sessions() as session:
        rows = (await session.execute(
            select(ClientPhone.e164, Client.name)
            .join(Client, Client.id == ClientPhone.client_id)
            .where(Client.external_id.like("demo-%"), ClientPhone.e164.is_not(None))
            .order_by(Client.external_id, ClientPhone.id).limit(limit * 2))).all()
    numbers: dict[str, str | None] = {}
    for e164, name in rows:
        if e164 is None:
            continue
        if e164 in numbers:
            numbers[e164] = None
        elif len(numbers) < limit:
            numbers[e164] = name
    return list(numbers.items())
