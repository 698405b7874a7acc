"""The regular-client rule: N paid agreements in the last M months, manual override."""

from __future__ import annotations

import dataclasses

from sqlalchemy import select

from callpop.settings import Settings
from callpop.store.db import Database
from callpop.store.models import Client
from callpop.store.records.regular import months_before, recompute_all, recompute_status
from tests.support.kpi_rows import agreement, client, payment, utc

NOW = utc(2026, 3, 15, 10)


def test_months_before_clamps_to_the_end_of_shorter_months() -> None:
    assert months_before(utc(2026, 3, 31), 1) == utc(2026, 2, 28)
    assert months_before(utc(2026, 3, 15, 10), 12) == utc(2025, 3, 15, 10)
    assert months_before(utc(2026, 1, 10), 1) == utc(2025, 12, 10)


async def test_two_paid_agreements_in_the_window_make_a_regular_client(db: Database, settings: Settings) -> None:
    async with db.sessions() as s:
        c = await client(s, status="new")
        a1 = await agreement(s, c)
        a2 = await agreement(s, c)
        await payment(s, c, utc(2026, 1, 5), agreement_row=a1)
        await payment(s, c, utc(2026, 1, 6), agreement_row=a1)  # a second payment adds nothing
        assert await recompute_status(s, c.id, settings, NOW) == "new"
        await payment(s, c, utc(2026, 2, 1), agreement_row=a2)
        assert await recompute_status(s, c.id, settings, NOW) == "regular"
        assert c.status == "regular"


async def test_window_edges(db: Database, settings: Settings) -> None:
    start = months_before(NOW, settings.kpi.regular_window_months)  # 2025-03-15 10:00 UTC
    async with db.sessions() as s:
        c = await client(s, status="new")
        a1, a2 = await agreement(s, c), await agreement(s, c)
        await payment(s, c, utc(2026, 2, 1), agreement_row=a1)
        p = await payment(s, c, start, agreement_row=a2)  # exactly M months ago: outside
        assert await recompute_status(s, c.id, settings, NOW) == "new"
        p.paid_at = start.replace(second=1)  # one second later: inside
        await s.flush()
        assert await recompute_status(s, c.id, settings, NOW) == "regular"
        # a payment after "now" is not in the window either
        p.paid_at = utc(2026, 3, 16)
        await s.flush()
        assert await recompute_status(s, c.id, settings, NOW) == "new"


async def test_cancelled_and_lost_agreements_and_loose_payments_do_not_count(
        db: Database, settings: Settings) -> None:
    async with db.sessions() as s:
        c = await client(s, status="new")
        won = await agreement(s, c)
        lost = await agreement(s, c, status="lost")
        await payment(s, c, utc(2026, 2, 1), agreement_row=won)
        await payment(s, c, utc(2026, 2, 1), agreement_row=lost)
        await payment(s, c, utc(2026, 2, 2))
        assert await recompute_status(s, c.id, settings, NOW) == "new"
        one = settings.replace(kpi=dataclasses.replace(settings.kpi, regular_min_paid_agreements=1))
        assert await recompute_status(s, c.id, one, NOW) == "regular"


async def test_manual_status_is_left_alone(db: Database, settings: Settings) -> None:
    async with db.sessions() as s:
        manual_regular = await client(s, status="regular", source="manual")
        manual_new = await client(s, status="new", source="manual")
        a1, a2 = await agreement(s, manual_new), await agreement(s, manual_new)
        await payment(s, manual_new, utc(2026, 2, 1), agreement_row=a1)
        await payment(s, manual_new, utc(2026, 2, 1), agreement_row=a2)
        assert await recompute_status(s, manual_regular.id, settings, NOW) == "regular"
        assert await recompute_status(s, manual_new.id, settings, NOW) == "new"


async def test_recompute_all_moves_clients_both_ways(db: Database, settings: Settings) -> None:
    async with db.sessions() as s:
        lapsed = await client(s, "lapsed", status="regular")
        rising = await client(s, "rising", status="new")
        await client(s, "manual", status="regular", source="manual")
        for c in (rising,):
            for day in (1, 2):
                await payment(s, c, utc(2026, 2, day), agreement_row=await agreement(s, c))
        for day in (1, 2):  # paid long ago: out of the window now
            await payment(s, lapsed, utc(2024, 2, day), agreement_row=await agreement(s, lapsed))
        await s.commit()
        assert await recompute_all(s, settings, NOW) == 2
        await s.commit()
        got = {name: status for name, status in await s.execute(select(Client.name, Client.status))}
    assert got == {"lapsed": "new", "rising": "regular", "manual": "regular"}


def test_callpop_regular_command_applies_the_rule(settings: Settings) -> None:
    import argparse
    import asyncio

    from callpop.store.db import open_database, upgrade
    from callpop.store.records.regular import main

    async def seed() -> None:
        await upgrade(settings.database.url)
        db = await open_database(settings.database)
        async with db.sessions() as s:
            c = await client(s, "lapsed", status="regular")
            for day in (1, 2):
                await payment(s, c, utc(2020, 2, day), agreement_row=await agreement(s, c))
            await s.commit()
        await db.close()

    async def status() -> str:
        db = await open_database(settings.database)
        async with db.sessions() as s:
            value = await s.scalar(select(Client.status))
        await db.close()
        return str(value)

    asyncio.run(seed())
    assert main(argparse.Namespace(), settings) == 0
    assert asyncio.run(status()) == "new"
