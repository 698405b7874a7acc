"""Small builders for directory tests: clients with phones and history, written through the
ORM the way the API and the importer store them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from callpop.phones import phone_key
from callpop.store.models import Agreement, Call, CallParticipant, Client, ClientPhone, Employee, Note, Promise

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)


def ago(**kw: float) -> dt.datetime:
    return NOW - dt.timedelta(**kw)


def ahead(**kw: float) -> dt.datetime:
    return NOW + dt.timedelta(**kw)


async def employee(session: AsyncSession, login: str, name: str) -> Employee:
    emp = Employee(login=login, name=name, password_hash="x", role="manager")
    session.add(emp)
    await session.flush()
    return emp


async def client(session: AsyncSession, name: str, *phones: str, company: str | None = None,
                 responsible: Employee | None = None) -> Client:
    c = Client(name=name, company=company, responsible_id=responsible.id if responsible else None,
               created_at=ago(days=300))
    session.add(c)
    await session.flush()
    for raw in phones:
        key = phone_key(raw)
        session.add(ClientPhone(client_id=c.id, raw=raw, e164=key.e164, tail10=key.tail10))
    await session.flush()
    return c


async def promise(session: AsyncSession, c: Client, text: str, due: dt.datetime | None, *,
                  status: str = "open", by: Employee | None = None) -> Promise:
    p = Promise(client_id=c.id, text=text, due_at=due, status=status, made_by_id=by.id if by else None,
                created_at=ago(days=30))
    session.add(p)
    await session.flush()
    return p


async def agreement(session: AsyncSession, c: Client, title: str, *, status: str = "open", created: dt.datetime,
                    amount: str | None = "1000.50", by: Employee | None = None) -> Agreement:
    a = Agreement(client_id=c.id, title=title, status=status, created_at=created,
                  amount=Decimal(amount) if amount else None, made_by_id=by.id if by else None)
    session.add(a)
    await session.flush()
    return a


async def call(session: AsyncSession, c: Client, key: str, started: dt.datetime, *, talk: int = 0,
               talked: tuple[Employee, ...] = (), rang: tuple[Employee, ...] = ()) -> Call:
    x = Call(pbx_id="main", call_key=key, direction="inbound", client_number="+79161234567", client_id=c.id,
             started_at=started, ended_at=started + dt.timedelta(seconds=talk + 5),
             outcome="answered" if talked else "missed", talk_seconds=talk)
    session.add(x)
    await session.flush()
    for emp in talked:
        session.add(CallParticipant(call_id=x.id, extension=f"x{emp.id}", employee_id=emp.id, answered=True,
                                    talk_seconds=talk))
    for emp in rang:
        session.add(CallParticipant(call_id=x.id, extension=f"x{emp.id}", employee_id=emp.id, answered=False))
    await session.flush()
    return x


async def note(session: AsyncSession, c: Client, text: str, created: dt.datetime, *,
               by: Employee | None = None) -> Note:
    n = Note(client_id=c.id, text=text, created_at=created, author_id=by.id if by else None)
    session.add(n)
    await session.flush()
    return n
