"""KPI figures from the database: each aggregate on a small hand-built month."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from callpop import kpi
from callpop.settings import Settings
from callpop.store.db import Database
from callpop.store.kpi.drill import drill
from callpop.store.kpi.plans import list_plans, parse_items, save_plans
from callpop.store.kpi.queries import earnings_for, manager_facts, missed_total, per_day
from callpop.store.models import CallParticipant, Employee, Plan, Promise, Receivable
from tests.support.kpi_rows import agreement, call, client, contact, employee, payment, utc

MARCH = kpi.parse_period("month", dt.date(2026, 3, 1))
NOW = utc(2026, 3, 16, 9)  # Monday 16 March, 12:00 in Moscow


async def _plans(s: AsyncSession, emp: Employee, **targets: float) -> None:
    for name, target in targets.items():
        s.add(Plan(employee_id=emp.id, month=dt.date(2026, 3, 1), kpi=name, target=Decimal(str(target))))
    await s.flush()


async def test_counted_contacts_in_local_month(db: Database, settings: Settings) -> None:
    async with db.sessions() as s:
        anna = await employee(s, "Anna", "101")
        boris = await employee(s, "Boris", "102")
        c = await client(s)
        await contact(s, anna, c, utc(2026, 2, 28, 21, 30))  # 1 March 00:30 Moscow: in March
        await contact(s, anna, c, utc(2026, 3, 31, 20, 59))  # 31 March 23:59 Moscow: in March
        await contact(s, anna, c, utc(2026, 3, 31, 21, 0))  # 1 April Moscow: out
        await contact(s, anna, c, utc(2026, 3, 10), counted=False, reason="short_talk")
        await contact(s, boris, c, utc(2026, 3, 10))
        facts = {f.name: f.contacts for f in await manager_facts(s, MARCH, settings, NOW)}
        days = await per_day(s, "contacts", MARCH, settings, [anna.id, boris.id])
    assert facts == {"Anna": 2, "Boris": 1}
    assert days[anna.id][0] == 1 and days[anna.id][30] == 1 and sum(days[anna.id]) == 2
    assert days[boris.id][9] == 1 and sum(days[boris.id]) == 1


async def test_collections_win_rate_and_new_vs_regular(db: Database, settings: Settings) -> None:
    start = utc(2026, 2, 28, 21)  # local start of March
    async with db.sessions() as s:
        anna = await employee(s, "Anna", "101")
        other = await employee(s, "Other", "109")
        mine = await client(s, "mine", responsible=anna, status="new", created_at=utc(2025, 1, 1))
        theirs = await client(s, "theirs", responsible=other)
        for cl, amount, issued, settled in [
            (mine, "600", start - dt.timedelta(days=5), None),  # outstanding at start
            (mine, "400", start - dt.timedelta(days=5), start + dt.timedelta(days=3)),  # settled after start
            (mine, "999", start - dt.timedelta(days=9), start - dt.timedelta(seconds=1)),  # settled before
            (mine, "777", start + dt.timedelta(days=1), None),  # issued during the month
            (theirs, "5000", start - dt.timedelta(days=5), None),
        ]:
            s.add(Receivable(client_id=cl.id, amount=Decimal(amount), issued_at=issued, settled_at=settled))
        await payment(s, mine, utc(2026, 3, 3), "250")
        await payment(s, mine, utc(2026, 3, 20), "150")
        await payment(s, mine, utc(2026, 2, 27), "1000")  # February
        await payment(s, theirs, utc(2026, 3, 3), "9")
        for status, closed in [("won", utc(2026, 3, 2)), ("won", utc(2026, 3, 3)), ("lost", utc(2026, 3, 4)),
                               ("cancelled", utc(2026, 3, 5)), ("won", utc(2026, 2, 5)), ("open", None)]:
            await agreement(s, mine, status=status, made_by=anna, closed=closed)
        for i in range(4):
            await client(s, f"regular{i}", responsible=anna, status="regular")
        await client(s, "new in march", responsible=anna, status="new", created_at=utc(2026, 3, 5))
        await client(s, "new in feb", responsible=anna, status="new", created_at=utc(2026, 2, 5))
        [row] = await manager_facts(s, MARCH, settings, NOW, employee_ids=[anna.id])
    assert (row.paid, row.outstanding) == (400.0, 1000.0)
    assert (row.won, row.lost) == (2, 1)
    assert (row.new, row.regular) == (1, 4)  # "mine" is new but was created in 2025
    facts = row.facts()
    assert facts["collections"] == 40.0
    assert round(facts["win_rate"] or 0, 4) == 66.6667
    assert facts["new_vs_regular"] == 25.0


async def test_missed_calls_and_overdue_promises(db: Database, settings: Settings) -> None:
    async with db.sessions() as s:
        anna = await employee(s, "Anna", "101")
        c = await client(s)
        for when in (utc(2026, 3, 2, 8), utc(2026, 3, 2, 9), utc(2026, 3, 4, 9)):
            row = await call(s, c, when, outcome="missed", talk=0)
            s.add(CallParticipant(call_id=row.id, extension="101", employee_id=anna.id))
        answered = await call(s, c, utc(2026, 3, 2, 10))
        s.add(CallParticipant(call_id=answered.id, extension="101", employee_id=anna.id, answered=True))
        s.add(Promise(client_id=c.id, text="call back", due_at=NOW - dt.timedelta(hours=1), made_by_id=anna.id))
        s.add(Promise(client_id=c.id, text="later", due_at=NOW + dt.timedelta(hours=1), made_by_id=anna.id))
        s.add(Promise(client_id=c.id, text="done", due_at=NOW - dt.timedelta(days=1), made_by_id=anna.id,
                      status="kept"))
        await s.flush()
        [row] = await manager_facts(s, MARCH, settings, NOW)
        days = await per_day(s, "missed", MARCH, settings, [anna.id])
        overdue = await drill(s, "overdue", anna.id, MARCH, settings, NOW)
        missed = await drill(s, "missed", anna.id, MARCH, settings, NOW)
    assert (row.missed, row.overdue) == (3, 1)
    assert days[anna.id][1] == 2 and days[anna.id][3] == 1
    assert [r[2] for r in overdue.rows] == ["call back"]
    assert len(missed.rows) == 3


async def test_a_queue_call_is_missed_once_and_an_unanswered_outbound_call_not_at_all(
        db: Database, settings: Settings) -> None:
    async with db.sessions() as s:
        anna = await employee(s, "Anna", "101")
        boris = await employee(s, "Boris", "102")
        c = await client(s)
        queue = await call(s, c, utc(2026, 3, 2, 8), outcome="missed", talk=0)  # rang both, abandoned
        s.add_all([CallParticipant(call_id=queue.id, extension="101", employee_id=anna.id),
                   CallParticipant(call_id=queue.id, extension="102", employee_id=boris.id)])
        dialled = await call(s, c, utc(2026, 3, 2, 9), direction="outbound", outcome="missed", talk=0)
        s.add(CallParticipant(call_id=dialled.id, extension="101", employee_id=anna.id))
        await s.flush()
        facts = {f.name: f.missed for f in await manager_facts(s, MARCH, settings, NOW)}
        days = await per_day(s, "missed", MARCH, settings, [anna.id, boris.id])
        total = await missed_total(s, MARCH, settings)
        drilled = await drill(s, "missed", anna.id, MARCH, settings, NOW)
    assert facts == {"Anna": 1, "Boris": 1}  # each of them missed the queue call
    assert sum(days[anna.id]) == 1 and sum(days[boris.id]) == 1
    assert total == 1  # the company missed one call
    assert len(drilled.rows) == 1


async def test_drill_down_lists_the_rows_behind_the_count(db: Database, settings: Settings) -> None:
    async with db.sessions() as s:
        anna = await employee(s, "Anna", "101")
        c = await client(s, "<b>ООО Ромашка</b>")
        await contact(s, anna, c, utc(2026, 3, 3, 9))
        await contact(s, anna, c, utc(2026, 3, 4, 9), counted=False, reason="duplicate_day")
        result = await drill(s, "contacts", anna.id, MARCH, settings, NOW)
    assert [(r[1], r[4], r[5]) for r in result.rows] == [("<b>ООО Ромашка</b>", "no", "duplicate_day"),
                                                        ("<b>ООО Ромашка</b>", "yes", "")]
    assert result.rows[1][0] == "2026-03-03 12:00"  # local time


async def test_earnings_for_the_worked_example_month(db: Database, settings: Settings) -> None:
    """110 counted contacts, 45 % collected, 9 won / 6 lost, 3 new / 25 regular (docs/kpi.md)."""
    start = utc(2026, 2, 28, 21)
    async with db.sessions() as s:
        anna = await employee(s, "Anna", "101")
        await _plans(s, anna, contacts=200, collections=60, win_rate=40, new_vs_regular=20)
        owed = await client(s, "debtor", responsible=anna, status="regular", created_at=utc(2025, 1, 1))
        for i in range(24):
            await client(s, f"r{i}", responsible=anna, status="regular", created_at=utc(2025, 1, 1))
        for i in range(3):
            await client(s, f"n{i}", responsible=anna, status="new", created_at=utc(2026, 3, 2 + i))
        s.add(Receivable(client_id=owed.id, amount=Decimal("1000000"), issued_at=start - dt.timedelta(days=10)))
        await payment(s, owed, utc(2026, 3, 5), "450000")
        for i in range(15):
            await agreement(s, owed, status="won" if i < 9 else "lost", made_by=anna, closed=utc(2026, 3, 2))
        for i in range(110):
            await contact(s, anna, owed, utc(2026, 3, 2) + dt.timedelta(minutes=i))
        await s.commit()
        _row, result = await earnings_for(s, anna.id, settings, NOW)
    assert (result.earned, result.projection) == (37250.0, 60500.0)
    assert (result.elapsed_days, result.total_days) == (11, 22)


async def test_plans_are_saved_updated_and_removed(db: Database) -> None:
    month = dt.date(2026, 3, 1)
    async with db.sessions() as s:
        anna = await employee(s, "Anna", "101")

        def item(name: str, target: object) -> dict[str, object]:
            return {"employee_id": anna.id, "kpi": name, "target": target}

        assert await save_plans(s, month, parse_items([item("contacts", 200), item("win_rate", "40,5")])) == 2
        assert await save_plans(s, month, parse_items([item("contacts", 200)])) == 0  # unchanged
        assert await save_plans(s, month, parse_items([item("win_rate", None)])) == 1  # removed
        await s.commit()
        assert [(p.kpi, p.target) for p in await list_plans(s, month)] == [("contacts", 200.0)]


async def test_day_buckets_at_exact_midnights_and_across_dst(db: Database, settings: Settings) -> None:
    import dataclasses

    berlin = settings.replace(kpi=dataclasses.replace(settings.kpi, timezone="Europe/Berlin"))
    async with db.sessions() as s:
        anna = await employee(s, "Anna", "101")
        c = await client(s)
        # Moscow (no DST): exactly midnight of 2 March local, and one millisecond before it
        await contact(s, anna, c, utc(2026, 3, 1, 21))
        await contact(s, anna, c, utc(2026, 3, 1, 20, 59, 59) + dt.timedelta(microseconds=999_000))
        moscow = await per_day(s, "contacts", MARCH, settings, [anna.id])
        # Berlin changes to summer time on 29 March: that day is 23 hours long
        await contact(s, anna, c, utc(2026, 3, 29, 21, 59))  # 23:59 CEST on the 29th
        await contact(s, anna, c, utc(2026, 3, 29, 22, 0))  # 00:00 CEST on the 30th
        spring = await per_day(s, "contacts", kpi.parse_period("custom", dt.date(2026, 3, 1), start="2026-03-28",
                                                               end="2026-03-30"), berlin, [anna.id])
    assert moscow[anna.id][:2] == [1, 1]
    assert spring[anna.id] == [0, 1, 1]
