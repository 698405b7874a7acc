"""The dashboard's per-day series: closed days are remembered, open days always read fresh,
and the result equals a plain read of the database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from callpop import kpi
from callpop.settings import Settings
from callpop.store.db import Database
from callpop.store.kpi import daycache as kpi_daycache
from callpop.store.kpi.queries import per_day_series
from tests.support.kpi_rows import client, contact, employee, utc

MARCH = kpi.parse_period("month", dt.date(2026, 3, 1))
NOW = utc(2026, 3, 16, 9)  # 16 March, 12:00 Moscow: days up to the 15th are closed (ended 6 h ago)


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    kpi_daycache.clear()
    yield
    kpi_daycache.clear()


async def test_same_figures_as_a_plain_read(db: Database, settings: Settings) -> None:
    async with db.sessions() as s:
        anna = await employee(s, "Anna", "101")
        boris = await employee(s, "Boris", "102")
        c = await client(s)
        for day, who in [(2, anna), (2, anna), (9, boris), (16, anna)]:
            await contact(s, who, c, utc(2026, 3, day, 8, 0, day))
        await s.commit()
        cold = await kpi_daycache.dashboard_series(s, MARCH, settings, NOW)
        warm = await kpi_daycache.dashboard_series(s, MARCH, settings, NOW)
        plain = await per_day_series(s, MARCH, settings, None)
    assert cold == warm
    assert cold[0] == plain[0] and cold[0][anna.id][1] == 2 and cold[0][boris.id][8] == 1


async def test_open_days_are_read_fresh_closed_days_are_remembered(db: Database, settings: Settings) -> None:
    async with db.sessions() as s:
        anna = await employee(s, "Anna", "101")
        c = await client(s)
        await contact(s, anna, c, utc(2026, 3, 10, 8))
        await s.commit()
        first, _ = await kpi_daycache.dashboard_series(s, MARCH, settings, NOW)
        await contact(s, anna, c, utc(2026, 3, 16, 8))  # today: open
        await contact(s, anna, c, utc(2026, 3, 10, 8, 30))  # a closed day, written late by hand
        await s.commit()
        second, _ = await kpi_daycache.dashboard_series(s, MARCH, settings, NOW)
        kpi_daycache.clear()
        third, _ = await kpi_daycache.dashboard_series(s, MARCH, settings, NOW)
    assert first[anna.id][9] == 1 and first[anna.id][15] == 0
    assert second[anna.id][15] == 1  # today's contact shows at once
    assert second[anna.id][9] == 1  # the closed day is remembered ...
    assert third[anna.id][9] == 2  # ... until the memory is dropped (TTL or clear)


async def test_a_day_is_not_closed_until_its_late_calls_have_ended(db: Database, settings: Settings) -> None:
    early = utc(2026, 3, 16, 0, 30)  # 03:30 Moscow on the 16th: the 15th ended 3.5 hours ago
    async with db.sessions() as s:
        anna = await employee(s, "Anna", "101")
        c = await client(s)
        await kpi_daycache.dashboard_series(s, MARCH, settings, early)
        await contact(s, anna, c, utc(2026, 3, 15, 20, 50))  # 23:50 on the 15th, logged after midnight
        await s.commit()
        got, _ = await kpi_daycache.dashboard_series(s, MARCH, settings, early)
    assert got[anna.id][14] == 1
