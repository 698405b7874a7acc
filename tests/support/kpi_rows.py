"""Small row factories shared by the KPI, contact and dashboard tests."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncSession

from callpop.accounts import hash_password
from callpop.app import create_app
from callpop.settings import DatabaseSettings, Settings
from callpop.store.db import Database
from callpop.store.models import Agreement, Call, Client, Contact, Employee, Extension, Payment

_seq = itertools.count(1)
FACTORY_PASSWORD = "secret-password"
_HASH = hash_password(FACTORY_PASSWORD)


def utc(y: int, m: int, d: int, hh: int = 12, mm: int = 0, ss: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, ss, tzinfo=dt.UTC)


async def employee(session: AsyncSession, name: str, *extensions: str, role: str = "manager",
                   login: str | None = None) -> Employee:
    emp = Employee(name=name, login=login or f"{name.lower()}{next(_seq)}", password_hash=_HASH, role=role)
    session.add(emp)
    await session.flush()
    for ext in extensions:
        session.add(Extension(extension=ext, employee_id=emp.id))
    await session.flush()
    return emp


async def client(session: AsyncSession, name: str = "Client", *, status: str = "regular",
                 responsible: Employee | None = None, source: str = "rule",
                 created_at: dt.datetime | None = None) -> Client:
    c = Client(name=name, status=status, status_source=source,
               responsible_id=responsible.id if responsible else None)
    if created_at is not None:
        c.created_at = created_at
    session.add(c)
    await session.flush()
    return c


async def call(session: AsyncSession, cl: Client | None, started: dt.datetime, *,
               direction: str = "inbound", outcome: str = "answered", talk: int = 60) -> Call:
    n = next(_seq)
    row = Call(pbx_id="main", call_key=f"c{n}", direction=direction, client_number="+79990000000",
               client_id=cl.id if cl else None, started_at=started,
               answered_at=started if outcome == "answered" else None,
               ended_at=started + dt.timedelta(seconds=talk), outcome=outcome, talk_seconds=talk)
    session.add(row)
    await session.flush()
    return row


async def contact(session: AsyncSession, emp: Employee, cl: Client, started: dt.datetime, *,
                  counted: bool = True, reason: str | None = None, talk: int = 60) -> Contact:
    c = await call(session, cl, started, talk=talk)
    row = Contact(call_id=c.id, employee_id=emp.id, client_id=cl.id, direction="inbound",
                  started_at=started, talk_seconds=talk, counted=counted, reason=reason)
    session.add(row)
    await session.flush()
    return row


async def agreement(session: AsyncSession, cl: Client, *, status: str = "won", made_by: Employee | None = None,
                    created: dt.datetime | None = None, closed: dt.datetime | None = None) -> Agreement:
    a = Agreement(client_id=cl.id, title="deal", status=status, made_by_id=made_by.id if made_by else None,
                  closed_at=closed)
    if created is not None:
        a.created_at = created
    session.add(a)
    await session.flush()
    return a


async def payment(session: AsyncSession, cl: Client, paid_at: dt.datetime, amount: str = "100",
                  agreement_row: Agreement | None = None) -> Payment:
    p = Payment(client_id=cl.id, agreement_id=agreement_row.id if agreement_row else None,
                amount=Decimal(amount), paid_at=paid_at)
    session.add(p)
    await session.flush()
    return p


HttpClient = TestClient[web.Request, web.Application]


@dataclass
class Site:
    """The real app served on a test port, with one logged-in HTTP client per person."""

    server: TestServer
    ids: dict[str, int] = field(default_factory=dict)
    clients: list[HttpClient] = field(default_factory=list)

    async def login(self, login: str) -> HttpClient:
        c: HttpClient = TestClient(self.server)
        await c.start_server()
        self.clients.append(c)
        token = (await c.get("/login")).headers["X-CSRF-Token"]
        resp = await c.post("/login", data={"login": login, "password": FACTORY_PASSWORD, "csrf_token": token},
                            allow_redirects=False)
        assert resp.status == 302, await resp.text()
        return c


@contextlib.asynccontextmanager
async def serve(db: Database, settings: Settings, ids: dict[str, int] | None = None) -> AsyncIterator[Site]:
    """create_app on *db* (no AMI), served until the block ends; every client is closed."""
    app = create_app(settings.replace(database=DatabaseSettings(url=db.url)), db=db, start_ami=False)
    server = TestServer(app)
    await server.start_server()
    site = Site(server, dict(ids or {}))
    try:
        yield site
    finally:
        for c in site.clients:
            await c.close()
        await server.close()
