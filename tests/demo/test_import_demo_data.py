"""The demo company: realistic enough to show every kind of card, seeded once."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from callpop.accounts import check_password
from callpop.demo.plan import Manager, plan_demo
from callpop.demo.seed import demo_client_numbers, seed_demo
from callpop.settings import DemoSettings, Settings
from callpop.store.db import Database
from callpop.store.models import (
    Agreement,
    Call,
    CallParticipant,
    Client,
    ClientPhone,
    Contact,
    Employee,
    Payment,
    Plan,
    Promise,
    Receivable,
)
from callpop.store.records.regular import recompute_all

NOW = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)
CAPTURE_NUMBERS = ("+79161234567", "+79031112233", "+74957654321")


def _small(settings: Settings, clients: int = 400) -> Settings:
    return settings.replace(demo=DemoSettings(clients=clients, managers=3, seed=7))


async def _count(db: Database, model: type) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_accounts_print_friendly_and_usable(db: Database, settings: Settings) -> None:
    accounts = await seed_demo(db, _small(settings), now=NOW)
    assert accounts.seeded and accounts.clients == 400
    assert [(a.login, a.role, a.extensions) for a in accounts] == [
        ("ivanova", "manager", ("101",)), ("petrov", "manager", ("102",)), ("smirnova", "manager", ("103",)),
        ("boss", "supervisor", ()), ("admin", "admin", ())]
    assert all(a.password == "demo" for a in accounts)
    assert "ivanova      demo      manager     101" in "\n".join(accounts.lines())
    async with db.sessions() as session:
        hashes = (await session.scalars(select(Employee.password_hash))).all()
    assert len(hashes) == 5 and len(set(hashes)) == 1  # "demo" hashed once: argon2 is slow on purpose
    assert check_password(hashes[0], "demo")


async def test_seeding_twice_adds_nothing(db: Database, settings: Settings) -> None:
    first = await seed_demo(db, _small(settings), now=NOW)
    counts = [await _count(db, m) for m in (Employee, Client, ClientPhone, Agreement, Call, Promise, Plan)]
    again = await seed_demo(db, _small(settings), now=NOW + dt.timedelta(days=1))
    assert not again.seeded
    assert again.accounts == first.accounts and again.clients == first.clients
    assert [await _count(db, m) for m in (Employee, Client, ClientPhone, Agreement, Call, Promise, Plan)] == counts


async def test_history_is_realistic(db: Database, settings: Settings) -> None:
    await seed_demo(db, _small(settings), now=NOW)
    year_ago = NOW - dt.timedelta(days=400)
    async with db.sessions() as session:
        statuses = dict((await session.execute(
            select(Agreement.status, func.count()).group_by(Agreement.status))).all())
        regular = dict((await session.execute(select(Client.status_source, func.count())
                                              .where(Client.status == "regular")
                                              .group_by(Client.status_source))).all())
        overdue = await session.scalar(select(func.count()).select_from(Promise)
                                       .where(Promise.status == "open", Promise.due_at < NOW))
        promise_statuses = set((await session.scalars(select(Promise.status).distinct())).all())
        outcomes = dict((await session.execute(select(Call.outcome, func.count()).group_by(Call.outcome))).all())
        span = (await session.execute(select(func.min(Call.started_at), func.max(Call.started_at)))).one()
        answered_without_talker = await session.scalar(
            select(func.count()).select_from(Call).where(
                Call.outcome == "answered",
                ~select(CallParticipant.id).where(CallParticipant.call_id == Call.id,
                                                  CallParticipant.answered).exists()))
        open_debt = await session.scalar(select(func.count()).select_from(Receivable)
                                         .where(Receivable.settled_at.is_(None)))
        payments = await _count(db, Payment)
        counted = await session.scalar(select(func.count()).select_from(Contact).where(Contact.counted))
        plans = (await session.execute(select(Plan.kpi, func.count()).group_by(Plan.kpi))).all()
        companies = await session.scalar(select(func.count()).select_from(Client).where(Client.name.like("ООО «%")))
        last_closed = await session.scalar(select(func.max(Agreement.closed_at)))
        lumped = await session.scalar(select(func.count()).select_from(Agreement).where(Agreement.closed_at == NOW))
        fresh = await session.scalar(select(func.count()).select_from(Client)
                                     .where(Client.created_at > NOW - dt.timedelta(days=30)))
        two_phones = await session.scalar(select(func.count()).select_from(
            select(ClientPhone.client_id).group_by(ClientPhone.client_id).having(func.count() > 1).subquery()))
    assert set(statuses) == {"open", "won", "lost", "cancelled"}
    assert regular.get("rule", 0) > 20 and regular.get("manual", 0) >= 1
    assert overdue and overdue >= 5
    assert promise_statuses == {"open", "kept", "broken", "cancelled"}
    assert outcomes["answered"] > outcomes["missed"] > 0
    assert year_ago <= span[0] and span[1] <= NOW and (span[1] - span[0]).days > 300
    assert answered_without_talker == 0
    assert open_debt and payments > 50 and counted and counted > 20
    assert sorted(plans) == [("collections", 3), ("contacts", 3), ("new_vs_regular", 3), ("win_rate", 3)]
    assert companies and companies > 20 and two_phones and two_phones > 20
    assert last_closed is not None and last_closed < NOW and lumped == 0  # deals not yet closed stay open
    assert fresh and fresh >= 10  # this month's "new to regular" KPI has new clients to count


async def test_regular_status_follows_the_rule(db: Database, settings: Settings) -> None:
    """The generator decides regulars by the same rule the KPI module applies later."""
    small = _small(settings)
    await seed_demo(db, small, now=NOW)
    async with db.sessions() as session, session.begin():
        assert await recompute_all(session, small, NOW) == 0


async def test_capture_numbers_are_clients_with_history(db: Database, settings: Settings) -> None:
    small = _small(settings, clients=50)
    await seed_demo(db, small, now=NOW)
    async with db.sessions() as session:
        owners = {n: (await session.scalars(select(Client.name).join(ClientPhone).where(ClientPhone.e164 == n)
                                            .order_by(Client.id))).all() for n in CAPTURE_NUMBERS}
        petrov_id = await session.scalar(select(Client.id).where(Client.name == "Иван Петров"))
        calls = await session.scalar(select(func.count()).select_from(Call).where(Call.client_id == petrov_id))
        open_dues = (await session.scalars(select(Promise.due_at).where(
            Promise.client_id == petrov_id, Promise.status == "open"))).all()
    assert owners["+79161234567"] == ["Иван Петров"]
    assert owners["+79031112233"] == ["ООО «Ромашка»"]
    assert owners["+74957654321"] == ["АО «Вектор»", "Соколов Павел Андреевич"]  # a candidates card
    assert calls and calls >= 5
    assert any(d is not None and d < NOW for d in open_dues)  # overdue
    today = NOW.astimezone(ZoneInfo(small.kpi.timezone)).date()
    assert any(d is not None and d > NOW and d.astimezone(ZoneInfo(small.kpi.timezone)).date() == today
               for d in open_dues)  # due later today
    assert any(d is not None and d > NOW + dt.timedelta(days=1) for d in open_dues)  # upcoming
    numbers = await demo_client_numbers(db, limit=10)
    assert numbers[0] == ("+79161234567", "Иван Петров")
    assert ("+74957654321", None) in numbers  # a shared office line has no one name
    assert len(numbers) == 10


def test_same_seed_same_company(settings: Settings) -> None:
    managers = [Manager(1, "101"), Manager(2, "102")]
    small = _small(settings, clients=60)
    first, second = plan_demo(small, managers, NOW), plan_demo(small, managers, NOW)
    assert first == second
    other = plan_demo(small.replace(demo=DemoSettings(clients=60, seed=8)), managers, NOW)
    assert [c["name"] for c in other.clients] != [c["name"] for c in first.clients]


async def test_three_thousand_clients_are_seeded(db: Database, settings: Settings) -> None:
    """The demo's default size; how long it takes is measured by bench/demo_seed.py."""
    accounts = await seed_demo(db, settings.replace(demo=DemoSettings(clients=3000)), now=NOW)
    assert accounts.clients == 3000
    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Client)) == 3000


async def test_recorded_callers_pop_real_cards(db: Database, settings: Settings) -> None:
    """What the recorded scenarios show: a known caller with overdue promises first, and
    the shared office line as two candidates."""
    from callpop.store.directory import lookup

    small = _small(settings, clients=50)
    await seed_demo(db, small, now=NOW)
    async with db.sessions() as session:
        petrov = await lookup(session, "89161234567", small, now=NOW)
        office = await lookup(session, "+74957654321", small, now=NOW)
    assert [m.client.name for m in petrov.matches] == ["Иван Петров"]
    card = petrov.matches[0]
    assert card.responsible is not None and card.calls and card.agreements
    assert card.overdue_count >= 1 and card.promises[0].overdue
    assert office.ambiguous
    assert sorted(m.client.name for m in office.matches) == ["АО «Вектор»", "Соколов Павел Андреевич"]
